// SocketTracker with synthetic events: ordering by sequence, gaps, roles, generations, TLS
// switch-over, reaping. No kernel needed.
#include "agent/capture/ebpf/socket_tracker.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/protocols/common/l7_analyzer.h"

namespace sonde::agent::capture {
namespace {

struct Seen {
  flow::ConnectionInfo conn;
  flow::StreamDirection dir;
  std::string data;
  uint32_t gap;
  uint32_t seq;
  uint64_t trace_id;
};

class Recorder : public flow::StreamHandler {
 public:
  void OnData(const flow::ConnectionInfo& c, flow::StreamDirection d, const flow::StreamChunk& ch) override {
    data.push_back({c, d, std::string(ch.data.begin(), ch.data.end()), ch.gap_bytes_before, ch.tcp_seq,
                    ch.syscall_trace_id});
  }
  void OnClose(const flow::ConnectionInfo& c, uint64_t) override { closed.push_back(c.flow_id); }
  void OnTick(uint64_t) override { ++ticks; }
  common::v1::L7Protocol ProtocolOf(uint64_t) const override { return common::v1::L7_PROTOCOL_UNKNOWN; }
  bool Abandoned(uint64_t) const override { return abandon; }
  bool abandon = false;  // gives up on every connection once it has seen data
  std::vector<Seen> data;
  std::vector<uint64_t> closed;
  int ticks = 0;
};

// What the kernel resolves about a socket (carried by every event).
struct Endpoints {
  net::FiveTuple tuple;
  SocketRole role = SocketRole::kUnknown;
  std::string comm = "srv";
};

Endpoints MakeEndpoints(SocketRole role, uint16_t local_port, uint16_t remote_port) {
  Endpoints e;
  e.tuple.src_ip = *net::IpAddress::Parse("10.0.0.1");
  e.tuple.dst_ip = *net::IpAddress::Parse("10.0.0.2");
  e.tuple.src_port = local_port;
  e.tuple.dst_port = remote_port;
  e.role = role;
  return e;
}

class SocketTrackerTest : public ::testing::Test {
 protected:
  void Data(SocketDirection dir, uint32_t seq, std::string_view payload, uint32_t total = 0, uint64_t gen = 1,
            uint64_t ts = 1000, bool tls = false, int fd = 5) {
    SocketDataEvent ev;
    ev.timestamp_ns = ts;
    ev.pid = 42;
    ev.tid = 43;
    ev.fd = fd;
    ev.conn_generation = gen;
    ev.direction = dir;
    ev.total_bytes = total ? total : static_cast<uint32_t>(payload.size());
    ev.tcp_seq = seq;
    ev.is_tls_plaintext = tls;
    ev.comm = ep_.comm;
    ev.data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    ev.tuple = ep_.tuple;
    ev.role = ep_.role;
    tracker_.OnSocketData(ev);
  }
  void Close(int fd = 5, uint64_t gen = 1) {
    SocketControlEvent close;
    close.kind = SocketControlEvent::Kind::kClose;
    close.pid = 42;
    close.fd = fd;
    close.conn_generation = gen;
    close.tuple = ep_.tuple;
    tracker_.OnSocketControl(close);
  }
  struct Ignored {
    uint32_t pid;
    int32_t fd;
    uint64_t generation;
  };
  std::vector<Ignored> ignored_;
  void HookIgnores() {
    tracker_.SetIgnoreHook([this](uint32_t pid, int32_t fd, uint64_t gen) { ignored_.push_back({pid, fd, gen}); });
  }
  Recorder rec_;
  tracing::SyscallTraceIds ids_;
  SocketTracker tracker_{rec_, nullptr, &ids_, nullptr, SocketTracker::Options{.idle_timeout_ns = 10'000}};
  Endpoints ep_ = MakeEndpoints(SocketRole::kServer, 80, 40000);
};

TEST_F(SocketTrackerTest, ServerSideTupleAndDirections) {
  Data(SocketDirection::kIngress, 100, "GET / HTTP/1.1\r\n\r\n");
  Data(SocketDirection::kEgress, 900, "HTTP/1.1 200 OK\r\n\r\n");
  ASSERT_EQ(rec_.data.size(), 2u);
  const auto& c = rec_.data[0].conn;
  EXPECT_EQ(c.tuple.src_port, 40000);  // client = remote
  EXPECT_EQ(c.tuple.dst_port, 80);
  EXPECT_EQ(c.tuple.dst_ip.ToString(), "10.0.0.1");
  EXPECT_EQ(c.role_source, common::v1::ROLE_SOURCE_SOCKET_API);
  EXPECT_EQ(c.signal_source, common::v1::SIGNAL_SOURCE_EBPF);
  EXPECT_EQ(c.process_1.pid, 42u);
  EXPECT_EQ(c.process_1.comm, "srv");
  EXPECT_EQ(c.process_0.pid, 0u);
  EXPECT_EQ(rec_.data[0].dir, flow::StreamDirection::kRequest);
  EXPECT_EQ(rec_.data[1].dir, flow::StreamDirection::kResponse);
  EXPECT_NE(rec_.data[0].trace_id, 0u);
  EXPECT_EQ(rec_.data[0].trace_id, rec_.data[1].trace_id);
}

TEST_F(SocketTrackerTest, ClientSideKeepsLocalAsSource) {
  ep_ = MakeEndpoints(SocketRole::kClient, 40000, 80);
  Data(SocketDirection::kEgress, 1, "req");
  ASSERT_EQ(rec_.data.size(), 1u);
  EXPECT_EQ(rec_.data[0].dir, flow::StreamDirection::kRequest);
  EXPECT_EQ(rec_.data[0].conn.tuple.src_port, 40000);
  EXPECT_EQ(rec_.data[0].conn.process_0.pid, 42u);
  EXPECT_EQ(rec_.data[0].trace_id, 0u);  // no inbound request on this thread yet
}

TEST_F(SocketTrackerTest, UnknownRoleUsesPortHeuristic) {
  ep_ = MakeEndpoints(SocketRole::kUnknown, 6379, 51000);
  Data(SocketDirection::kIngress, 1, "x");
  EXPECT_EQ(rec_.data[0].conn.role_source, common::v1::ROLE_SOURCE_PORT_HEURISTIC);
  EXPECT_EQ(rec_.data[0].conn.tuple.dst_port, 6379);
}

TEST_F(SocketTrackerTest, ReordersBySequence) {
  Data(SocketDirection::kIngress, 100, "abc");
  Data(SocketDirection::kIngress, 106, "ghi");  // arrives before "def"
  ASSERT_EQ(rec_.data.size(), 1u);
  Data(SocketDirection::kIngress, 103, "def");
  ASSERT_EQ(rec_.data.size(), 3u);
  EXPECT_EQ(rec_.data[1].data, "def");
  EXPECT_EQ(rec_.data[2].data, "ghi");
  for (auto& s : rec_.data) EXPECT_EQ(s.gap, 0u);
}

TEST_F(SocketTrackerTest, HoleIsReportedAsGapAfterTheReorderWindow) {
  Data(SocketDirection::kIngress, 100, "abc");
  Data(SocketDirection::kIngress, 110, "xyz", 0, 1, 1000);
  EXPECT_EQ(rec_.data.size(), 1u);
  tracker_.OnIdle(1000 + 200'000'000);
  ASSERT_EQ(rec_.data.size(), 2u);
  EXPECT_EQ(rec_.data[1].data, "xyz");
  EXPECT_EQ(rec_.data[1].gap, 7u);
}

TEST_F(SocketTrackerTest, TruncationBecomesGapBeforeNextChunk) {
  Data(SocketDirection::kIngress, 100, "abcd", 10);  // 6 bytes beyond the capture cap
  Data(SocketDirection::kIngress, 110, "next");
  ASSERT_EQ(rec_.data.size(), 2u);
  EXPECT_EQ(rec_.data[0].gap, 0u);
  EXPECT_EQ(rec_.data[1].gap, 6u);
  EXPECT_EQ(rec_.data[1].seq, 110u);
}

TEST_F(SocketTrackerTest, DuplicatesAndOverlapsAreTrimmed) {
  Data(SocketDirection::kIngress, 100, "abcdef");
  Data(SocketDirection::kIngress, 100, "abc");     // entirely old
  Data(SocketDirection::kIngress, 103, "defghi");  // half old
  ASSERT_EQ(rec_.data.size(), 2u);
  EXPECT_EQ(rec_.data[1].data, "ghi");
  EXPECT_EQ(rec_.data[1].seq, 106u);
}

TEST_F(SocketTrackerTest, SequenceWrapAround) {
  // (0 itself means "unknown" in the SocketDataEvent contract.)
  Data(SocketDirection::kIngress, 0xfffffffd, "ab");
  Data(SocketDirection::kIngress, 1, "ef");
  Data(SocketDirection::kIngress, 0xffffffff, "cd");
  ASSERT_EQ(rec_.data.size(), 3u);
  EXPECT_EQ(rec_.data[1].data, "cd");
  EXPECT_EQ(rec_.data[2].data, "ef");
}

TEST_F(SocketTrackerTest, NewGenerationClosesOldConnection) {
  Data(SocketDirection::kIngress, 100, "a", 0, 1);
  Data(SocketDirection::kIngress, 500, "b", 0, 2);
  ASSERT_EQ(rec_.closed.size(), 1u);
  EXPECT_EQ(rec_.closed[0], rec_.data[0].conn.flow_id);
  EXPECT_NE(rec_.data[0].conn.flow_id, rec_.data[1].conn.flow_id);
  EXPECT_EQ(tracker_.connections(), 1u);
}

TEST_F(SocketTrackerTest, CloseEventAndIdleReaping) {
  Data(SocketDirection::kIngress, 100, "a", 0, 1, 1000, false, 5);
  Data(SocketDirection::kIngress, 100, "b", 0, 1, 1000, false, 6);
  SocketControlEvent close;
  close.kind = SocketControlEvent::Kind::kClose;
  close.pid = 42;
  close.fd = 5;
  close.conn_generation = 1;
  close.tuple = ep_.tuple;
  tracker_.OnSocketControl(close);
  EXPECT_EQ(rec_.closed.size(), 1u);
  EXPECT_EQ(tracker_.connections(), 1u);
  tracker_.OnIdle(1000 + 5'000);
  EXPECT_EQ(tracker_.connections(), 1u);
  tracker_.OnIdle(1000 + 20'000);
  EXPECT_EQ(tracker_.connections(), 0u);
  EXPECT_EQ(rec_.closed.size(), 2u);
  EXPECT_EQ(rec_.ticks, 2);
}

TEST_F(SocketTrackerTest, ConnectionOpenedByControlEventKeepsComm) {
  SocketControlEvent accept;
  accept.kind = SocketControlEvent::Kind::kAccept;
  accept.pid = 42;
  accept.fd = 5;
  accept.conn_generation = 1;
  accept.comm = "srv-from-kernel";  // the process may be gone before we could read /proc
  accept.tuple = ep_.tuple;
  accept.role = ep_.role;
  tracker_.OnSocketControl(accept);
  Data(SocketDirection::kIngress, 100, "x");
  ASSERT_EQ(rec_.data.size(), 1u);
  EXPECT_EQ(rec_.data[0].conn.process_1.comm, "srv-from-kernel");
}

TEST_F(SocketTrackerTest, SendfileKeepsSequenceAndReportsGap) {
  Data(SocketDirection::kIngress, 100, "GET /a HTTP/1.1\r\n\r\n");
  Data(SocketDirection::kEgress, 900, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n");
  const uint32_t head = 41;  // bytes of the head above
  SocketDataEvent sf;
  sf.timestamp_ns = 1000;
  sf.pid = 42;
  sf.tid = 43;
  sf.fd = 5;
  sf.conn_generation = 1;
  sf.direction = SocketDirection::kEgress;
  sf.total_bytes = 5000;
  sf.tcp_seq = 900 + head;
  sf.is_sendfile = true;
  sf.tuple = ep_.tuple;
  sf.role = ep_.role;
  tracker_.OnSocketData(sf);
  // The next response follows the body directly: delivered at once, the body as a gap.
  Data(SocketDirection::kEgress, 900 + head + 5000, "HTTP/1.1 404 Not Found\r\n\r\n");
  ASSERT_EQ(rec_.data.size(), 3u);
  EXPECT_EQ(rec_.data[2].gap, 5000u);
  EXPECT_EQ(rec_.data[2].seq, 900 + head + 5000);
  EXPECT_EQ(tracker_.pending_bytes(), 0u);
}

TEST_F(SocketTrackerTest, UnconnectedUdpSocketSplitsByPeer) {
  ep_ = MakeEndpoints(SocketRole::kUnknown, 5353, 40001);
  ep_.tuple.protocol = net::IpProtocol::kUdp;
  Data(SocketDirection::kIngress, 0, "q1");
  Data(SocketDirection::kEgress, 0, "r1");
  ep_.tuple.dst_port = 40002;
  Data(SocketDirection::kIngress, 0, "q2");
  Data(SocketDirection::kEgress, 0, "r2");
  ASSERT_EQ(rec_.data.size(), 4u);
  EXPECT_EQ(rec_.data[0].conn.flow_id, rec_.data[1].conn.flow_id);
  EXPECT_EQ(rec_.data[2].conn.flow_id, rec_.data[3].conn.flow_id);
  EXPECT_NE(rec_.data[0].conn.flow_id, rec_.data[2].conn.flow_id);
  EXPECT_EQ(rec_.data[0].conn.tuple.src_port, 40001);  // client = the datagram's peer
  EXPECT_EQ(rec_.data[2].conn.tuple.src_port, 40002);
  EXPECT_EQ(rec_.data[2].conn.tuple.dst_port, 5353);
  EXPECT_EQ(rec_.data[0].dir, flow::StreamDirection::kRequest);
  EXPECT_EQ(rec_.data[1].dir, flow::StreamDirection::kResponse);
  EXPECT_TRUE(rec_.data[0].conn.tuple.protocol == net::IpProtocol::kUdp);
  EXPECT_EQ(tracker_.connections(), 2u);
  // close(fd) ends both peers' connections.
  SocketControlEvent close;
  close.kind = SocketControlEvent::Kind::kClose;
  close.pid = 42;
  close.fd = 5;
  close.conn_generation = 1;
  tracker_.OnSocketControl(close);
  EXPECT_EQ(tracker_.connections(), 0u);
  EXPECT_EQ(rec_.closed.size(), 2u);
}

TEST_F(SocketTrackerTest, ProcessExitAndShutdownEndConnections) {
  Data(SocketDirection::kIngress, 100, "a", 0, 1, 1000, false, 5);
  Data(SocketDirection::kIngress, 100, "b", 0, 1, 1000, false, 6);
  Data(SocketDirection::kIngress, 100, "c", 0, 1, 1000, false, 7);
  SocketControlEvent shut;
  shut.kind = SocketControlEvent::Kind::kShutdown;
  shut.pid = 42;
  shut.fd = 7;
  shut.shutdown_how = 2;  // SHUT_RDWR
  tracker_.OnSocketControl(shut);
  EXPECT_EQ(tracker_.connections(), 2u);
  SocketControlEvent exit;
  exit.kind = SocketControlEvent::Kind::kProcessExit;
  exit.pid = 41;  // another process: nothing of ours
  tracker_.OnSocketControl(exit);
  EXPECT_EQ(tracker_.connections(), 2u);
  exit.pid = 42;
  tracker_.OnSocketControl(exit);
  EXPECT_EQ(tracker_.connections(), 0u);
  EXPECT_EQ(rec_.closed.size(), 3u);
}

TEST_F(SocketTrackerTest, TlsPlaintextReplacesCiphertextFlow) {
  Data(SocketDirection::kIngress, 100, "\x16\x03\x01");  // ClientHello bytes
  Data(SocketDirection::kIngress, 0, "GET / HTTP/1.1\r\n\r\n", 0, 1, 2000, true);
  Data(SocketDirection::kIngress, 300, "\x17\x03\x03");  // late ciphertext: dropped
  ASSERT_EQ(rec_.data.size(), 2u);
  EXPECT_FALSE(rec_.data[0].conn.is_tls_plaintext);
  EXPECT_TRUE(rec_.data[1].conn.is_tls_plaintext);
  EXPECT_EQ(rec_.data[1].dir, flow::StreamDirection::kRequest);
  EXPECT_NE(rec_.data[0].conn.flow_id, rec_.data[1].conn.flow_id);
  EXPECT_EQ(rec_.closed.size(), 1u);
}

TEST_F(SocketTrackerTest, PendingIsBounded) {
  SocketTracker small(rec_, nullptr, nullptr, nullptr,
                      SocketTracker::Options{.max_pending_chunks = 4, .max_pending_bytes = 100});
  SocketDataEvent ev;
  ev.pid = 1;
  ev.fd = 3;
  ev.conn_generation = 1;
  std::string payload(10, 'p');
  ev.data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
  ev.total_bytes = 10;
  ev.tcp_seq = 1;
  ev.tuple = ep_.tuple;
  small.OnSocketData(ev);
  for (uint32_t i = 0; i < 50; ++i) {
    ev.tcp_seq = 1000 + i * 20;  // every chunk leaves a hole
    small.OnSocketData(ev);
    EXPECT_LE(small.pending_bytes(), 100u);
  }
}

TEST_F(SocketTrackerTest, TableIsBounded) {
  SocketTracker small(rec_, nullptr, nullptr, nullptr, SocketTracker::Options{.max_connections = 32});
  SocketDataEvent ev;
  ev.pid = 1;
  ev.conn_generation = 1;
  ev.tcp_seq = 1;
  ev.tuple = ep_.tuple;
  for (int fd = 0; fd < 1000; ++fd) {
    ev.fd = fd;
    ev.timestamp_ns = static_cast<uint64_t>(fd);
    small.OnSocketData(ev);
    EXPECT_LE(small.connections(), 32u);
  }
}

}  // namespace
}  // namespace sonde::agent::capture

namespace sonde::agent::capture {
namespace {

TEST_F(SocketTrackerTest, AbandonedTcpConnectionIsIgnoredUntilItCloses) {
  HookIgnores();
  rec_.abandon = true;
  Data(SocketDirection::kIngress, 100, "ab");
  ASSERT_EQ(ignored_.size(), 1u);
  EXPECT_EQ(ignored_[0].pid, 42u);
  EXPECT_EQ(ignored_[0].fd, 5);
  EXPECT_EQ(ignored_[0].generation, 1u);
  // In flight when the kernel was told: dropped here, and the hook is not called again.
  Data(SocketDirection::kIngress, 102, "cd");
  Data(SocketDirection::kEgress, 900, "ef");
  EXPECT_EQ(rec_.data.size(), 1u);
  EXPECT_EQ(ignored_.size(), 1u);
  Close();
  EXPECT_EQ(rec_.closed.size(), 1u);
  EXPECT_EQ(tracker_.connections(), 0u);
  // The fd's next connection starts afresh.
  rec_.abandon = false;
  Data(SocketDirection::kIngress, 100, "gh", 0, 2);
  EXPECT_EQ(rec_.data.size(), 2u);
  EXPECT_EQ(ignored_.size(), 1u);
}

TEST_F(SocketTrackerTest, UdpSocketIsNotIgnoredForOneUnknownPeer) {
  HookIgnores();
  rec_.abandon = true;
  ep_ = MakeEndpoints(SocketRole::kUnknown, 5353, 40001);
  ep_.tuple.protocol = net::IpProtocol::kUdp;
  Data(SocketDirection::kIngress, 0, "q1");
  Data(SocketDirection::kIngress, 0, "q2");
  EXPECT_EQ(rec_.data.size(), 2u);
  EXPECT_TRUE(ignored_.empty());
}

// With the real analyzer: a connection of unrecognisable bytes is given up on after
// max_inference_chunks chunks and reported once; an HTTP connection never is.
TEST(SocketTrackerAnalyzerTest, UnknownProtocolIsIgnoredAfterInferenceGivesUp) {
  protocols::L7AnalyzerOptions options;
  protocols::L7Analyzer analyzer(nullptr, nullptr, options);
  SocketTracker tracker(analyzer, nullptr, nullptr, nullptr);
  std::vector<int32_t> ignored;
  tracker.SetIgnoreHook([&](uint32_t, int32_t fd, uint64_t) { ignored.push_back(fd); });
  const Endpoints ep = MakeEndpoints(SocketRole::kServer, 9999, 40000);
  auto send = [&](int fd, uint32_t seq, std::string_view payload) {
    SocketDataEvent ev;
    ev.timestamp_ns = 1000 + seq;
    ev.pid = 42;
    ev.tid = 42;
    ev.fd = fd;
    ev.conn_generation = 1;
    ev.direction = SocketDirection::kIngress;
    ev.total_bytes = static_cast<uint32_t>(payload.size());
    ev.tcp_seq = seq;
    ev.comm = "srv";
    ev.data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    ev.tuple = ep.tuple;
    ev.role = ep.role;
    tracker.OnSocketData(ev);
  };
  const std::string junk("\x01\xfe\x00\x7f\x13\x37\xde\xad", 8);
  uint32_t seq = 1;
  for (uint32_t i = 0; i + 1 < options.max_inference_chunks; ++i, seq += 8) send(5, seq, junk);
  EXPECT_TRUE(ignored.empty()) << "given up before max_inference_chunks";
  send(5, seq, junk);
  ASSERT_EQ(ignored.size(), 1u);
  EXPECT_EQ(ignored[0], 5);

  const std::string get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  seq = 1;
  for (uint32_t i = 0; i < 2 * options.max_inference_chunks; ++i, seq += static_cast<uint32_t>(get.size())) {
    send(6, seq, get);
  }
  EXPECT_EQ(ignored.size(), 1u);
}

}  // namespace
}  // namespace sonde::agent::capture
