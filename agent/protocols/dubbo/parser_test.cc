// Dubbo tests on byte streams built here from the protocol description (no Dubbo provider is
// packaged for Debian): header framing, Hessian2 strings (short, medium, chunked, UTF-8),
// heartbeats, one-way calls, status mapping; plus DeepFlow's Hessian2 captures when the shared
// corpus is present.
#include "agent/protocols/dubbo/parser.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "agent/protocols/redis/pcap_replay.h"

namespace sonde::agent::protocols::dubbo {
namespace {

std::string H2Str(std::string_view s, size_t chars) {  // `chars` UTF-16 units in s
  std::string out;
  if (chars < 32) {
    out += static_cast<char>(chars);
  } else if (chars < 1024) {
    out += static_cast<char>(0x30 + (chars >> 8));
    out += static_cast<char>(chars & 0xff);
  } else {
    out += 'S';
    out += static_cast<char>(chars >> 8);
    out += static_cast<char>(chars & 0xff);
  }
  return out + std::string(s);
}
std::string H2Str(std::string_view s) { return H2Str(s, s.size()); }

std::string Message(uint8_t flags, uint8_t status, uint64_t id, const std::string& body) {
  std::string m = "\xda\xbb";
  m += static_cast<char>(flags);
  m += static_cast<char>(status);
  for (int s = 56; s >= 0; s -= 8) m += static_cast<char>((id >> s) & 0xff);
  for (int s = 24; s >= 0; s -= 8) m += static_cast<char>((body.size() >> s) & 0xff);
  return m + body;
}

std::string Request(uint64_t id, std::string_view service, std::string_view method, bool two_way = true) {
  std::string body = H2Str("2.0.2") + H2Str(service) + H2Str("1.0.0") + H2Str(method) +
                     H2Str("Ljava/lang/String;") + H2Str("bob") + "H" + H2Str("path") + H2Str(service) + "Z";
  return Message(static_cast<uint8_t>(0x80 | (two_way ? 0x40 : 0) | 2), 0, id, body);
}

testing::ReplayResult ReplayBytes(const std::vector<std::pair<bool, std::string>>& msgs, size_t step) {
  testing::Connection c;
  uint64_t ts = 1000;
  for (const auto& [to_server, m] : msgs) {
    for (size_t i = 0; i < m.size(); i += step) c.chunks.push_back({to_server, ts++, 0, m.substr(i, step)});
  }
  return testing::Replay<Traits>(c);
}

TEST(DubboParser, HeaderAndHessianStrings) {
  State st;
  const std::string long_service(40, 's');  // medium-length string form
  const std::string req = Request(77, long_service, "sayHello");
  for (size_t n = 0; n < req.size(); ++n) {
    std::string_view b(req.data(), n);
    Frame f;
    ASSERT_EQ(Traits::ParseFrame(MessageType::kRequest, &b, &f, &st), ParseState::kNeedsMoreData);
  }
  std::string_view b(req);
  Frame f;
  ASSERT_EQ(Traits::ParseFrame(MessageType::kRequest, &b, &f, &st), ParseState::kSuccess);
  EXPECT_EQ(f.request_id, 77u);
  EXPECT_EQ(f.service, long_service);
  EXPECT_EQ(f.method, "sayHello");
  EXPECT_EQ(f.dubbo_version, "2.0.2");
  // UTF-8 characters are counted as characters, and chunked strings ('R' then final) joined.
  std::string body = H2Str("2.0.2") + H2Str("caf\xc3\xa9.Svc", 8) + "R" + std::string("\x00\x02", 2) + "v1" +
                     H2Str(".0") + H2Str("m");
  std::string m = Message(0xc2, 0, 5, body);
  std::string_view mb(m);
  ASSERT_EQ(Traits::ParseFrame(MessageType::kRequest, &mb, &f, &st), ParseState::kSuccess);
  EXPECT_EQ(f.service, "caf\xc3\xa9.Svc");
  EXPECT_EQ(f.service_version, "v1.0");
  EXPECT_EQ(f.method, "m");
  // Heartbeats are consumed silently; wrong magic and direction are invalid.
  std::string hb = Message(0xe2, 0, 9, "N");
  std::string_view hbv(hb);
  EXPECT_EQ(Traits::ParseFrame(MessageType::kRequest, &hbv, &f, &st), ParseState::kIgnored);
  EXPECT_TRUE(hbv.empty());
  std::string_view bad = "\xda\xbc\x00";
  EXPECT_EQ(Traits::ParseFrame(MessageType::kRequest, &bad, &f, &st), ParseState::kInvalid);
  std::string resp = Message(0x02, 20, 1, "\x91");
  std::string_view rv(resp);
  EXPECT_EQ(Traits::ParseFrame(MessageType::kRequest, &rv, &f, &st), ParseState::kInvalid);
}

// Kryo (serialization 8) request bodies: ASCII strings end with the high bit set on their last
// byte; others carry a flagged varint "characters + 1" (here 0x85: 4 characters, one of them 2 bytes of UTF-8).
TEST(DubboParser, KryoStrings) {
  auto ascii = [](std::string s) {
    s.back() = static_cast<char>(s.back() | 0x80);
    return s;
  };
  const std::string body = ascii("2.8.4") + ascii("com.example.OrderService") +
                           "\x85" "v\xc3\xa9r1" + ascii("sendOrder") + "\x00\x00\x00\x02";
  const std::string m = Message(0xc8, 0, 3962641, body);
  State st;
  std::string_view b(m);
  Frame f;
  ASSERT_EQ(Traits::ParseFrame(MessageType::kRequest, &b, &f, &st), ParseState::kSuccess);
  EXPECT_EQ(f.serialization, kKryo);
  EXPECT_EQ(f.dubbo_version, "2.8.4");
  EXPECT_EQ(f.service, "com.example.OrderService");
  EXPECT_EQ(f.service_version, "v\xc3\xa9r1");
  EXPECT_EQ(f.method, "sendOrder");
  // Cut short inside a string: the frame still parses, the strings stay partial or empty.
  const std::string cut = Message(0xc8, 0, 4, ascii("2.8.4") + "com.exa");
  std::string_view cb(cut);
  Frame g;
  ASSERT_EQ(Traits::ParseFrame(MessageType::kRequest, &cb, &g, &st), ParseState::kSuccess);
  EXPECT_EQ(g.dubbo_version, "2.8.4");
  EXPECT_EQ(g.method, "");
}

TEST(DubboStitcher, PairsByIdWithStatuses) {
  for (size_t step : {1, 7, 10000}) {
    testing::ReplayResult r = ReplayBytes(
        {{true, Request(1, "demo.UserService", "login")},
         {true, Request(2, "demo.UserService", "logout", false)},
         {true, Request(3, "demo.OrderService", "place")},
         {false, Message(0x02, 70, 3, H2Str("java.lang.IllegalStateException: no stock"))},
         {false, Message(0x02, 20, 1, "\x91" + H2Str("ok"))},
         {true, Request(4, "demo.OrderService", "cancel")},
         {false, Message(0x02, 20, 4, "\x90" "C")}},
        step);
    std::string got;
    for (const auto& rec : r.records) got += testing::Summarize(rec) + "\n";
    EXPECT_EQ(got,
              "type=logout version=2.0.2 resource=demo.UserService:1.0.0 endpoint=demo.UserService/logout id=2 status=0\n"
              "type=place version=2.0.2 resource=demo.OrderService:1.0.0 endpoint=demo.OrderService/place id=3 status=2 code=70 exception=java.lang.IllegalStateException: no stock\n"
              "type=login version=2.0.2 resource=demo.UserService:1.0.0 endpoint=demo.UserService/login id=1 status=0 code=20\n"
              "type=cancel version=2.0.2 resource=demo.OrderService:1.0.0 endpoint=demo.OrderService/cancel id=4 status=2 code=20 exception=exception result\n")
        << step;
  }
}

TEST(DubboInfer, MagicAndDirection) {
  const std::string req = Request(1, "a.B", "c");
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, req, flow::ConnectionInfo{}), InferResult::kYes);
  EXPECT_EQ(Infer(flow::StreamDirection::kResponse, req, flow::ConnectionInfo{}), InferResult::kNo);
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, "GET / HTTP/1.1\r\n", flow::ConnectionInfo{}), InferResult::kNo);
}

// Acceptance against DeepFlow's Hessian2 captures: the same service, method and request id.
TEST(DubboCorpus, DeepflowHessian2) {
  const char* src = std::getenv("SONDE_SOURCE_DIR");
  std::filesystem::path dir = std::filesystem::path(src ? src : ".") / ".." / "shared" / "corpus" / "dubbo";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "corpus not found at " << dir;
  const std::regex req_re(
      R"re(msg_type: Request, event: 0, serial_id: 2, data_type: \d+, request_id: (\d+), dubbo_version: "([^"]*)", service_name: "([^"]*)", service_version: "[^"]*", method_name: "([^"]*)")re");
  size_t checked = 0;
  for (const char* stem : {"deepflow__dubbo_hessian2", "deepflow__dubbo-eys", "deepflow__dubbo-sw8"}) {
    std::ifstream in(dir / (std::string(stem) + ".result"));
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string expected = ss.str();
    std::vector<testing::Connection> conns;
    std::string err;
    ASSERT_TRUE(testing::ReadPcapConnections((dir / (std::string(stem) + ".pcap")).string(), 0, &conns, &err)) << err;
    std::vector<v1::L7RequestLog> records;
    for (const auto& c : conns) {
      auto r = testing::Replay<Traits>(c);
      records.insert(records.end(), r.records.begin(), r.records.end());
    }
    for (std::sregex_iterator it(expected.begin(), expected.end(), req_re), end; it != end; ++it) {
      bool found = false;
      for (const auto& rec : records) {
        if (rec.request_id() != std::stoull((*it)[1])) continue;
        found = true;
        EXPECT_EQ(rec.version(), (*it)[2].str()) << stem;
        EXPECT_EQ(rec.request_resource().substr(0, (*it)[3].length()), (*it)[3].str()) << stem;
        EXPECT_EQ(rec.request_type(), (*it)[4].str()) << stem;
        ++checked;
      }
      EXPECT_TRUE(found) << stem << " request " << (*it)[1];
    }
  }
  EXPECT_GE(checked, 2u);
}

}  // namespace
}  // namespace sonde::agent::protocols::dubbo
