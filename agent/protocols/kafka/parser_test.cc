// Kafka tests on byte streams built here from the protocol specification (no Kafka broker is
// packaged for Debian, so there is no recorded capture): classic and flexible versions of
// Produce and Fetch, ApiVersions' v0 response header, error codes, acks=0 and pairing.
#include "agent/protocols/kafka/parser.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "agent/protocols/redis/pcap_replay.h"

namespace sonde::agent::protocols::kafka {
namespace {

// Spec encoders.
struct W {
  std::string b;
  W& I8(int v) { b += static_cast<char>(v); return *this; }
  W& I16(int v) { return I8(v >> 8).I8(v & 0xff); }
  W& I32(int64_t v) { return I16(static_cast<int>((v >> 16) & 0xffff)).I16(static_cast<int>(v & 0xffff)); }
  W& UV(uint64_t v) {
    while (v >= 0x80) { I8(static_cast<int>((v & 0x7f) | 0x80)); v >>= 7; }
    return I8(static_cast<int>(v));
  }
  W& Str(std::string_view s) { I16(static_cast<int>(s.size())); b += s; return *this; }
  W& CStr(std::string_view s) { UV(s.size() + 1); b += s; return *this; }
  W& Tags() { return UV(0); }
  W& Raw(std::string_view s) { b += s; return *this; }
};

std::string Sized(const std::string& m) { return W().I32(static_cast<int64_t>(m.size())).Raw(m).b; }

std::string RequestHeader(int key, int version, int corr, bool flexible) {
  W w;
  w.I16(key).I16(version).I32(corr).Str("sonde-client");
  if (flexible) w.Tags();
  return w.b;
}

std::string ProduceV2(int corr, int acks) {
  W w;
  w.Raw(RequestHeader(0, 2, corr, false)).I16(acks).I32(1500).I32(1).Str("orders").I32(1).I32(0).I32(0);
  return Sized(w.b);
}

std::string ProduceV9(int corr) {
  W w;
  w.Raw(RequestHeader(0, 9, corr, true)).UV(0).I16(-1).I32(1500).UV(2).CStr("payments").UV(2).I32(0).UV(1).Tags().Tags().Tags();
  return Sized(w.b);
}

std::string ProduceResponse(int corr, int version, int error) {
  const bool flex = version >= 9;
  W w;
  w.I32(corr);
  if (flex) w.Tags();
  if (flex) {
    w.UV(2).CStr("payments").UV(2).I32(0).I16(error);
  } else {
    w.I32(1).Str("orders").I32(1).I32(0).I16(error);
  }
  w.Raw(std::string(16, '\0'));
  return Sized(w.b);
}

std::string FetchV12(int corr) {
  W w;
  w.Raw(RequestHeader(1, 12, corr, true)).I32(-1).I32(500).I32(1).I32(1 << 20).I8(0).I32(0).I32(-1)
      .UV(2).CStr("events").UV(2).I32(0).I32(0).I32(0).I32(0).I32(0).Tags().Tags().UV(1).UV(1).CStr("").Tags();
  return Sized(w.b);
}

std::string FetchV4(int corr) {
  W w;
  w.Raw(RequestHeader(1, 4, corr, false)).I32(-1).I32(500).I32(1).I32(1 << 20).I8(0).I32(1).Str("clicks").I32(1).I32(0).I32(0).I32(0).I32(0);
  return Sized(w.b);
}

std::string FetchResponseV12(int corr, int top_error, int part_error) {
  W w;
  w.I32(corr).Tags().I32(0).I16(top_error).I32(0).UV(2).CStr("events").UV(2).I32(0).I16(part_error);
  return Sized(w.b);
}

std::string FetchResponseV4(int corr, int part_error) {
  W w;
  w.I32(corr).I32(0).I32(1).Str("clicks").I32(1).I32(0).I16(part_error);
  return Sized(w.b);
}

std::string ApiVersionsV3(int corr) {
  W w;
  w.Raw(RequestHeader(18, 3, corr, true)).CStr("sonde").CStr("1.0").Tags();
  return Sized(w.b);
}

std::string ApiVersionsResponse(int corr) {
  W w;  // header v0 even for the flexible version
  w.I32(corr).I16(0).UV(1).Tags();
  return Sized(w.b);
}

testing::ReplayResult ReplayBytes(const std::vector<std::pair<bool, std::string>>& msgs, size_t step) {
  testing::Connection c;
  uint64_t ts = 1000;
  for (const auto& [to_server, m] : msgs) {
    for (size_t i = 0; i < m.size(); i += step) c.chunks.push_back({to_server, ts++, 0, m.substr(i, step)});
  }
  return testing::Replay<Traits>(c);
}

TEST(KafkaParser, RequestHeaderAndTopics) {
  State st;
  for (const auto& [bytes, topic, version] :
       {std::tuple{ProduceV2(7, 1), "orders", 2}, std::tuple{ProduceV9(8), "payments", 9},
        std::tuple{FetchV4(9), "clicks", 4}, std::tuple{FetchV12(10), "events", 12}}) {
    for (size_t n = 0; n < bytes.size(); ++n) {
      std::string_view b(bytes.data(), n);
      Frame f;
      ASSERT_EQ(Traits::ParseFrame(MessageType::kRequest, &b, &f, &st), ParseState::kNeedsMoreData);
    }
    std::string_view b(bytes);
    Frame f;
    ASSERT_EQ(Traits::ParseFrame(MessageType::kRequest, &b, &f, &st), ParseState::kSuccess);
    EXPECT_EQ(f.topic, topic);
    EXPECT_EQ(f.api_version, version);
    EXPECT_EQ(f.client_id, "sonde-client");
  }
  std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string_view hb(http);
  Frame f;
  EXPECT_EQ(Traits::ParseFrame(MessageType::kRequest, &hb, &f, &st), ParseState::kInvalid);
}

// Inference is strict: binary data joined mid-stream (e.g. a RowBinary body) must not pass.
TEST(KafkaParser, InferenceRequiresAPlausibleRequest) {
  const auto kReq = flow::StreamDirection::kRequest;
  const flow::ConnectionInfo c;
  auto request = [](int key, int version, int corr, std::string_view client, std::string body) {
    W w;
    w.I16(key).I16(version).I32(corr).Str(client).Raw(body);
    return Sized(w.b);
  };
  const std::string topic_body = W().I32(1).Str("orders").b;
  EXPECT_EQ(Infer(kReq, ProduceV2(7, 1), c), InferResult::kYes);
  EXPECT_EQ(Infer(kReq, ProduceV2(7, 1) + ProduceV2(8, 1), c), InferResult::kYes);
  EXPECT_EQ(Infer(flow::StreamDirection::kResponse, ProduceV2(7, 1), c), InferResult::kNo);
  EXPECT_EQ(Infer(kReq, ProduceV2(7, 1).substr(0, 20), c), InferResult::kMaybe);
  // Size not consistent with the chunk: trailing bytes that are no request header.
  EXPECT_EQ(Infer(kReq, ProduceV2(7, 1) + std::string(20, '\x07'), c), InferResult::kNo);
  // Version outside the api's range, unknown api key, negative correlation id.
  EXPECT_EQ(Infer(kReq, request(17, 5, 1, "cli", topic_body), c), InferResult::kNo);   // SaslHandshake v5
  EXPECT_EQ(Infer(kReq, request(70, 0, 1, "cli", topic_body), c), InferResult::kNo);
  EXPECT_EQ(Infer(kReq, request(3, 1, -5, "cli", topic_body), c), InferResult::kNo);
  // Client id: must fit and be printable.
  EXPECT_EQ(Infer(kReq, request(3, 1, 1, "a\x01b", topic_body), c), InferResult::kNo);
  // An empty client id passes only when the body names something (all zeros does not).
  EXPECT_EQ(Infer(kReq, request(2, 0, 0, "", topic_body), c), InferResult::kYes);
  EXPECT_EQ(Infer(kReq, request(2, 0, 0, "", std::string(40, '\0')), c), InferResult::kNo);
}

TEST(KafkaStitcher, PairsByCorrelationIdWithErrors) {
  for (size_t step : {1, 5, 10000}) {
    testing::ReplayResult r = ReplayBytes(
        {{true, ApiVersionsV3(1)}, {false, ApiVersionsResponse(1)},
         {true, ProduceV9(2)}, {true, ProduceV2(3, 0)}, {true, FetchV12(4)}, {true, FetchV4(5)},
         {false, ProduceResponse(2, 9, 0)}, {false, FetchResponseV12(4, 0, 3)},
         {false, FetchResponseV4(5, 6)}, {true, ProduceV2(6, 1)}, {false, ProduceResponse(6, 2, 2)}},
        step);
    std::string got;
    for (const auto& rec : r.records) got += testing::Summarize(rec) + "\n";
    EXPECT_EQ(got,
              "type=ApiVersions version=3 domain=sonde-client endpoint=ApiVersions id=1 status=0\n"
              "type=Produce version=2 domain=sonde-client resource=orders endpoint=orders id=3 status=0\n"
              "type=Produce version=9 domain=sonde-client resource=payments endpoint=payments id=2 status=0\n"
              "type=Fetch version=12 domain=sonde-client resource=events endpoint=events id=4 status=1 code=3\n"
              "type=Fetch version=4 domain=sonde-client resource=clicks endpoint=clicks id=5 status=2 code=6\n"
              "type=Produce version=2 domain=sonde-client resource=orders endpoint=orders id=6 status=1 code=2\n")
        << "step " << step;
    EXPECT_EQ(r.invalid_requests + r.invalid_responses, 0u);
  }
}

TEST(KafkaStitcher, UnansweredRequestTimesOut) {
  testing::ReplayResult r = ReplayBytes({{true, FetchV4(11)}}, 100);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].response_status(), ::sonde::common::v1::RESPONSE_STATUS_TIMEOUT);
}

// Acceptance against DeepFlow's Kafka captures in the shared corpus: every Produce/Fetch request
// they decode must come out with the same topic, api version and correlation id.
TEST(KafkaCorpus, DeepflowProduceFetchTopics) {
  const char* src = std::getenv("SONDE_SOURCE_DIR");
  std::filesystem::path dir = std::filesystem::path(src ? src : ".") / ".." / "shared" / "corpus" / "kafka";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "corpus not found at " << dir;
  const std::regex req_re(
      R"re(msg_type: Request, correlation_id: Some\((\d+)\), api_key: (Produce|Fetch), api_version: (\d+), client_id: "[^"]*", topic_name: "([^"]*)")re");
  size_t checked = 0;
  for (const char* stem : {"deepflow__00-produce-v2", "deepflow__00-produce-v9",
                           "deepflow__00-produce-v7-sw8", "deepflow__01-fetch-v12-ok"}) {
    std::ifstream in(dir / (std::string(stem) + ".result"));
    std::stringstream ss;
    ss << in.rdbuf();
    std::string expected = ss.str();
    std::vector<testing::Connection> conns;
    std::string err;
    ASSERT_TRUE(testing::ReadPcapConnections((dir / (std::string(stem) + ".pcap")).string(), 0, &conns, &err)) << err;
    std::vector<v1::L7RequestLog> records;
    for (const auto& c : conns) {
      auto r = testing::Replay<Traits>(c);
      records.insert(records.end(), r.records.begin(), r.records.end());
    }
    for (std::sregex_iterator it(expected.begin(), expected.end(), req_re), end; it != end; ++it) {
      const uint64_t corr = std::stoull((*it)[1]);
      bool found = false;
      for (const auto& rec : records) {
        if (rec.request_id() != corr) continue;
        found = true;
        EXPECT_EQ(rec.request_type(), (*it)[2].str()) << stem;
        EXPECT_EQ(rec.version(), (*it)[3].str()) << stem;
        EXPECT_EQ(rec.request_resource(), (*it)[4].str()) << stem;
        ++checked;
      }
      EXPECT_TRUE(found) << stem << " correlation id " << corr;
    }
  }
  EXPECT_GE(checked, 4u);
}

}  // namespace
}  // namespace sonde::agent::protocols::kafka
