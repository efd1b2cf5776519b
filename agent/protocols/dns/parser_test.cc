// DNS parser: hand-built messages plus a golden test over a real dnsmasq capture.
#include "agent/protocols/dns/parser.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <random>
#include <vector>

#include "agent/protocols/common/frame_parser.h"
#include "agent/protocols/common/l7_analyzer.h"
#include "agent/protocols/common/testing/collecting_sink.h"
#include "agent/protocols/common/testing/golden.h"

namespace sonde::agent::protocols::dns {
namespace {

std::string Query(uint16_t id, std::string_view name, uint16_t qtype) {
  std::string m = {static_cast<char>(id >> 8), static_cast<char>(id), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    m.push_back(static_cast<char>(dot - start));
    m.append(name.substr(start, dot - start));
    start = dot + 1;
  }
  m.push_back(0);
  m += {static_cast<char>(qtype >> 8), static_cast<char>(qtype), 0, 1};
  return m;
}

std::string AnswerA(std::string q, uint8_t rcode, bool with_answer) {
  q[2] = static_cast<char>(0x81);
  q[3] = static_cast<char>(0x80 | rcode);
  if (with_answer) {
    q[7] = 1;
    q += std::string{static_cast<char>(0xc0), 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 7};
  }
  return q;
}

flow::StreamChunk Chunk(const std::string& s, uint64_t ts, bool datagram) {
  flow::StreamChunk c;
  c.timestamp_ns = ts;
  c.data = {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  c.is_datagram = datagram;
  return c;
}

TEST(DnsTest, UdpPairsByIdOutOfOrder) {
  metrics::Registry reg;
  ParserCounters counters = ParserCounters::Create(&reg, "DNS");
  FrameParser<Traits> p({}, &counters);
  std::string q1 = Query(0x1111, "a.example.com", 1), q2 = Query(0x2222, "b.example.com", 28);
  p.OnData(flow::StreamDirection::kRequest, Chunk(q1, 1000, true));
  p.OnData(flow::StreamDirection::kRequest, Chunk(q2, 2000, true));
  std::string a2 = q2;
  a2[2] = static_cast<char>(0x81);
  a2[3] = static_cast<char>(0x83);  // NXDOMAIN
  p.OnData(flow::StreamDirection::kResponse, Chunk(a2, 5000, true));
  p.OnData(flow::StreamDirection::kResponse, Chunk(AnswerA(q1, 0, true), 9000, true));
  RecordBuffer out;
  p.Stitch({9000, 1'000'000'000, false}, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].request_resource(), "b.example.com");
  EXPECT_EQ(out[0].request_type(), "AAAA");
  EXPECT_EQ(out[0].response_exception(), "NXDOMAIN");
  EXPECT_EQ(out[0].response_status(), common::v1::RESPONSE_STATUS_CLIENT_ERROR);
  EXPECT_EQ(out[0].request_id(), 0x2222u);
  EXPECT_EQ(out[1].request_type(), "A");
  EXPECT_EQ(out[1].response_result(), "10.0.0.7");
  EXPECT_EQ(out[1].response_duration(), 8u);
}

TEST(DnsTest, ARecordTextMatchesInetNtop) {
  // Every byte value in every position, plus a few whole addresses.
  std::vector<std::array<uint8_t, 4>> addrs = {{0, 0, 0, 0}, {255, 255, 255, 255}, {10, 100, 99, 9}};
  for (int v = 0; v < 256; ++v) {
    const auto b = static_cast<uint8_t>(v);
    addrs.push_back({b, 0, 0, 0});
    addrs.push_back({1, b, 2, 3});
    addrs.push_back({4, 5, b, 6});
    addrs.push_back({7, 8, 9, b});
  }
  for (const auto& a : addrs) {
    std::string msg = AnswerA(Query(7, "x.test", 1), 0, true);
    std::memcpy(msg.data() + msg.size() - 4, a.data(), 4);
    Frame f;
    ASSERT_TRUE(ParseMessage(msg, &f));
    char want[INET_ADDRSTRLEN] = {};
    ASSERT_NE(inet_ntop(AF_INET, a.data(), want, sizeof(want)), nullptr);
    EXPECT_EQ(f.answers, want);
  }
}

TEST(DnsTest, TcpLengthPrefixSplitAcrossChunks) {
  metrics::Registry reg;
  ParserCounters counters = ParserCounters::Create(&reg, "DNS");
  FrameParser<Traits> p({}, &counters);
  std::string q = Query(7, "x.test", 15);
  std::string framed = std::string{0, static_cast<char>(q.size())} + q;
  p.OnData(flow::StreamDirection::kRequest, Chunk(framed.substr(0, 5), 1, false));
  p.OnData(flow::StreamDirection::kRequest, Chunk(framed.substr(5), 2, false));
  std::string a = AnswerA(q, 0, false);
  p.OnData(flow::StreamDirection::kResponse,
           Chunk(std::string{0, static_cast<char>(a.size())} + a, 3, false));
  RecordBuffer out;
  p.Stitch({3, 1'000'000'000, false}, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].request_type(), "MX");
  EXPECT_EQ(out[0].request_length(), static_cast<int64_t>(framed.size()));
}

// Names at the 255-byte limit, one byte over, compressed answers and mutated messages: parsing
// without text (inference) gives the verdict of the full parse, and the full parse still reads
// names of up to 255 bytes whole.
TEST(DnsTest, ParsingWithoutTextGivesTheSameVerdict) {
  std::vector<std::string> msgs;
  const std::string label63(63, 'a'), label62(62, 'c');
  const std::string at_limit = label63 + "." + label63 + "." + label63 + "." + label63;  // 255
  const std::string over = label63 + "." + label63 + "." + label63 + "." + label62 + ".d";
  ASSERT_EQ(at_limit.size(), 255u);
  ASSERT_EQ(over.size(), 256u);
  msgs.push_back(Query(1, at_limit, 1));
  msgs.push_back(Query(2, over, 1));
  msgs.push_back(AnswerA(Query(3, "www.example.com", 1), 0, true));
  msgs.push_back(AnswerA(Query(4, at_limit, 1), 0, true));
  std::mt19937 rng(11);
  for (int i = 0; i < 3000; ++i) {
    std::string m = msgs[static_cast<size_t>(i) % 4];
    for (int k = 0; k < 1 + i % 3; ++k) m[rng() % m.size()] = static_cast<char>(rng());
    if (i % 7 == 0) m.resize(rng() % m.size());
    msgs.push_back(std::move(m));
  }
  int valid = 0;
  for (const std::string& m : msgs) {
    Frame full, bare;
    const bool ok = ParseMessage(m, &full);
    EXPECT_EQ(ParseMessage(m, &bare, /*with_text=*/false), ok);
    if (ok) {
      ++valid;
      EXPECT_EQ(bare.id, full.id);
      EXPECT_EQ(bare.is_response, full.is_response);
      EXPECT_TRUE(bare.qname.empty());
      EXPECT_TRUE(bare.answers.empty());
    }
  }
  EXPECT_GT(valid, 100);
  Frame f;
  ASSERT_TRUE(ParseMessage(msgs[0], &f));
  EXPECT_EQ(f.qname, at_limit);
  EXPECT_FALSE(ParseMessage(msgs[1], &f));
  ASSERT_TRUE(ParseMessage(msgs[3], &f));
  EXPECT_EQ(f.qname, at_limit);
  EXPECT_EQ(f.answers, "10.0.0.7");
}

TEST(DnsTest, RejectsGarbageAndHostileNames) {
  Frame f;
  EXPECT_FALSE(ParseMessage("GET / HTTP/1.1\r\n\r\n", &f));
  std::string loop = Query(1, "a", 1);
  loop[12] = static_cast<char>(0xc0);  // pointer to itself
  loop[13] = 12;
  EXPECT_FALSE(ParseMessage(loop, &f));
  flow::ConnectionInfo udp;
  udp.tuple.protocol = net::IpProtocol::kUdp;
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, Query(3, "ok.test", 1), udp), InferResult::kYes);
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00", udp),
            InferResult::kNo);
}

// Over UDP a query travels client -> server and an answer server -> client: inference says no
// to a message in the wrong direction, so the analyzer can swap guessed roles.
TEST(DnsTest, UdpInferenceFollowsTheMessageDirection) {
  flow::ConnectionInfo udp;
  udp.tuple.protocol = net::IpProtocol::kUdp;
  const std::string q = Query(7, "svc.test", 1);
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, q, udp), InferResult::kYes);
  EXPECT_EQ(Infer(flow::StreamDirection::kResponse, q, udp), InferResult::kNo);
  EXPECT_EQ(Infer(flow::StreamDirection::kResponse, AnswerA(q, 0, true), udp), InferResult::kYes);
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, AnswerA(q, 0, true), udp), InferResult::kNo);
}

// A UDP flow as flow tracking's port heuristic guessed it: 127.0.0.1:15353 the client and
// 10.0.0.9:1024 the server (the real client is 10.0.0.9, on the lower port).
flow::ConnectionInfo GuessedTheWrongWayRound() {
  flow::ConnectionInfo conn;
  conn.flow_id = 1;
  conn.tuple.protocol = net::IpProtocol::kUdp;
  conn.tuple.src_ip = *net::IpAddress::Parse("127.0.0.1");
  conn.tuple.src_port = 15353;
  conn.tuple.dst_ip = *net::IpAddress::Parse("10.0.0.9");
  conn.tuple.dst_port = 1024;
  conn.role_source = common::v1::ROLE_SOURCE_PORT_HEURISTIC;
  return conn;
}

// A client on a lower port than its DNS server (here 1024 -> 15353): the port heuristic makes the
// client the server; the query coming from the "server" side swaps the roles back.
TEST(DnsTest, QueryFromTheLowerPortFixesGuessedRoles) {
  testing::CollectingSink sink;
  metrics::Registry reg;
  L7Analyzer analyzer(&sink, &reg);
  const flow::ConnectionInfo conn = GuessedTheWrongWayRound();
  const std::string q = Query(9, "web.example.test", 1);
  analyzer.OnData(conn, flow::StreamDirection::kResponse, Chunk(q, 1'000'000, true));
  analyzer.OnData(conn, flow::StreamDirection::kRequest, Chunk(AnswerA(q, 0, true), 1'500'000, true));
  analyzer.FlushAll(2'000'000);
  ASSERT_EQ(sink.l7.size(), 1u);
  EXPECT_EQ(sink.l7[0].request_resource(), "web.example.test");
  EXPECT_EQ(sink.l7[0].response_status(), common::v1::RESPONSE_STATUS_OK);
  EXPECT_EQ(sink.l7[0].server_port(), 15353u);
  EXPECT_EQ(sink.l7[0].client_port(), 1024u);
  EXPECT_EQ(sink.l7[0].ip4_0(), 0x0a000009u);  // client: 10.0.0.9
}

// After its answer a UDP flow's connection is dormant (a few bytes, no parser); later queries
// on the same flow resume it with the same protocol and the same role swap, and it still
// counts as open until it closes.
TEST(DnsTest, FlowResumesAfterItsAnswerWithTheSameRoles) {
  testing::CollectingSink sink;
  metrics::Registry reg;
  L7Analyzer analyzer(&sink, &reg);
  const flow::ConnectionInfo conn = GuessedTheWrongWayRound();
  for (int i = 0; i < 3; ++i) {
    const uint64_t t = (1 + static_cast<uint64_t>(i)) * 1'000'000'000ULL;
    const std::string q = Query(static_cast<uint16_t>(20 + i), "web.example.test", 1);
    analyzer.OnData(conn, flow::StreamDirection::kResponse, Chunk(q, t, true));
    analyzer.OnData(conn, flow::StreamDirection::kRequest, Chunk(AnswerA(q, 0, true), t + 1000, true));
    EXPECT_EQ(analyzer.connection_count(), 1u);
    EXPECT_EQ(analyzer.ProtocolOf(1), common::v1::L7_PROTOCOL_DNS);
  }
  // A message that is not DNS on a resumed flow goes to the DNS parser, not to inference.
  analyzer.OnData(conn, flow::StreamDirection::kResponse, Chunk("GET / HTTP/1.1\r\n\r\n", 5'000'000'000ULL, true));
  analyzer.OnClose(conn, 6'000'000'000ULL);
  EXPECT_EQ(analyzer.connection_count(), 0u);
  EXPECT_EQ(analyzer.ProtocolOf(1), common::v1::L7_PROTOCOL_DNS);
  ASSERT_EQ(sink.l7.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(sink.l7[static_cast<size_t>(i)].request_id(), 20u + static_cast<uint32_t>(i));
    EXPECT_EQ(sink.l7[static_cast<size_t>(i)].server_port(), 15353u);
    EXPECT_EQ(sink.l7[static_cast<size_t>(i)].client_port(), 1024u);
  }
  EXPECT_EQ(reg.CounterTotal("sonde_agent_l7_connections_inferred_total"), 1u);
  EXPECT_EQ(reg.CounterTotal("sonde_agent_l7_invalid_frames_total"), 1u);
}

TEST(DnsGoldenTest, DnsmasqLoopbackCapture) {
  auto recs = testing::RecordsFromPcap(
      testing::SourcePath("agent/protocols/dns/testdata/dns_dnsmasq.pcap"));
  // record.sh: 6 UDP queries and 2 TCP queries; two names do not exist.
  ASSERT_EQ(recs.size(), 8u);
  int nx = 0, tcp = 0;
  for (const auto& r : recs) {
    EXPECT_EQ(r.l7_protocol(), common::v1::L7_PROTOCOL_DNS);
    nx += r.response_exception() == "NXDOMAIN";
    tcp += r.protocol() == 6;
  }
  EXPECT_EQ(nx, 2);
  EXPECT_EQ(tcp, 2);
  std::string diff = testing::CompareWithGolden(
      "agent/protocols/dns/testdata/dns_dnsmasq.golden", testing::RecordsToText(recs));
  EXPECT_TRUE(diff.empty()) << diff;
}

}  // namespace
}  // namespace sonde::agent::protocols::dns
