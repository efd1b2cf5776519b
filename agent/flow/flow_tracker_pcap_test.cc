// FlowTracker over captures recorded by testdata/record.sh (curl against python http.server on
// loopback): flows, close types, and that the reassembled streams match the HTTP bodies.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "agent/capture/pcap/pcap_file_source.h"
#include "agent/flow/flow_tracker.h"
#include "agent/flow/testing/collecting_sink.h"

namespace sonde::agent::flow {
namespace {

using testing::CollectingHandler;
using testing::CollectingSink;

std::string TestData(const std::string& name) {
  const char* root = std::getenv("SONDE_SOURCE_DIR");
  return std::string(root ? root : ".") + "/agent/flow/testdata/" + name;
}

void Replay(const std::string& name, CollectingSink* sink, CollectingHandler* handler) {
  FlowTracker tracker(FlowTrackerConfig{}, sink, handler, nullptr);
  capture::PcapFileSource src(TestData(name));
  std::atomic<bool> stop{false};
  Status s = src.Run(tracker, stop);
  ASSERT_TRUE(s.ok()) << s.ToString();
  tracker.FlushAll(0);
}

size_t ContentLength(const std::string& response) {
  auto pos = response.find("Content-Length: ");
  if (pos == std::string::npos) return 0;
  return std::strtoul(response.c_str() + pos + 16, nullptr, 10);
}

TEST(FlowTrackerPcapTest, ThreeHttpGetsOnLoopback) {
  CollectingSink sink;
  CollectingHandler handler;
  Replay("http_loopback.pcap", &sink, &handler);
  ASSERT_EQ(sink.l4.size(), 3u);
  for (const auto& r : sink.l4) {
    EXPECT_EQ(r.server_port(), 18080u);
    EXPECT_EQ(r.ip4_1(), 0x7F000001u);
    EXPECT_EQ(r.role_source(), common::v1::ROLE_SOURCE_HANDSHAKE);
    EXPECT_EQ(r.close_type(), common::v1::CLOSE_TYPE_FIN);
    EXPECT_EQ(r.syn_count(), 1u);
    EXPECT_EQ(r.synack_count(), 1u);
    EXPECT_EQ(r.retrans_0() + r.retrans_1(), 0u);
    EXPECT_GT(r.rtt_us(), 0u);
    EXPECT_EQ(r.rtt_us(), r.rtt_client_us() + r.rtt_server_us());
    ASSERT_TRUE(handler.streams.count(r.flow_id()));
    const auto& s = handler.streams.at(r.flow_id());
    // Every payload byte the headers announced was handed over, in order, without gaps.
    EXPECT_EQ(s.bytes[0].size(), r.payload_bytes_0());
    EXPECT_EQ(s.bytes[1].size(), r.payload_bytes_1());
    EXPECT_EQ(s.gaps[0] + s.gaps[1], 0u);
    EXPECT_EQ(s.bytes[0].rfind("GET /", 0), 0u);
    size_t body_at = s.bytes[1].find("\r\n\r\n");
    ASSERT_NE(body_at, std::string::npos);
    EXPECT_EQ(s.bytes[1].size() - body_at - 4, ContentLength(s.bytes[1]));
    EXPECT_TRUE(s.closed);
  }
  EXPECT_NE(handler.streams.at(sink.l4[0].flow_id()).bytes[1].find("hello sonde"), std::string::npos);
  // Network metrics: the 1 s and 60 s rows each add up to the flow logs.
  uint64_t p_1s = 0, p_1m = 0, p_l4 = 0, new_flows = 0;
  for (const auto& m : sink.net) (m.granularity_s() == 1 ? p_1s : p_1m) += m.packets_0() + m.packets_1();
  for (const auto& m : sink.net) new_flows += m.granularity_s() == 60 ? m.new_flows() : 0;
  for (const auto& r : sink.l4) p_l4 += r.packets_0() + r.packets_1();
  EXPECT_EQ(p_1s, p_l4);
  EXPECT_EQ(p_1m, p_l4);
  EXPECT_EQ(new_flows, 3u);
}

TEST(FlowTrackerPcapTest, SnapLengthLeavesGapMarkers) {
  CollectingSink sink;
  CollectingHandler handler;
  Replay("http_snaplen96.pcap", &sink, &handler);
  ASSERT_EQ(sink.l4.size(), 1u);
  const auto& r = sink.l4[0];
  const auto& s = handler.streams.at(r.flow_id());
  EXPECT_GT(s.gaps[1], 0u);
  // Gaps are reported before the next chunk, so only the last segment's lost tail is unreported.
  EXPECT_LE(s.bytes[1].size() + s.gaps[1], r.payload_bytes_1());
  EXPECT_GT(s.bytes[1].size() + s.gaps[1] + 65536, r.payload_bytes_1());
  EXPECT_EQ(s.bytes[1].rfind("HTTP/1.0 200", 0), 0u);
  EXPECT_GT(r.payload_bytes_1(), 200000u);
}

TEST(FlowTrackerPcapTest, RefusedConnection) {
  CollectingSink sink;
  CollectingHandler handler;
  Replay("refused.pcap", &sink, &handler);
  ASSERT_EQ(sink.l4.size(), 1u);
  EXPECT_EQ(sink.l4[0].close_type(), common::v1::CLOSE_TYPE_RST_ON_SYN);
  EXPECT_EQ(sink.l4[0].server_port(), 18081u);
  EXPECT_EQ(sink.l4[0].rst_1(), 1u);
}

}  // namespace
}  // namespace sonde::agent::flow
