// L7Analyzer: inference, dispatch, connection fields, timeouts, RED metrics, ProtocolOf.
#include "agent/protocols/common/l7_analyzer.h"

#include <gtest/gtest.h>

#include "agent/protocols/common/testing/collecting_sink.h"
#include "agent/protocols/common/testing/line_protocol.h"

namespace sonde::agent::protocols {
namespace {

constexpr uint64_t kSec = 1'000'000'000ULL;

flow::StreamChunk Chunk(std::string_view s, uint64_t ts) {
  flow::StreamChunk c;
  c.timestamp_ns = ts;
  c.data = {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  return c;
}

flow::ConnectionInfo Conn(uint64_t id, uint16_t server_port) {
  flow::ConnectionInfo c;
  c.flow_id = id;
  c.tuple.src_ip = *net::IpAddress::Parse("10.0.0.1");
  c.tuple.dst_ip = *net::IpAddress::Parse("10.0.0.2");
  c.tuple.src_port = 40000;
  c.tuple.dst_port = server_port;
  c.process_0 = {123, "curl", ""};
  return c;
}

class L7AnalyzerTest : public ::testing::Test {
 protected:
  L7AnalyzerOptions Options() {
    L7AnalyzerOptions o;
    o.protocols = std::span<const ProtocolSpec>(&testing::kLineSpec, 1);
    o.parser.request_timeout_ns = 5 * kSec;
    return o;
  }
  testing::CollectingSink sink_;
  metrics::Registry metrics_;
};

// Mid-stream capture where flow tracking guessed the roles from ports wrongly: the client's
// requests arrive in the "response" direction. The protocol recognises them and flips the roles.
TEST_F(L7AnalyzerTest, ProtocolCorrectsGuessedRoles) {
  L7Analyzer a(&sink_, &metrics_, Options());
  auto conn = Conn(3, 9999);
  conn.role_source = common::v1::ROLE_SOURCE_PORT_HEURISTIC;
  a.OnData(conn, flow::StreamDirection::kResponse, Chunk("Q 1 /x\n", 10 * kSec));
  EXPECT_EQ(a.ProtocolOf(3), common::v1::L7_PROTOCOL_REDIS);
  a.OnData(conn, flow::StreamDirection::kRequest, Chunk("A 1 200\n", 10 * kSec + 2000));
  ASSERT_EQ(sink_.l7.size(), 1u);
  EXPECT_EQ(sink_.l7[0].request_resource(), "/x");
  EXPECT_EQ(sink_.l7[0].client_port(), 9999u);
  EXPECT_EQ(sink_.l7[0].server_port(), 40000u);
  EXPECT_EQ(sink_.l7[0].ip4_0(), 0x0a000002u);
  EXPECT_EQ(sink_.l7[0].process_id_1(), 123u);

  // Roles seen in the handshake are never swapped.
  auto fixed = Conn(4, 9999);
  fixed.role_source = common::v1::ROLE_SOURCE_HANDSHAKE;
  a.OnData(fixed, flow::StreamDirection::kResponse, Chunk("Q 1 /x\n", 11 * kSec));
  EXPECT_EQ(a.ProtocolOf(4), common::v1::L7_PROTOCOL_UNKNOWN);
}

TEST_F(L7AnalyzerTest, InfersOnAnyPortAndFillsConnectionFields) {
  L7Analyzer a(&sink_, &metrics_, Options());
  auto conn = Conn(1, 9999);  // not the hinted port
  a.OnData(conn, flow::StreamDirection::kRequest, Chunk("Q", 10 * kSec));  // too short: maybe
  EXPECT_EQ(a.ProtocolOf(1), common::v1::L7_PROTOCOL_UNKNOWN);
  a.OnData(conn, flow::StreamDirection::kRequest, Chunk(" 1 /u/5\n", 10 * kSec + 1000));
  EXPECT_EQ(a.ProtocolOf(1), common::v1::L7_PROTOCOL_REDIS);
  a.OnData(conn, flow::StreamDirection::kResponse, Chunk("A 1 200\n", 10 * kSec + 3000000));
  ASSERT_EQ(sink_.l7.size(), 1u);
  const auto& r = sink_.l7[0];
  EXPECT_EQ(r.request_resource(), "/u/5");  // the stashed first byte was replayed
  EXPECT_EQ(r.flow_id(), 1u);
  EXPECT_EQ(r.is_ipv4(), 1u);
  EXPECT_EQ(r.ip4_0(), 0x0a000001u);
  EXPECT_EQ(r.ip4_1(), 0x0a000002u);
  EXPECT_EQ(r.client_port(), 40000u);
  EXPECT_EQ(r.server_port(), 9999u);
  EXPECT_EQ(r.protocol(), 6u);
  EXPECT_EQ(r.process_id_0(), 123u);
  EXPECT_EQ(r.process_kname_0(), "curl");
  EXPECT_EQ(r.response_duration(), 3000u);  // from the first (stashed) byte
  EXPECT_EQ(r.time(), 10u);
  EXPECT_EQ(metrics_.CounterTotal("sonde_agent_l7_records_total"), 1u);
}

TEST_F(L7AnalyzerTest, UnknownAfterBoundedChunks) {
  auto o = Options();
  o.max_inference_chunks = 3;
  L7Analyzer a(&sink_, &metrics_, o);
  auto conn = Conn(2, 7777);
  for (int i = 0; i < 5; ++i) {
    a.OnData(conn, flow::StreamDirection::kRequest, Chunk("GET / HTTP/1.1\r\n", kSec));
  }
  EXPECT_EQ(a.ProtocolOf(2), common::v1::L7_PROTOCOL_UNKNOWN);
  EXPECT_EQ(metrics_.CounterTotal("sonde_agent_l7_connections_unknown_total"), 1u);
}

TEST_F(L7AnalyzerTest, TimeoutsOnTickAndFlushAllAndProtocolAfterClose) {
  L7Analyzer a(&sink_, &metrics_, Options());
  auto c1 = Conn(3, 7777);
  a.OnData(c1, flow::StreamDirection::kRequest, Chunk("Q 1 /slow\n", 100 * kSec));
  a.OnTick(103 * kSec);
  EXPECT_TRUE(sink_.l7.empty());
  a.OnTick(106 * kSec);
  ASSERT_EQ(sink_.l7.size(), 1u);
  EXPECT_EQ(sink_.l7[0].response_status(), common::v1::RESPONSE_STATUS_TIMEOUT);
  a.OnClose(c1, 107 * kSec);
  EXPECT_EQ(a.connection_count(), 0u);
  EXPECT_EQ(a.ProtocolOf(3), common::v1::L7_PROTOCOL_REDIS);

  auto c2 = Conn(4, 7777);
  a.OnData(c2, flow::StreamDirection::kRequest, Chunk("Q 1 /pending\n", 108 * kSec));
  a.FlushAll(108 * kSec);
  ASSERT_EQ(sink_.l7.size(), 2u);
  EXPECT_EQ(sink_.l7[1].response_status(), common::v1::RESPONSE_STATUS_TIMEOUT);
  EXPECT_EQ(a.connection_count(), 0u);
}

TEST_F(L7AnalyzerTest, RedMetricsPerSecondAndMinute) {
  L7Analyzer a(&sink_, &metrics_, Options());
  auto conn = Conn(5, 7777);
  const uint64_t t0 = 120 * kSec;
  a.OnData(conn, flow::StreamDirection::kRequest, Chunk("Q 1 /a/1\nQ 2 /a/2\nQ 3 /b\n", t0));
  a.OnData(conn, flow::StreamDirection::kResponse,
           Chunk("A 1 200\nA 2 500\nA 3 404\n", t0 + 2000000));
  ASSERT_EQ(sink_.l7.size(), 3u);
  a.OnTick(t0 + 4 * kSec);  // the 1 s interval closed; the minute is still open
  ASSERT_EQ(sink_.app.size(), 2u);  // endpoints /a/{id} and /b
  uint64_t requests = 0, server_errors = 0, client_errors = 0;
  for (const auto& m : sink_.app) {
    EXPECT_EQ(m.granularity_s(), 1u);
    EXPECT_EQ(m.time(), 120u);
    EXPECT_EQ(m.server_port(), 7777u);
    requests += m.requests();
    server_errors += m.server_errors();
    client_errors += m.client_errors();
    if (m.endpoint() == "/a/{id}") {
      EXPECT_EQ(m.requests(), 2u);
      EXPECT_EQ(m.latency_count(), 2u);
      EXPECT_EQ(m.latency_max_us(), 2000u);
    }
  }
  EXPECT_EQ(requests, 3u);
  EXPECT_EQ(server_errors, 1u);
  EXPECT_EQ(client_errors, 1u);
  a.FlushAll(t0 + 5 * kSec);
  ASSERT_EQ(sink_.app.size(), 4u);
  EXPECT_EQ(sink_.app[2].granularity_s(), 60u);
  EXPECT_EQ(sink_.app[2].time(), 120u);
}

}  // namespace
}  // namespace sonde::agent::protocols

namespace sonde::agent::protocols {
namespace {

// One DNS message: a query for `name` (A), or its answer with one A record.
std::string DnsMessage(uint16_t id, std::string_view name, bool answer) {
  std::string m;
  auto u16 = [&m](uint16_t v) {
    m.push_back(static_cast<char>(v >> 8));
    m.push_back(static_cast<char>(v & 0xff));
  };
  u16(id);
  u16(answer ? 0x8180 : 0x0100);
  u16(1);
  u16(answer ? 1 : 0);
  u16(0);
  u16(0);
  for (size_t pos = 0; pos <= name.size();) {
    size_t dot = name.find('.', pos);
    if (dot == std::string_view::npos) dot = name.size();
    m.push_back(static_cast<char>(dot - pos));
    m.append(name.substr(pos, dot - pos));
    pos = dot + 1;
  }
  m.push_back('\0');
  u16(1);
  u16(1);
  if (answer) {
    u16(0xc00c);
    u16(1);
    u16(1);
    u16(0);
    u16(60);
    u16(4);
    m.append("\x0a\x00\x00\x07", 4);
  }
  return m;
}

flow::ConnectionInfo DnsConn(uint64_t id) {
  flow::ConnectionInfo c;
  c.flow_id = id;
  c.tuple.src_ip = *net::IpAddress::Parse("10.0.0.1");
  c.tuple.dst_ip = *net::IpAddress::Parse("10.0.0.53");
  c.tuple.src_port = static_cast<uint16_t>(1024 + id % 60000);
  c.tuple.dst_port = 53;
  c.tuple.protocol = net::IpProtocol::kUdp;
  return c;
}

// A query datagram at `ts` and, unless `answer` is false, its answer `answer_after_ns` later.
void DnsExchange(L7Analyzer* a, const flow::ConnectionInfo& conn, uint16_t id,
                 std::string_view name, uint64_t ts, bool answer = true,
                 uint64_t answer_after_ns = 3000) {
  const std::string q = DnsMessage(id, name, false);
  flow::StreamChunk qc = Chunk(q, ts);
  qc.is_datagram = true;
  a->OnData(conn, flow::StreamDirection::kRequest, qc);
  if (!answer) return;
  const std::string r = DnsMessage(id, name, true);
  flow::StreamChunk rc = Chunk(r, ts + answer_after_ns);
  rc.is_datagram = true;
  a->OnData(conn, flow::StreamDirection::kResponse, rc);
}

// DNS keeps no state between messages, so its parser goes back to the pool whenever a flow is
// idle; every exchange on a long-lived UDP flow must still become its own complete record.
TEST(L7AnalyzerDnsTest, ExchangesOnOneUdpFlowAcrossParserReleases) {
  testing::CollectingSink sink;
  metrics::Registry metrics;
  L7Analyzer a(&sink, &metrics);
  const flow::ConnectionInfo conn = DnsConn(9);
  const char* names[] = {"a.example.test", "b.example.test", "c.example.test"};
  for (uint16_t i = 0; i < 3; ++i) {
    DnsExchange(&a, conn, 100 + i, names[i], (10 + i) * kSec, true, /*answer_after_ns=*/5000);
  }
  a.FlushAll(20 * kSec);
  ASSERT_EQ(sink.l7.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(sink.l7[i].l7_protocol(), common::v1::L7_PROTOCOL_DNS);
    EXPECT_EQ(sink.l7[i].request_id(), 100 + i);
    EXPECT_EQ(sink.l7[i].request_resource(), names[i]);
    EXPECT_EQ(sink.l7[i].response_status(), common::v1::RESPONSE_STATUS_OK);
    EXPECT_EQ(sink.l7[i].response_duration(), 5u);
  }
}

// Parsers of closed connections are pooled per protocol and reused: with two protocols closing
// and opening connections in turn, every connection must get a parser of its own protocol back.
TEST(L7AnalyzerPoolTest, ReusedParsersKeepTheirProtocol) {
  testing::CollectingSink sink;
  metrics::Registry metrics;
  L7Analyzer a(&sink, &metrics);
  const char* names[] = {"a.example.test", "b.example.test", "c.example.test"};
  for (uint16_t i = 0; i < 3; ++i) {
    const flow::ConnectionInfo dns = DnsConn(100 + i);
    DnsExchange(&a, dns, 100 + i, names[i], (10 + i) * kSec, true, /*answer_after_ns=*/5000);
    a.OnClose(dns, (10 + i) * kSec + 6000);

    flow::ConnectionInfo redis = Conn(200 + i, 6379);
    redis.tuple.protocol = net::IpProtocol::kTcp;
    redis.role_source = common::v1::ROLE_SOURCE_HANDSHAKE;
    a.OnData(redis, flow::StreamDirection::kRequest,
             Chunk("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", (10 + i) * kSec + 7000));
    a.OnData(redis, flow::StreamDirection::kResponse, Chunk("$1\r\nv\r\n", (10 + i) * kSec + 9000));
    a.OnClose(redis, (10 + i) * kSec + 10000);
  }
  ASSERT_EQ(sink.l7.size(), 6u);
  for (size_t i = 0; i < 3; ++i) {
    const v1::L7RequestLog& d = sink.l7[2 * i];
    EXPECT_EQ(d.l7_protocol(), common::v1::L7_PROTOCOL_DNS) << i;
    EXPECT_EQ(d.request_resource(), names[i]);
    EXPECT_EQ(d.response_status(), common::v1::RESPONSE_STATUS_OK);
    const v1::L7RequestLog& r = sink.l7[2 * i + 1];
    EXPECT_EQ(r.l7_protocol(), common::v1::L7_PROTOCOL_REDIS) << i;
    EXPECT_EQ(r.request_type(), "GET");
    EXPECT_EQ(r.response_duration(), 2u);
  }
}

// Thousands of flows whose ids span far more than the connection table (sequential runs of
// two workers, and scattered ids), each parked after its answer, resumed by a second exchange,
// then closed or flushed: every exchange is a record, and ProtocolOf answers throughout.
TEST(L7AnalyzerTableTest, ManyFlowsParkResumeAndClose) {
  testing::CollectingSink sink;
  metrics::Registry metrics;
  L7Analyzer a(&sink, &metrics);
  std::vector<uint64_t> ids;
  for (uint64_t i = 0; i < 1500; ++i) ids.push_back((uint64_t{1} << 32) + i);
  for (uint64_t i = 0; i < 1500; ++i) ids.push_back((uint64_t{2} << 32) + i);
  for (uint64_t i = 0; i < 1000; ++i) ids.push_back(i * 7919 + 100000);
  uint64_t ts = 10 * kSec;
  for (size_t i = 0; i < ids.size(); ++i) {
    DnsExchange(&a, DnsConn(ids[i]), static_cast<uint16_t>(i), "a.example.test", ts += 1000);
  }
  ASSERT_EQ(sink.l7.size(), ids.size());
  EXPECT_EQ(a.connection_count(), ids.size());  // all dormant, still counted
  for (uint64_t id : ids) ASSERT_EQ(a.ProtocolOf(id), common::v1::L7_PROTOCOL_DNS) << id;
  EXPECT_EQ(a.ProtocolOf(99), common::v1::L7_PROTOCOL_UNKNOWN);
  // Resumed in reverse order; the last 100 keep a query unanswered (open, not dormant).
  for (size_t k = ids.size(); k-- > 0;) {
    DnsExchange(&a, DnsConn(ids[k]), static_cast<uint16_t>(k + 7), "b.example.test",
                ts += 1000, /*answer=*/k >= 100);
  }
  ASSERT_EQ(sink.l7.size(), 2 * ids.size() - 100);
  for (size_t i = ids.size(); i < sink.l7.size(); ++i) {
    ASSERT_EQ(sink.l7[i].request_resource(), "b.example.test");
    ASSERT_EQ(sink.l7[i].response_status(), common::v1::RESPONSE_STATUS_OK);
  }
  EXPECT_EQ(a.connection_count(), ids.size());
  // Close every other flow: they still answer ProtocolOf, and no longer count.
  for (size_t i = 0; i < ids.size(); i += 2) {
    a.OnClose(DnsConn(ids[i]), ts += 1000);
    ASSERT_EQ(a.ProtocolOf(ids[i]), common::v1::L7_PROTOCOL_DNS);
  }
  EXPECT_EQ(a.connection_count(), ids.size() / 2);
  a.FlushAll(ts + kSec);
  EXPECT_EQ(a.connection_count(), 0u);
  EXPECT_EQ(sink.l7.size(), 2 * ids.size());  // the 100 unanswered queries timed out
  for (size_t i = 2 * ids.size() - 100; i < sink.l7.size(); ++i) {
    ASSERT_EQ(sink.l7[i].response_status(), common::v1::RESPONSE_STATUS_TIMEOUT);
  }
  for (uint64_t id : ids) ASSERT_EQ(a.ProtocolOf(id), common::v1::L7_PROTOCOL_DNS) << id;
  // A closed flow that sees data again is analysed afresh.
  DnsExchange(&a, DnsConn(ids[0]), 1, "c.example.test", ts + 2 * kSec);
  EXPECT_EQ(sink.l7.back().request_resource(), "c.example.test");
  EXPECT_EQ(a.connection_count(), 1u);
  // Closed entries expire after twice the idle timeout; open and dormant ones never do.
  const uint64_t later = ts + 2 * L7AnalyzerOptions{}.idle_timeout_ns + 3 * kSec;
  a.OnTick(later);
  EXPECT_EQ(a.ProtocolOf(ids[1]), common::v1::L7_PROTOCOL_UNKNOWN);
  EXPECT_EQ(a.ProtocolOf(ids[0]), common::v1::L7_PROTOCOL_DNS);  // dormant again
}

// The connection limit counts open connections only: new ones beyond it are dropped and
// counted; dormant ones resume regardless; a closed one frees a place.
TEST(L7AnalyzerTableTest, MaxConnectionsDropsNewFlowsOnly) {
  testing::CollectingSink sink;
  metrics::Registry metrics;
  L7AnalyzerOptions o;
  o.max_connections = 2;
  L7Analyzer a(&sink, &metrics, o);
  DnsExchange(&a, DnsConn(1), 1, "a.example.test", 10 * kSec);  // parked: not open
  DnsExchange(&a, DnsConn(2), 2, "a.example.test", 11 * kSec, false);  // open
  DnsExchange(&a, DnsConn(3), 3, "a.example.test", 12 * kSec, false);  // open: at the limit
  DnsExchange(&a, DnsConn(4), 4, "a.example.test", 13 * kSec);  // dropped
  EXPECT_EQ(metrics.CounterTotal("sonde_agent_l7_connections_dropped_total"), 2u);  // 2 chunks
  EXPECT_EQ(a.ProtocolOf(4), common::v1::L7_PROTOCOL_UNKNOWN);
  EXPECT_EQ(a.connection_count(), 3u);
  EXPECT_EQ(sink.l7.size(), 1u);
  DnsExchange(&a, DnsConn(1), 5, "b.example.test", 14 * kSec);  // resumes over the limit
  ASSERT_EQ(sink.l7.size(), 2u);
  EXPECT_EQ(sink.l7[1].request_resource(), "b.example.test");
  a.OnClose(DnsConn(3), 15 * kSec);
  DnsExchange(&a, DnsConn(4), 6, "c.example.test", 16 * kSec);  // a place is free
  ASSERT_EQ(sink.l7.size(), 4u);  // 3's pending query timed out at its close, then 4's answer
  EXPECT_EQ(sink.l7[3].request_resource(), "c.example.test");
  EXPECT_EQ(a.ProtocolOf(4), common::v1::L7_PROTOCOL_DNS);
  EXPECT_EQ(metrics.CounterTotal("sonde_agent_l7_connections_dropped_total"), 2u);
}

// End of input closes open connections in flow id order, whatever order they opened in.
TEST(L7AnalyzerTableTest, FlushAllClosesInFlowIdOrder) {
  testing::CollectingSink sink;
  metrics::Registry metrics;
  L7Analyzer a(&sink, &metrics);
  const uint64_t ids[] = {50, 7, (uint64_t{1} << 32) + 3, 300, 12, 99};
  uint64_t ts = 10 * kSec;
  for (uint64_t id : ids) DnsExchange(&a, DnsConn(id), 1, "a.example.test", ts += 1000, false);
  a.OnClose(DnsConn(300), ts += 1000);
  a.FlushAll(ts + kSec);
  std::vector<uint64_t> order;
  for (const auto& r : sink.l7) order.push_back(r.flow_id());
  EXPECT_EQ(order, (std::vector<uint64_t>{300, 7, 12, 50, 99, (uint64_t{1} << 32) + 3}));
}

// Port hints decide which of several protocols recognising the same bytes is tried first,
// per transport; without a hint the table order decides.
TEST(L7AnalyzerHintTest, HintedProtocolOfTheTransportWins) {
  using common::v1::L7Protocol;
  const ProtocolSpec specs[] = {
      {common::v1::L7_PROTOCOL_MQTT, "A", &testing::LineTraits::Infer,
       &MakeFrameParser<testing::LineTraits>, Transport::kTcp, {7001}},
      {common::v1::L7_PROTOCOL_KAFKA, "B", &testing::LineTraits::Infer,
       &MakeFrameParser<testing::LineTraits>, Transport::kBoth, {7002, 0, 7003}},
      {common::v1::L7_PROTOCOL_DUBBO, "C", &testing::LineTraits::Infer,
       &MakeFrameParser<testing::LineTraits>, Transport::kUdp, {7001}},
      {common::v1::L7_PROTOCOL_GRPC, "D", nullptr, nullptr, Transport::kBoth, {7004}},
  };
  testing::CollectingSink sink;
  metrics::Registry metrics;
  L7AnalyzerOptions o;
  o.protocols = specs;
  L7Analyzer a(&sink, &metrics, o);
  struct Case {
    uint16_t port;
    bool udp;
    L7Protocol want;
  };
  const Case cases[] = {
      {7001, false, common::v1::L7_PROTOCOL_MQTT},  {7001, true, common::v1::L7_PROTOCOL_DUBBO},
      {7002, false, common::v1::L7_PROTOCOL_KAFKA}, {7003, true, common::v1::L7_PROTOCOL_KAFKA},
      {9999, false, common::v1::L7_PROTOCOL_MQTT},  {9999, true, common::v1::L7_PROTOCOL_KAFKA},
      {7004, false, common::v1::L7_PROTOCOL_MQTT},  {0, true, common::v1::L7_PROTOCOL_KAFKA},
  };
  uint64_t id = 1;
  for (const Case& k : cases) {
    flow::ConnectionInfo conn = Conn(id, k.port);
    conn.tuple.protocol = k.udp ? net::IpProtocol::kUdp : net::IpProtocol::kTcp;
    conn.role_source = common::v1::ROLE_SOURCE_HANDSHAKE;
    a.OnData(conn, flow::StreamDirection::kRequest, Chunk("Q 1 /x\n", 10 * kSec));
    EXPECT_EQ(a.ProtocolOf(id), k.want) << "port " << k.port << (k.udp ? " udp" : " tcp");
    ++id;
  }
}

}  // namespace
}  // namespace sonde::agent::protocols
