// FlowTracker on crafted TCP/UDP conversations: roles, RTT split, counters, close types,
// timeouts, stream hand-off, bounded table, periodic rows and network metrics.
#include "agent/flow/flow_tracker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "agent/flow/testing/collecting_sink.h"
#include "agent/flow/testing/packet_builder.h"

namespace sonde::agent::flow {
namespace {

using namespace testing;  // NOLINT: test helpers
constexpr uint64_t kSec = 1'000'000'000ull;
constexpr uint64_t kMs = 1'000'000ull;
constexpr uint8_t S = kTcpSyn, A = kTcpAck, F = kTcpFin, R = kTcpRst, P = kTcpPsh;

class FlowTrackerTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(FlowTrackerConfig{}); }
  void Make(FlowTrackerConfig cfg) {
    tracker_ = std::make_unique<FlowTracker>(cfg, &sink_, &handler_, &registry_);
  }
  // Client 10.0.0.1:40000 <-> server 10.0.0.2:80.
  void C(uint64_t t, uint32_t seq, uint32_t ack, uint8_t flags, std::string_view payload = "",
         uint16_t window = 1000) {
    Feed(t, EthTcp4("10.0.0.1", "10.0.0.2",
                    {.sport = 40000, .dport = 80, .seq = seq, .ack = ack, .flags = flags,
                     .window = window, .payload = payload}));
  }
  void Sv(uint64_t t, uint32_t seq, uint32_t ack, uint8_t flags, std::string_view payload = "",
          uint16_t window = 1000) {
    Feed(t, EthTcp4("10.0.0.2", "10.0.0.1",
                    {.sport = 80, .dport = 40000, .seq = seq, .ack = ack, .flags = flags,
                     .window = window, .payload = payload}));
  }
  void Feed(uint64_t t, const Bytes& b) {
    capture::PacketView v;
    v.timestamp_ns = t;
    v.data = b;
    v.wire_length = static_cast<uint32_t>(b.size());
    tracker_->OnPacket(v);
  }
  // A full conversation: handshake (server RTT 10 ms, client RTT 2 ms), request, response, FINs.
  void Conversation(uint64_t t0) {
    C(t0, 100, 0, S);
    Sv(t0 + 10 * kMs, 500, 101, S | A);
    C(t0 + 12 * kMs, 101, 501, A);
    C(t0 + 13 * kMs, 101, 501, A | P, "GET / HTTP/1.1\r\n\r\n");
    Sv(t0 + 20 * kMs, 501, 119, A | P, "HTTP/1.1 200 OK\r\n\r\n");
    C(t0 + 21 * kMs, 119, 520, A | F);
    Sv(t0 + 22 * kMs, 520, 120, A | F);
    C(t0 + 23 * kMs, 120, 521, A);
  }

  CollectingSink sink_;
  CollectingHandler handler_;
  metrics::Registry registry_;
  std::unique_ptr<FlowTracker> tracker_;
};

TEST_F(FlowTrackerTest, FullConversation) {
  Conversation(100 * kSec);
  EXPECT_EQ(tracker_->active_flows(), 1u);
  tracker_->OnIdle(110 * kSec);  // past the closing linger
  EXPECT_EQ(tracker_->active_flows(), 0u);
  ASSERT_EQ(sink_.l4.size(), 1u);
  const v1::L4FlowLog& r = sink_.l4[0];
  EXPECT_EQ(r.ip4_0(), 0x0A000001u);
  EXPECT_EQ(r.ip4_1(), 0x0A000002u);
  EXPECT_EQ(r.client_port(), 40000u);
  EXPECT_EQ(r.server_port(), 80u);
  EXPECT_EQ(r.protocol(), 6u);
  EXPECT_EQ(r.role_source(), common::v1::ROLE_SOURCE_HANDSHAKE);
  EXPECT_EQ(r.close_type(), common::v1::CLOSE_TYPE_FIN);
  EXPECT_EQ(r.is_new_flow(), 1u);
  EXPECT_EQ(r.packets_0(), 5u);
  EXPECT_EQ(r.packets_1(), 3u);
  EXPECT_EQ(r.payload_bytes_0(), 18u);
  EXPECT_EQ(r.payload_bytes_1(), 19u);
  EXPECT_EQ(r.bytes_0(), 5u * 40u + 18u);
  EXPECT_EQ(r.rtt_server_us(), 10000u);
  EXPECT_EQ(r.rtt_client_us(), 2000u);
  EXPECT_EQ(r.rtt_us(), 12000u);
  EXPECT_EQ(r.syn_count(), 1u);
  EXPECT_EQ(r.synack_count(), 1u);
  EXPECT_EQ(r.fin_0(), 1u);
  EXPECT_EQ(r.fin_1(), 1u);
  EXPECT_EQ(r.retrans_0() + r.retrans_1(), 0u);
  EXPECT_EQ(r.start_time_us(), 100'000'000u);
  EXPECT_EQ(r.duration_us(), 23'000u);
  ASSERT_EQ(handler_.streams.size(), 1u);
  const auto& s = handler_.streams.begin()->second;
  EXPECT_EQ(s.bytes[0], "GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(s.bytes[1], "HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(s.conn.tuple.dst_port, 80);
}

TEST_F(FlowTrackerTest, RetransmissionAndOutOfOrder) {
  C(kSec, 100, 0, S);
  Sv(kSec + kMs, 500, 101, S | A);
  C(kSec + 2 * kMs, 101, 501, A);
  C(kSec + 3 * kMs, 101, 501, A, "aaaa");
  C(kSec + 4 * kMs, 101, 501, A, "aaaa");         // retransmission
  C(kSec + 5 * kMs, 109, 501, A, "cccc");         // ahead: hole [105,109)
  C(kSec + 5 * kMs + 100, 105, 501, A, "bbbb");   // fills it quickly: reordering
  C(kSec + 6 * kMs, 117, 501, A, "eeee");         // hole [113,117)
  C(kSec + 400 * kMs, 113, 501, A, "dddd");       // fills it late: retransmission
  tracker_->FlushAll(2 * kSec);
  ASSERT_EQ(sink_.l4.size(), 1u);
  EXPECT_EQ(sink_.l4[0].retrans_0(), 2u);
  EXPECT_EQ(sink_.l4[0].out_of_order_0(), 1u);
  EXPECT_EQ(sink_.l4[0].close_type(), common::v1::CLOSE_TYPE_AGENT_EXIT);
  EXPECT_EQ(handler_.streams.begin()->second.bytes[0], "aaaabbbbccccddddeeee");
}

TEST_F(FlowTrackerTest, SynUnansweredTimesOut) {
  C(kSec, 100, 0, S);
  C(2 * kSec, 100, 0, S);
  tracker_->OnIdle(4 * kSec);
  EXPECT_EQ(sink_.l4.size(), 0u);
  tracker_->OnIdle(20 * kSec);
  ASSERT_EQ(sink_.l4.size(), 1u);
  EXPECT_EQ(sink_.l4[0].close_type(), common::v1::CLOSE_TYPE_SYN_UNANSWERED);
  EXPECT_EQ(sink_.l4[0].syn_count(), 2u);
  EXPECT_EQ(sink_.l4[0].syn_retrans(), 1u);
  tracker_->FlushAll(20 * kSec);
  uint64_t unanswered = 0;
  for (const auto& m : sink_.net) {
    if (m.granularity_s() == 60) unanswered += m.syn_unanswered();
  }
  EXPECT_EQ(unanswered, 1u);
}

TEST_F(FlowTrackerTest, RstOnSyn) {
  C(kSec, 100, 0, S);
  Sv(kSec + kMs, 0, 101, R | A, "", 0);
  tracker_->FlushAll(kSec + 2 * kMs);
  ASSERT_EQ(sink_.l4.size(), 1u);
  EXPECT_EQ(sink_.l4[0].close_type(), common::v1::CLOSE_TYPE_RST_ON_SYN);
  EXPECT_EQ(sink_.l4[0].rst_1(), 1u);
  EXPECT_EQ(sink_.l4[0].zero_win_1(), 0u);  // RST windows are not zero-window events
}

TEST_F(FlowTrackerTest, ClientResetAndZeroWindow) {
  C(kSec, 100, 0, S);
  Sv(kSec + kMs, 500, 101, S | A, "", 0);
  C(kSec + 2 * kMs, 101, 501, A);
  C(kSec + 3 * kMs, 101, 501, R);
  tracker_->FlushAll(kSec + 4 * kMs);
  ASSERT_EQ(sink_.l4.size(), 1u);
  EXPECT_EQ(sink_.l4[0].close_type(), common::v1::CLOSE_TYPE_CLIENT_RST);
  EXPECT_EQ(sink_.l4[0].rst_0(), 1u);
  EXPECT_EQ(sink_.l4[0].zero_win_1(), 1u);
}

TEST_F(FlowTrackerTest, MidStreamUsesPortHeuristic) {
  Sv(kSec, 500, 101, A | P, "response");
  C(kSec + kMs, 101, 508, A);
  tracker_->FlushAll(2 * kSec);
  ASSERT_EQ(sink_.l4.size(), 1u);
  EXPECT_EQ(sink_.l4[0].role_source(), common::v1::ROLE_SOURCE_PORT_HEURISTIC);
  EXPECT_EQ(sink_.l4[0].server_port(), 80u);
  EXPECT_EQ(sink_.l4[0].client_port(), 40000u);
  EXPECT_EQ(sink_.l4[0].packets_1(), 1u);
  EXPECT_EQ(handler_.streams.begin()->second.bytes[1], "response");
}

TEST_F(FlowTrackerTest, SynAckFirstStillFindsTheClient) {
  Sv(kSec, 500, 101, S | A);
  C(kSec + kMs, 101, 501, A);
  tracker_->FlushAll(2 * kSec);
  ASSERT_EQ(sink_.l4.size(), 1u);
  EXPECT_EQ(sink_.l4[0].role_source(), common::v1::ROLE_SOURCE_HANDSHAKE);
  EXPECT_EQ(sink_.l4[0].server_port(), 80u);
  EXPECT_EQ(sink_.l4[0].rtt_client_us(), 1000u);
  EXPECT_EQ(sink_.l4[0].rtt_us(), 0u);  // no SYN seen: no full handshake RTT
}

TEST_F(FlowTrackerTest, PortReuseStartsANewFlow) {
  Conversation(kSec);
  Conversation(kSec + 100 * kMs);
  tracker_->FlushAll(3 * kSec);
  ASSERT_EQ(sink_.l4.size(), 2u);
  EXPECT_NE(sink_.l4[0].flow_id(), sink_.l4[1].flow_id());
  EXPECT_EQ(sink_.l4[0].close_type(), common::v1::CLOSE_TYPE_FIN);
  EXPECT_EQ(sink_.l4[1].close_type(), common::v1::CLOSE_TYPE_FIN);
}

TEST_F(FlowTrackerTest, BoundedTableCountsDrops) {
  FlowTrackerConfig cfg;
  cfg.max_flows = 3;
  Make(cfg);
  for (uint16_t i = 0; i < 5; ++i) {
    Feed(kSec, EthTcp4("10.0.0.1", "10.0.0.2", {.sport = static_cast<uint16_t>(1000 + i), .flags = S}));
  }
  EXPECT_EQ(tracker_->active_flows(), 3u);
  EXPECT_EQ(tracker_->dropped_flows(), 2u);
  EXPECT_EQ(registry_.CounterTotal("sonde_agent_flows_created_total"), 3u);
  EXPECT_NE(registry_.RenderPrometheus().find("flow_table_full"), std::string::npos);
}

TEST_F(FlowTrackerTest, LostSynAckRestartsHandshakeTimingAndCountsRetransmissions) {
  C(kSec, 100, 0, S);
  Sv(kSec + 200 * kMs, 500, 101, S | A);   // lost on the way to the client
  C(kSec + 300 * kMs, 100, 0, S);          // so the client sends its SYN again
  Sv(kSec + 500 * kMs, 500, 101, S | A);   // answered again 200 ms later
  C(kSec + 509 * kMs, 101, 501, A);
  tracker_->FlushAll(2 * kSec);
  ASSERT_EQ(sink_.l4.size(), 1u);
  const auto& r = sink_.l4[0];
  EXPECT_EQ(r.rtt_server_us(), 200000u);  // second SYN -> its SYN-ACK
  EXPECT_EQ(r.rtt_client_us(), 9000u);
  EXPECT_EQ(r.rtt_us(), 209000u);
  EXPECT_EQ(r.syn_retrans(), 1u);
  EXPECT_EQ(r.synack_retrans(), 1u);
  EXPECT_EQ(r.retrans_0(), 1u);  // the repeated SYN
  EXPECT_EQ(r.retrans_1(), 1u);  // the repeated SYN-ACK
}

TEST_F(FlowTrackerTest, RetransmittedSynAckDoesNotShortenTheClientSide) {
  C(kSec, 100, 0, S);
  Sv(kSec + 10 * kMs, 500, 101, S | A);
  Sv(kSec + 30 * kMs, 500, 101, S | A);    // the ACK was slow: the server repeats itself
  C(kSec + 31 * kMs, 101, 501, A);
  tracker_->FlushAll(2 * kSec);
  ASSERT_EQ(sink_.l4.size(), 1u);
  EXPECT_EQ(sink_.l4[0].rtt_server_us(), 10000u);
  EXPECT_EQ(sink_.l4[0].rtt_client_us(), 21000u);  // from the first SYN-ACK
}

TEST_F(FlowTrackerTest, PeriodicRowsCarryDeltas) {
  FlowTrackerConfig cfg;
  cfg.report_interval_ns = 10 * kSec;
  Make(cfg);
  C(kSec, 100, 0, S);
  Sv(kSec + kMs, 500, 101, S | A);
  C(kSec + 2 * kMs, 101, 501, A);
  for (int i = 0; i < 30; ++i) C((2 + i) * kSec, 101 + i, 501, A, "x");
  tracker_->FlushAll(40 * kSec);
  ASSERT_GE(sink_.l4.size(), 3u);
  uint64_t packets = 0;
  int new_rows = 0;
  for (const auto& r : sink_.l4) {
    packets += r.packets_0();
    new_rows += r.is_new_flow();
    EXPECT_EQ(r.flow_id(), sink_.l4[0].flow_id());
  }
  EXPECT_EQ(packets, 32u);
  EXPECT_EQ(new_rows, 1);
  EXPECT_EQ(sink_.l4[0].close_type(), common::v1::CLOSE_TYPE_PERIODIC);
  EXPECT_EQ(sink_.l4.back().close_type(), common::v1::CLOSE_TYPE_AGENT_EXIT);
}

TEST_F(FlowTrackerTest, UdpDatagramsAndTimeout) {
  Feed(kSec, Ethernet(0x0800, Ipv4("10.0.0.1", "10.0.0.53", 17, Udp(5353, 53, "query"))));
  Feed(kSec + kMs, Ethernet(0x0800, Ipv4("10.0.0.53", "10.0.0.1", 17, Udp(53, 5353, "answer"))));
  tracker_->OnIdle(100 * kSec);
  ASSERT_EQ(sink_.l4.size(), 1u);
  EXPECT_EQ(sink_.l4[0].protocol(), 17u);
  EXPECT_EQ(sink_.l4[0].server_port(), 53u);
  EXPECT_EQ(sink_.l4[0].close_type(), common::v1::CLOSE_TYPE_TIMEOUT);
  const auto& s = handler_.streams.begin()->second;
  EXPECT_EQ(s.bytes[0], "query");
  EXPECT_EQ(s.bytes[1], "answer");
  EXPECT_EQ(s.datagrams, 2);
}

// Neither port well known: a UDP flow's first sender is the client, even from a port below the
// server's (the lower-port rule made 10.0.0.9:1024 the server here, and keyed the network
// metrics by the client's port).
TEST_F(FlowTrackerTest, UdpFirstSenderIsTheClientWhenNoPortIsWellKnown) {
  Feed(kSec, Ethernet(0x0800, Ipv4("10.0.0.9", "127.0.0.1", 17, Udp(1024, 15353, "query"))));
  Feed(kSec + kMs, Ethernet(0x0800, Ipv4("127.0.0.1", "10.0.0.9", 17, Udp(15353, 1024, "answer"))));
  tracker_->FlushAll(2 * kSec);
  ASSERT_EQ(sink_.l4.size(), 1u);
  EXPECT_EQ(sink_.l4[0].ip4_0(), 0x0A000009u);
  EXPECT_EQ(sink_.l4[0].ip4_1(), 0x7F000001u);
  EXPECT_EQ(sink_.l4[0].client_port(), 1024u);
  EXPECT_EQ(sink_.l4[0].server_port(), 15353u);
  EXPECT_EQ(sink_.l4[0].role_source(), common::v1::ROLE_SOURCE_PORT_HEURISTIC);
  EXPECT_EQ(sink_.l4[0].packets_0(), 1u);
  EXPECT_EQ(sink_.l4[0].bytes_0(), 20u + 8u + 5u);
  const auto& s = handler_.streams.begin()->second;
  EXPECT_EQ(s.bytes[0], "query");
  EXPECT_EQ(s.bytes[1], "answer");
  ASSERT_FALSE(sink_.net.empty());
  for (const auto& m : sink_.net) {
    EXPECT_EQ(m.ip4_0(), 0x0A000009u);
    EXPECT_EQ(m.server_port(), 15353u);
  }
}

// The same rule from the other side: when the server's datagram is the first one seen, the
// server is taken for the client (the protocol layer may still fix the roles; the L4 row says
// they were guessed).
TEST_F(FlowTrackerTest, UdpFirstSenderIsTheClientFromTheHigherPortToo) {
  Feed(kSec, Ethernet(0x0800, Ipv4("127.0.0.1", "10.0.0.9", 17, Udp(15353, 1024, "answer"))));
  tracker_->FlushAll(2 * kSec);
  ASSERT_EQ(sink_.l4.size(), 1u);
  EXPECT_EQ(sink_.l4[0].client_port(), 15353u);
  EXPECT_EQ(sink_.l4[0].server_port(), 1024u);
  EXPECT_EQ(sink_.l4[0].role_source(), common::v1::ROLE_SOURCE_PORT_HEURISTIC);
}

// A well-known port still wins over the first sender for UDP.
TEST_F(FlowTrackerTest, UdpWellKnownPortIsTheServerEvenWhenItSendsFirst) {
  Feed(kSec, Ethernet(0x0800, Ipv4("10.0.0.53", "10.0.0.1", 17, Udp(53, 40000, "answer"))));
  tracker_->FlushAll(2 * kSec);
  ASSERT_EQ(sink_.l4.size(), 1u);
  EXPECT_EQ(sink_.l4[0].server_port(), 53u);
  EXPECT_EQ(sink_.l4[0].client_port(), 40000u);
  EXPECT_EQ(sink_.l4[0].packets_1(), 1u);
}

// TCP picked up mid-stream (no SYN seen) keeps the lower-port rule when no port is well known.
TEST_F(FlowTrackerTest, TcpMidStreamWithoutWellKnownPortTakesTheLowerPortForTheServer) {
  Feed(kSec, EthTcp4("10.0.0.9", "127.0.0.1",
                     {.sport = 15353, .dport = 40000, .seq = 1, .ack = 1, .flags = A | P,
                      .window = 1000, .payload = "x"}));
  Feed(kSec, EthTcp4("127.0.0.1", "10.0.0.9",
                     {.sport = 40000, .dport = 15353, .seq = 1, .ack = 2, .flags = A,
                      .window = 1000, .payload = ""}));
  tracker_->FlushAll(2 * kSec);
  ASSERT_EQ(sink_.l4.size(), 1u);
  EXPECT_EQ(sink_.l4[0].role_source(), common::v1::ROLE_SOURCE_PORT_HEURISTIC);
  EXPECT_EQ(sink_.l4[0].server_port(), 15353u);
  EXPECT_EQ(sink_.l4[0].client_port(), 40000u);
  EXPECT_EQ(sink_.l4[0].packets_1(), 1u);
}

// FlushAll closes every flow and empties the table at once; the tracker keeps working after.
TEST_F(FlowTrackerTest, TrackingGoesOnAfterFlushAll) {
  Conversation(100 * kSec);
  Feed(100 * kSec, Ethernet(0x0800, Ipv4("10.0.0.9", "10.0.0.53", 17, Udp(40000, 53, "q"))));
  tracker_->FlushAll(101 * kSec);
  EXPECT_EQ(tracker_->active_flows(), 0u);
  ASSERT_EQ(sink_.l4.size(), 2u);
  Conversation(200 * kSec);
  EXPECT_EQ(tracker_->active_flows(), 1u);
  tracker_->OnIdle(210 * kSec);  // past the closing linger: the timer wheel still works
  EXPECT_EQ(tracker_->active_flows(), 0u);
  ASSERT_EQ(sink_.l4.size(), 3u);
  EXPECT_EQ(sink_.l4[2].close_type(), common::v1::CLOSE_TYPE_FIN);
  EXPECT_EQ(sink_.l4[2].is_new_flow(), 1u);
  EXPECT_GT(sink_.l4[2].flow_id(), sink_.l4[1].flow_id());
}

TEST_F(FlowTrackerTest, NetworkMetricsPerSecondAndMinute) {
  Conversation(100 * kSec);                 // second 100
  Conversation(101 * kSec + 500 * kMs);     // second 101, new flow after port reuse
  tracker_->FlushAll(200 * kSec);
  uint64_t p0_1s = 0, p0_1m = 0, new_1s = 0, closed_1m = 0, rtt_count = 0;
  int rows_1s = 0, rows_1m = 0;
  for (const auto& m : sink_.net) {
    EXPECT_EQ(m.server_port(), 80u);
    EXPECT_EQ(m.ip4_0(), 0x0A000001u);
    if (m.granularity_s() == 1) {
      ++rows_1s;
      p0_1s += m.packets_0();
      new_1s += m.new_flows();
    } else {
      ASSERT_EQ(m.granularity_s(), 60u);
      ++rows_1m;
      EXPECT_EQ(m.time() % 60, 0u);
      p0_1m += m.packets_0();
      closed_1m += m.closed_flows();
      rtt_count += m.rtt_count();
      EXPECT_EQ(m.rtt_max_us(), 12000u);
    }
  }
  EXPECT_EQ(rows_1s, 2);
  EXPECT_EQ(rows_1m, 1);
  EXPECT_EQ(p0_1s, 10u);
  EXPECT_EQ(p0_1m, 10u);
  EXPECT_EQ(new_1s, 2u);
  EXPECT_EQ(closed_1m, 2u);
  EXPECT_EQ(rtt_count, 2u);
}

TEST_F(FlowTrackerTest, DecodeFailuresAreCounted) {
  Feed(kSec, Bytes{1, 2, 3});
  Feed(kSec, Ethernet(0x0806, Bytes(28, 0)));
  EXPECT_EQ(tracker_->decode_count(DecodeResult::kTruncated), 1u);
  EXPECT_EQ(tracker_->decode_count(DecodeResult::kUnsupportedLink), 1u);
  EXPECT_EQ(registry_.CounterTotal("sonde_agent_flow_packets_total"), 2u);
  EXPECT_EQ(tracker_->active_flows(), 0u);
}

// The same packets through OnPackets, in windows of any size, and through OnPacket one by one
// give the same records, streams and counts: decoding ahead changes nothing, not even after a
// reassembled datagram, whose payload the decoder's next reassembly overwrites.
TEST(FlowTrackerBatchTest, OnPacketsEqualsOnPacketOneByOne) {
  std::vector<Bytes> frames;
  std::vector<uint64_t> times;
  uint64_t t = 100 * kSec;
  auto add = [&](Bytes b) {
    frames.push_back(std::move(b));
    times.push_back(t);
    t += kMs;
  };
  auto udp4 = [](const std::string& src, const std::string& dst, uint16_t sport, uint16_t dport,
                 const std::string& payload) {
    return Ethernet(0x0800, Ipv4(src, dst, 17, Udp(sport, dport, payload)));
  };
  // 40 UDP flows, more than a lookahead window: a datagram each way.
  for (int i = 0; i < 40; ++i) {
    const std::string client = "10.0.1." + std::to_string(i + 1);
    const auto port = static_cast<uint16_t>(30000 + i);
    add(udp4(client, "10.0.0.53", port, 5353, "q" + std::to_string(i)));
    add(udp4("10.0.0.53", client, 5353, port, "a" + std::to_string(i)));
  }
  // Three fragmented datagrams of three flows, each completed right after the previous one.
  for (int d = 0; d < 3; ++d) {
    const Bytes udp = Udp(static_cast<uint16_t>(6000 + d), 7000, std::string(40, static_cast<char>('x' + d)));
    const Bytes first(udp.begin(), udp.begin() + 24), second(udp.begin() + 24, udp.end());
    const auto id = static_cast<uint16_t>(90 + d);
    add(Ethernet(0x0800, Ipv4("10.2.0.1", "10.2.0.2", 17, first, id, 0x2000)));
    add(Ethernet(0x0800, Ipv4("10.2.0.1", "10.2.0.2", 17, second, id, 3)));  // offset 24
  }
  // Garbage, a TCP conversation, and the UDP flows once more.
  add(Bytes{1, 2, 3});
  const std::string req = "GET / HTTP/1.1\r\n\r\n", resp = "HTTP/1.1 200 OK\r\n\r\n";
  add(EthTcp4("10.0.0.1", "10.0.0.2", {.sport = 40000, .dport = 80, .seq = 100, .flags = S}));
  add(EthTcp4("10.0.0.2", "10.0.0.1", {.sport = 80, .dport = 40000, .seq = 500, .ack = 101, .flags = S | A}));
  add(EthTcp4("10.0.0.1", "10.0.0.2", {.sport = 40000, .dport = 80, .seq = 101, .ack = 501, .flags = A}));
  add(EthTcp4("10.0.0.1", "10.0.0.2",
              {.sport = 40000, .dport = 80, .seq = 101, .ack = 501, .flags = A | P, .payload = req}));
  add(EthTcp4("10.0.0.2", "10.0.0.1",
              {.sport = 80, .dport = 40000, .seq = 501, .ack = 119, .flags = A | P, .payload = resp}));
  for (int i = 0; i < 40; ++i) {
    add(udp4("10.0.1." + std::to_string(i + 1), "10.0.0.53", static_cast<uint16_t>(30000 + i), 5353, "again"));
  }

  struct Result {
    CollectingSink sink;
    CollectingHandler handler;
    uint64_t ok = 0, truncated = 0;
  };
  auto run = [&](size_t window, Result* r) {
    FlowTracker tracker(FlowTrackerConfig{}, &r->sink, &r->handler, nullptr);
    std::vector<capture::PacketView> views(frames.size());
    for (size_t i = 0; i < frames.size(); ++i) {
      views[i].timestamp_ns = times[i];
      views[i].data = frames[i];
      views[i].wire_length = static_cast<uint32_t>(frames[i].size());
    }
    const std::span<const capture::PacketView> all(views);
    for (size_t i = 0; i < all.size(); i += std::max<size_t>(window, 1)) {
      if (window == 0) {
        tracker.OnPacket(all[i]);
      } else {
        tracker.OnPackets(all.subspan(i, std::min(window, all.size() - i)));
      }
    }
    tracker.FlushAll(t + kSec);
    r->ok = tracker.decode_count(DecodeResult::kOk);
    r->truncated = tracker.decode_count(DecodeResult::kTruncated);
  };
  auto serialized = [](const auto& records) {
    std::vector<std::string> out;
    for (const auto& rec : records) out.push_back(rec.SerializeAsString());
    return out;
  };
  Result want;
  run(0, &want);
  ASSERT_EQ(want.sink.l4.size(), 40u + 3u + 1u);
  ASSERT_EQ(want.handler.streams.size(), 44u);
  for (const auto& [id, st] : want.handler.streams) {
    if (st.conn.tuple.src_port >= 6000 && st.conn.tuple.src_port < 6003) {
      EXPECT_EQ(st.bytes[0], std::string(40, static_cast<char>('x' + st.conn.tuple.src_port - 6000)));
    }
  }
  for (size_t window : {1, 2, 7, 16, 17, 1000}) {
    SCOPED_TRACE("window " + std::to_string(window));
    Result got;
    run(window, &got);
    EXPECT_EQ(serialized(got.sink.l4), serialized(want.sink.l4));
    EXPECT_EQ(serialized(got.sink.net), serialized(want.sink.net));
    EXPECT_EQ(got.ok, want.ok);
    EXPECT_EQ(got.truncated, want.truncated);
    ASSERT_EQ(got.handler.streams.size(), want.handler.streams.size());
    for (const auto& [id, st] : want.handler.streams) {
      const auto& other = got.handler.streams[id];
      EXPECT_EQ(other.bytes[0], st.bytes[0]) << "flow " << id;
      EXPECT_EQ(other.bytes[1], st.bytes[1]) << "flow " << id;
      EXPECT_EQ(other.datagrams, st.datagrams) << "flow " << id;
      EXPECT_EQ(other.closed, st.closed) << "flow " << id;
    }
  }
}

}  // namespace
}  // namespace sonde::agent::flow
