// Loads the BPF programs and checks the events of this process's own loopback sockets (the
// self-pid filter is pointed elsewhere so our sockets are traced). Needs root.
#include "agent/capture/ebpf/ebpf_source.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent/bpf/shared/socket_trace.h"

namespace sonde::agent::capture {
namespace {

struct Endpoints {
  net::FiveTuple tuple;
  SocketRole role = SocketRole::kUnknown;
};

struct Recorded {
  SocketDataEvent ev;
  std::string comm;
  std::string data;
  Endpoints ep;
};

class RecordingSink : public EventSink {
 public:
  void OnPacket(const PacketView&) override {}
  void OnSocketData(const SocketDataEvent& e) override {
    if (e.pid != static_cast<uint32_t>(getpid())) return;
    Recorded r{e, std::string(e.comm), std::string(e.data.begin(), e.data.end()), {e.tuple, e.role}};
    r.ev.comm = {};
    r.ev.data = {};
    data.push_back(std::move(r));
  }
  void OnSocketControl(const SocketControlEvent& e) override {
    if (e.pid != static_cast<uint32_t>(getpid())) return;
    SocketControlEvent copy = e;
    copy.comm = {};
    control.push_back({copy, {e.tuple, e.role}});
  }
  std::vector<Recorded> data;
  std::vector<std::pair<SocketControlEvent, Endpoints>> control;
};

// A connected loopback pair: {client fd, server (accepted) fd, server port}.
struct Pair {
  int client = -1, server = -1;
  uint16_t port = 0;
};
Pair Connect() {
  Pair p;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(listen(lfd, 4), 0);
  socklen_t len = sizeof(addr);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  p.port = ntohs(addr.sin_port);
  p.client = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(connect(p.client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  p.server = accept(lfd, nullptr, nullptr);
  close(lfd);
  return p;
}

void ReadExactly(int fd, size_t n) {
  std::string buf(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf.data() + got, n - got);
    ASSERT_GT(r, 0);
    got += static_cast<size_t>(r);
  }
}

class EbpfSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    EbpfSourceConfig config;
    config.self_pid = 1;  // trace this process
    config.payload_bytes = 64;
    config.trace_tls = false;
    auto src = EbpfSource::Create(config);
    if (!src.ok()) GTEST_SKIP() << src.status().ToString();
    source_ = std::move(src).value();
  }
  void Collect(const std::function<void()>& workload) {
    std::atomic<bool> stop{false};
    std::thread t([&] { ASSERT_TRUE(source_->Run(sink_, stop).ok()); });
    workload();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
    t.join();
  }
  std::unique_ptr<EbpfSource> source_;
  RecordingSink sink_;
};

TEST_F(EbpfSourceTest, ReadWriteVectoredAndMsgWithTupleRoleSeq) {
  Pair p;
  const std::string big(1000, 'x');
  Collect([&] {
    p = Connect();
    ASSERT_EQ(write(p.client, "hello", 5), 5);
    ReadExactly(p.server, 5);
    // writev with three pieces; the server reads them with recv.
    std::string a = "GET /a HTTP/1.1\r\n", b = "Host: x\r\n", c = "\r\n";
    iovec iov[3] = {{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}};
    ASSERT_EQ(writev(p.client, iov, 3), static_cast<ssize_t>(a.size() + b.size() + c.size()));
    ReadExactly(p.server, a.size() + b.size() + c.size());
    // sendmsg of a payload larger than the 64-byte cap.
    iovec one{const_cast<char*>(big.data()), big.size()};
    msghdr msg{};
    msg.msg_iov = &one;
    msg.msg_iovlen = 1;
    ASSERT_EQ(sendmsg(p.server, &msg, 0), static_cast<ssize_t>(big.size()));
    ReadExactly(p.client, big.size());
    close(p.client);
    close(p.server);
  });

  std::vector<Recorded> client_w, server_r, server_w, client_r;
  for (auto& r : sink_.data) {
    if (r.ev.fd == p.client) (r.ev.direction == SocketDirection::kEgress ? client_w : client_r).push_back(r);
    if (r.ev.fd == p.server) (r.ev.direction == SocketDirection::kEgress ? server_w : server_r).push_back(r);
  }
  ASSERT_EQ(client_w.size(), 2u);
  EXPECT_EQ(client_w[0].data, "hello");
  EXPECT_EQ(client_w[1].data, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(client_w[1].ev.total_bytes, 28u);
  // Sequence numbers continue byte by byte, and match on both ends.
  EXPECT_EQ(client_w[1].ev.tcp_seq, client_w[0].ev.tcp_seq + 5);
  ASSERT_FALSE(server_r.empty());
  EXPECT_EQ(server_r[0].ev.tcp_seq, client_w[0].ev.tcp_seq);
  ASSERT_EQ(server_w.size(), 1u);
  EXPECT_EQ(server_w[0].ev.total_bytes, 1000u);
  EXPECT_EQ(server_w[0].data, big.substr(0, 64));
  uint64_t client_read_bytes = 0;
  for (auto& r : client_r) client_read_bytes += r.ev.total_bytes;
  EXPECT_EQ(client_read_bytes, 1000u);

  // 5-tuple and role resolved in the kernel.
  const Endpoints& ce = client_w[0].ep;
  EXPECT_EQ(ce.role, SocketRole::kClient);
  EXPECT_EQ(ce.tuple.dst_port, p.port);
  EXPECT_EQ(ce.tuple.src_ip.ToString(), "127.0.0.1");
  EXPECT_EQ(ce.tuple.protocol, net::IpProtocol::kTcp);
  const Endpoints& se = server_w[0].ep;
  EXPECT_EQ(se.role, SocketRole::kServer);
  EXPECT_EQ(se.tuple.src_port, p.port);
  EXPECT_EQ(se.tuple.dst_port, ce.tuple.src_port);
  EXPECT_EQ(client_w[0].comm, std::string("ebpf_source_test").substr(0, 15));
  EXPECT_EQ(client_w[0].ev.tid, static_cast<uint32_t>(gettid()));

  // connect, accept and both closes were reported, with consistent generations.
  int connects = 0, accepts = 0, closes = 0;
  for (auto& [c, ep] : sink_.control) {
    if (c.fd == p.client && c.kind == SocketControlEvent::Kind::kConnect) {
      ++connects;
      EXPECT_EQ(c.conn_generation, client_w[0].ev.conn_generation);
    }
    if (c.fd == p.server && c.kind == SocketControlEvent::Kind::kAccept) ++accepts;
    if ((c.fd == p.client || c.fd == p.server) && c.kind == SocketControlEvent::Kind::kClose) ++closes;
  }
  EXPECT_EQ(connects, 1);
  EXPECT_EQ(accepts, 1);
  EXPECT_EQ(closes, 2);
  auto counters = source_->KernelCounters();
  ASSERT_EQ(counters.size(), static_cast<size_t>(SONDE_STAT_COUNT));
  EXPECT_GE(counters[SONDE_STAT_TRUNCATED], 1u);
  EXPECT_EQ(counters[SONDE_STAT_RINGBUF_DROPS], 0u);
}

TEST_F(EbpfSourceTest, ReadThatConsumesThePeersFinKeepsItsSequence) {
  Pair p;
  Collect([&] {
    p = Connect();
    ASSERT_EQ(write(p.client, "request", 7), 7);
    ReadExactly(p.server, 7);
    // The server answers and closes at once; the client reads only after the FIN arrived, so
    // one read returns the answer and consumes the FIN (copied_seq moves one past the data).
    ASSERT_EQ(write(p.server, "response", 8), 8);
    close(p.server);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    char buf[64];
    ASSERT_EQ(read(p.client, buf, sizeof(buf)), 8);
    ASSERT_EQ(read(p.client, buf, sizeof(buf)), 0);
    close(p.client);
  });
  const Recorded* sent = nullptr;
  const Recorded* received = nullptr;
  for (const auto& r : sink_.data) {
    if (r.ev.fd == p.server && r.ev.direction == SocketDirection::kEgress) sent = &r;
    if (r.ev.fd == p.client && r.ev.direction == SocketDirection::kIngress) received = &r;
  }
  ASSERT_NE(sent, nullptr);
  ASSERT_NE(received, nullptr);
  EXPECT_EQ(received->data, "response");
  EXPECT_EQ(received->ev.tcp_seq, sent->ev.tcp_seq);  // was one more: the FIN counted as a byte
}

TEST_F(EbpfSourceTest, NonSocketsAndIgnoredConnectionsAreDroppedInKernel) {
  Pair p;
  uint64_t ignored_before = 0;
  Collect([&] {
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    ASSERT_EQ(write(pipefd[1], "pipe", 4), 4);
    ReadExactly(pipefd[0], 4);
    close(pipefd[0]);
    close(pipefd[1]);
    p = Connect();
    ASSERT_EQ(write(p.client, "seen", 4), 4);
    ReadExactly(p.server, 4);
    // Generation 0 = whatever connection currently uses this fd.
    ASSERT_TRUE(source_->IgnoreConnection(static_cast<uint32_t>(getpid()), p.client, 0).ok());
    ignored_before = source_->KernelCounters()[SONDE_STAT_IGNORED_CONN];
    ASSERT_EQ(write(p.client, "hidden", 6), 6);
    ReadExactly(p.server, 6);
    close(p.client);
    close(p.server);
  });
  std::string client_bytes;
  for (auto& r : sink_.data) {
    EXPECT_NE(r.data, "pipe");
    if (r.ev.fd == p.client) client_bytes += r.data;
  }
  EXPECT_EQ(client_bytes, "seen");
  EXPECT_GT(source_->KernelCounters()[SONDE_STAT_IGNORED_CONN], ignored_before);
  EXPECT_GT(source_->KernelCounters()[SONDE_STAT_NOT_SOCKET], 0u);
}

TEST(EbpfSourceSelfFilterTest, OwnPidIsDropped) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  EbpfSourceConfig config;  // self_pid defaults to getpid()
  config.trace_tls = false;
  auto src = EbpfSource::Create(config);
  if (!src.ok()) GTEST_SKIP() << src.status().ToString();
  RecordingSink sink;
  std::atomic<bool> stop{false};
  std::thread t([&] { ASSERT_TRUE((*src)->Run(sink, stop).ok()); });
  Pair p = Connect();
  ASSERT_EQ(write(p.client, "self", 4), 4);
  ReadExactly(p.server, 4);
  close(p.client);
  close(p.server);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  stop = true;
  t.join();
  EXPECT_TRUE(sink.data.empty());
  EXPECT_TRUE(sink.control.empty());
}

}  // namespace
}  // namespace sonde::agent::capture
