// AfPacketSource live tests (label bpf: root, network namespaces, nginx, curl, nft). Two network
// namespaces joined by a veth pair in 198.18.0.0/15; nginx in one, curl in the other; the source
// captures inside the server namespace (exercising the netns option) and the flow tracker must
// report exactly the connections and bytes curl reports. Skips when the tools are missing.
#include "agent/capture/afpacket/afpacket_source.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <linux/filter.h>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/flow/flow_tracker.h"
#include "agent/flow/packet_decoder.h"
#include "agent/flow/testing/collecting_sink.h"

namespace sonde::agent::capture {
namespace {

std::string Sh(const std::string& cmd, int* rc = nullptr) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  char buf[512];
  while (fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  int status = pclose(p);
  if (rc) *rc = WEXITSTATUS(status);
  return out;
}

bool Have(const char* tool) {
  int rc = 0;
  Sh(std::string("command -v ") + tool, &rc);
  return rc == 0;
}

class AfPacketNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    for (const char* t : {"ip", "nginx", "curl", "nft"}) {
      if (!Have(t)) GTEST_SKIP() << t << " not installed";
    }
    std::string id = std::to_string(getpid() % 100000);
    srv_ = "sonde_srv" + id;
    cli_ = "sonde_cli" + id;
    dir_ = std::filesystem::temp_directory_path() / ("sonde_afp_" + id);
    std::filesystem::create_directories(dir_);
    Teardown();
    int rc = 0;
    std::string out = Sh("set -e; ip netns add " + srv_ + "; ip netns add " + cli_ +
                         "; ip link add vs" + id + " type veth peer name vc" + id +
                         "; ip link set vs" + id + " netns " + srv_ + "; ip link set vc" + id +
                         " netns " + cli_ + "; ip -n " + srv_ + " addr add 198.18.0.1/30 dev vs" + id +
                         "; ip -n " + cli_ + " addr add 198.18.0.2/30 dev vc" + id +
                         "; ip -n " + srv_ + " link set vs" + id + " up; ip -n " + cli_ +
                         " link set vc" + id + " up; ip -n " + srv_ + " link set lo up; ip -n " +
                         cli_ + " link set lo up", &rc);
    if (rc != 0) GTEST_SKIP() << "cannot create namespaces: " << out;
    veth_ = "vs" + id;
    // A 300 KB file so responses span many segments.
    std::ofstream(dir_ / "file.bin") << std::string(300000, 'x');
    std::ofstream(dir_ / "nginx.conf")
        << "daemon off; worker_processes 1; pid " << (dir_ / "nginx.pid").string() << ";\n"
        << "error_log " << (dir_ / "error.log").string() << ";\n"
        << "events { worker_connections 64; }\n"
        << "http { access_log off; sendfile off; keepalive_timeout 0;\n"
        << "  client_body_temp_path " << dir_.string() << "; proxy_temp_path " << dir_.string() << ";\n"
        << "  fastcgi_temp_path " << dir_.string() << "; uwsgi_temp_path " << dir_.string() << ";\n"
        << "  scgi_temp_path " << dir_.string() << ";\n"
        << "  server { listen 198.18.0.1:8080; root " << dir_.string() << "; } }\n";
    nginx_ = std::thread([this] {
      Sh("ip netns exec " + srv_ + " nginx -c " + (dir_ / "nginx.conf").string() + " -p " + dir_.string());
    });
    for (int i = 0; i < 50; ++i) {
      int rc2 = 0;
      Sh("ip netns exec " + cli_ + " curl -s -o /dev/null --max-time 1 http://198.18.0.1:8080/", &rc2);
      if (rc2 == 0) break;
      usleep(100000);
    }
  }

  void TearDown() override {
    if (!srv_.empty()) {
      Sh("kill $(cat " + (dir_ / "nginx.pid").string() + ")");
      if (nginx_.joinable()) nginx_.join();
      Teardown();
      std::filesystem::remove_all(dir_);
    }
  }

  void Teardown() { Sh("ip netns del " + srv_ + "; ip netns del " + cli_); }

  struct CurlTotals {
    uint64_t connections = 0, sent = 0, received = 0;
    int failures = 0;
  };
  // `n` sequential downloads (bounded), totals as curl reports them.
  CurlTotals Curl(int n) {
    CurlTotals t;
    for (int i = 0; i < n; ++i) {
      int rc = 0;
      std::string out = Sh("ip netns exec " + cli_ +
                               " curl -s -o /dev/null --max-time 30 -w '%{num_connects} %{size_request} %{size_header} %{size_download}' http://198.18.0.1:8080/file.bin",
                           &rc);
      unsigned long long c = 0, req = 0, hdr = 0, body = 0;
      if (rc != 0 || std::sscanf(out.c_str(), "%llu %llu %llu %llu", &c, &req, &hdr, &body) != 4) {
        ++t.failures;
        continue;
      }
      t.connections += c;
      t.sent += req;
      t.received += hdr + body;
    }
    return t;
  }

  struct Capture {
    flow::testing::CollectingSink sink;
    std::unique_ptr<flow::FlowTracker> tracker;
    std::unique_ptr<AfPacketSource> source;
    std::atomic<bool> stop{false};
    std::thread thread;
    Status status;
  };

  void Start(Capture* c) {
    flow::FlowTrackerConfig fc;
    c->tracker = std::make_unique<flow::FlowTracker>(fc, &c->sink, nullptr, nullptr);
    AfPacketConfig ac;
    ac.interfaces = veth_;
    ac.netns = srv_;
    ac.bpf_filter = "tcp port 8080";
    c->source = std::make_unique<AfPacketSource>(ac);
    c->thread = std::thread([c] { c->status = c->source->Run(*c->tracker, c->stop); });
    for (int i = 0; i < 50 && c->source->open_sockets() == 0; ++i) usleep(50000);
    ASSERT_EQ(c->source->open_sockets(), 1u);
  }

  void Stop(Capture* c) {
    usleep(300000);
    c->stop = true;
    c->thread.join();
    ASSERT_TRUE(c->status.ok()) << c->status.ToString();
    c->tracker->FlushAll(0);
  }

  std::string srv_, cli_, veth_;
  std::filesystem::path dir_;
  std::thread nginx_;
};

TEST_F(AfPacketNetnsTest, ReportsExactlyWhatCurlSaw) {
  Capture cap;
  Start(&cap);
  CurlTotals t = Curl(5);
  Stop(&cap);
  ASSERT_EQ(t.failures, 0);
  EXPECT_EQ(t.connections, 5u);
  uint64_t flows = 0, sent = 0, received = 0, retrans = 0;
  for (const auto& r : cap.sink.l4) {
    if (r.server_port() != 8080) continue;
    ++flows;
    sent += r.payload_bytes_0();
    received += r.payload_bytes_1();
    retrans += r.retrans_0() + r.retrans_1();
    EXPECT_EQ(r.ip4_0(), 0xC6120002u);  // 198.18.0.2
    EXPECT_EQ(r.ip4_1(), 0xC6120001u);
    EXPECT_EQ(r.role_source(), common::v1::ROLE_SOURCE_HANDSHAKE);
    EXPECT_EQ(r.close_type(), common::v1::CLOSE_TYPE_FIN);
    EXPECT_GT(r.rtt_us(), 0u);
  }
  EXPECT_EQ(flows, t.connections);
  EXPECT_EQ(retrans, 0u);
  EXPECT_EQ(sent, t.sent);
  EXPECT_EQ(received, t.received);
  EXPECT_EQ(cap.source->stats().dropped, 0u);
  EXPECT_GT(cap.source->stats().events, 0u);
}

TEST_F(AfPacketNetnsTest, CountsRetransmissionsWhenTheClientDropsSegments) {
  // Drop a quarter of the server's data segments at the client's input: the server sent them
  // (we captured them on its side) and has to send them again. Every fourth one, not a random
  // quarter: random drops now and then hit one segment's retransmissions several times running,
  // and the backoff then outlasted curl's time limit (a run failed that way under load).
  int rc = 0;
  std::ofstream(dir_ / "drop.nft")
      << "table inet sonde_test {\n chain in {\n  type filter hook input priority 0;\n"
      << "  tcp sport 8080 meta length > 500 numgen inc mod 4 == 0 drop\n }\n}\n";
  std::string out = Sh("ip netns exec " + cli_ + " nft -f " + (dir_ / "drop.nft").string(), &rc);
  if (rc != 0) GTEST_SKIP() << "nft unavailable: " << out;
  Capture cap;
  Start(&cap);
  CurlTotals t = Curl(3);
  Stop(&cap);
  ASSERT_EQ(t.failures, 0);
  uint64_t flows = 0, retrans_1 = 0, received = 0;
  for (const auto& r : cap.sink.l4) {
    if (r.server_port() != 8080) continue;
    ++flows;
    retrans_1 += r.retrans_1();
    received += r.payload_bytes_1();
  }
  EXPECT_EQ(flows, 3u);
  EXPECT_GT(retrans_1, 0u);
  EXPECT_GT(received, t.received);  // retransmitted bytes are on the wire twice
}

TEST(AfPacketSourceTest, InterfaceGlobs) {
  EXPECT_TRUE(InterfaceMatches("eth*,veth*", "eth0"));
  EXPECT_TRUE(InterfaceMatches("eth*, veth*", "veth12"));
  EXPECT_FALSE(InterfaceMatches("eth*,veth*", "lo"));
  EXPECT_TRUE(InterfaceMatches("any", "whatever"));
}

TEST(AfPacketSourceTest, BadFilterIsAnError) {
  AfPacketConfig c;
  c.bpf_filter = "this is not a filter (";
  AfPacketSource src(c);
  flow::testing::CollectingSink sink;
  flow::FlowTracker tracker({}, &sink, nullptr, nullptr);
  std::atomic<bool> stop{true};
  EXPECT_EQ(src.Run(tracker, stop).code(), StatusCode::kInvalidArgument);
}

TEST(AfPacketSourceTest, MissingNetnsIsAnError) {
  AfPacketConfig c;
  c.netns = "sonde_no_such_namespace";
  AfPacketSource src(c);
  flow::testing::CollectingSink sink;
  flow::FlowTracker tracker({}, &sink, nullptr, nullptr);
  std::atomic<bool> stop{true};
  EXPECT_EQ(src.Run(tracker, stop).code(), StatusCode::kNotFound);
}

TEST(AfPacketSourceTest, CookedFilterHasNoLinkHeaderLoads) {
  for (const char* f : {"tcp port 80", "ip6 and udp", "host 198.18.0.1 or icmp", "ip proto 4",
                        "inbound and tcp"}) {
    auto compiled = CompileCookedFilter(f);
    ASSERT_TRUE(compiled.ok()) << f << ": " << compiled.status().ToString();
    const auto& bytes = compiled.value();
    ASSERT_EQ(bytes.size() % sizeof(sock_filter), 0u);
    const auto* insns = reinterpret_cast<const sock_filter*>(bytes.data());
    bool reads_protocol = false;
    for (size_t i = 0; i < bytes.size() / sizeof(sock_filter); ++i) {
      const sock_filter& in = insns[i];
      if (BPF_CLASS(in.code) == BPF_LD && BPF_MODE(in.code) == BPF_ABS) {
        // Either ancillary data or an offset inside the network packet (IPv4/IPv6 headers).
        EXPECT_TRUE(in.k >= static_cast<uint32_t>(SKF_AD_OFF) || in.k < 60) << f << " k=" << in.k;
        reads_protocol |= in.k == static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PROTOCOL);
      }
    }
    EXPECT_TRUE(reads_protocol) << f;  // the ethertype test became an ancillary load
  }
  EXPECT_EQ(CompileCookedFilter("ether host 02:00:00:00:00:01").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CompileCookedFilter("tcp port").status().code(), StatusCode::kInvalidArgument);
  // libpcap itself has no VLAN matching for cooked captures (tags are stripped there anyway).
  EXPECT_EQ(CompileCookedFilter("vlan").status().code(), StatusCode::kInvalidArgument);
}

// Decodes every captured packet and remembers (netns inode, protocol, destination port).
class PacketLog : public EventSink {
 public:
  void OnPacket(const PacketView& v) override {
    flow::DecodedPacket p;
    if (decoder_.Decode(v, &p) != flow::DecodeResult::kOk) return;
    std::lock_guard<std::mutex> lock(mu_);
    seen_.push_back({v.netns_inode, p.tuple.dst_port});
  }
  size_t Count(uint16_t dst_port, uint64_t netns = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& [ns, port] : seen_) n += port == dst_port && (netns == 0 || ns == netns);
    return n;
  }

 private:
  flow::PacketDecoder decoder_;
  std::mutex mu_;
  std::vector<std::pair<uint64_t, uint16_t>> seen_;
};

uint64_t NetnsInode(const std::string& name) {
  struct stat st {};
  return stat(("/run/netns/" + name).c_str(), &st) == 0 ? st.st_ino : 0;
}

// A source running on its own thread until Stop().
struct Running {
  PacketLog log;
  std::unique_ptr<AfPacketSource> source;
  std::atomic<bool> stop{false};
  std::thread thread;
  Status status;
  explicit Running(AfPacketConfig c) : source(std::make_unique<AfPacketSource>(std::move(c))) {
    thread = std::thread([this] { status = source->Run(log, stop); });
  }
  void Stop() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
  ~Running() { Stop(); }
};

class AfPacketLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    if (!Have("ip") || !Have("bash")) GTEST_SKIP() << "ip/bash not installed";
    id_ = std::to_string(getpid() % 100000);
  }
  void TearDown() override {
    for (const auto& ns : created_) Sh("ip netns del " + ns);
  }
  bool AddNetns(const std::string& name, std::string* err) {
    int rc = 0;
    *err = Sh("ip netns add " + name + " && ip -n " + name + " link set lo up", &rc);
    if (rc == 0) created_.push_back(name);
    return rc == 0;
  }
  // Sends one UDP datagram from inside `ns` (bash's /dev/udp; no listener needed).
  void Udp(const std::string& ns, const std::string& ip, int port) {
    Sh("ip netns exec " + ns + " bash -c 'echo sonde > /dev/udp/" + ip + "/" + std::to_string(port) + "'");
  }
  std::string id_;
  std::vector<std::string> created_;
};

// Attaches to the persistent tun device `dev` of netns `ns` (carrier on, so packets routed to it
// are transmitted and seen by packet sockets). Returns the fd, -1 on failure.
int AttachTun(const std::string& ns, const std::string& dev) {
  int result = -1;
  std::thread t([&] {  // setns on a throwaway thread: the test thread keeps its namespace
    int nsfd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) return;
    int entered = setns(nsfd, CLONE_NEWNET);
    close(nsfd);
    if (entered != 0) return;
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, dev.c_str(), IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
      close(fd);
      return;
    }
    result = fd;
  });
  t.join();
  return result;
}

TEST_F(AfPacketLiveTest, FilterMatchesOnAnyWithoutEthernetHeaders) {
  // A tun device has no link-layer header: a filter compiled for Ethernet reads the IP
  // addresses as an ethertype there and matches nothing.
  std::string ns = "sonde_cook" + id_, dev = "stun" + id_, err;
  if (!AddNetns(ns, &err)) GTEST_SKIP() << "cannot create netns: " << err;
  int rc = 0;
  std::string out = Sh("set -e; ip -n " + ns + " tuntap add dev " + dev + " mode tun; ip -n " + ns +
                           " link set " + dev + " up; ip -n " + ns + " addr add 198.19.9.1/24 dev " +
                           dev,
                       &rc);
  if (rc != 0) GTEST_SKIP() << "no tun support: " << out;
  int tun = AttachTun(ns, dev);
  if (tun < 0) GTEST_SKIP() << "cannot attach to " << dev;
  AfPacketConfig c;
  c.interfaces = "any";
  c.netns = ns;
  c.bpf_filter = "udp port 9999";
  c.rescan_interval_ms = 100;
  Running run(c);
  for (int i = 0; i < 50 && run.source->open_sockets() == 0; ++i) usleep(50000);
  ASSERT_EQ(run.source->open_sockets(), 1u);
  for (int i = 0; i < 5; ++i) {
    Udp(ns, "198.19.9.7", 9999);
    Udp(ns, "198.19.9.7", 8888);
  }
  for (int i = 0; i < 40 && run.log.Count(9999) < 5; ++i) usleep(50000);
  run.Stop();
  ASSERT_TRUE(run.status.ok()) << run.status.ToString();
  close(tun);
  EXPECT_EQ(run.log.Count(9999), 5u);  // seen once each, on the tun device
  EXPECT_EQ(run.log.Count(8888), 0u);  // filtered in the kernel
}

TEST_F(AfPacketLiveTest, FollowsNamespacesCreatedAfterStart) {
  AfPacketConfig c;
  c.interfaces = "any";
  c.netns = "all";
  c.bpf_filter = "udp port 7777";
  c.rescan_interval_ms = 100;
  Running run(c);
  for (int i = 0; i < 50 && run.source->namespaces() == 0; ++i) usleep(50000);
  ASSERT_GE(run.source->namespaces(), 1u);
  auto following = [&](uint64_t inode) {
    for (uint64_t i : run.source->netns_inodes()) {
      if (i == inode) return true;
    }
    return false;
  };

  // A "container" appears: two namespaces joined by a veth pair, like a pod and its host side.
  std::string a = "sonde_fa" + id_, b = "sonde_fb" + id_, err;
  ASSERT_TRUE(AddNetns(a, &err)) << err;
  ASSERT_TRUE(AddNetns(b, &err)) << err;
  int rc = 0;
  std::string out = Sh("set -e; ip link add fva" + id_ + " netns " + a + " type veth peer name fvb" +
                           id_ + " netns " + b + "; ip -n " + a + " addr add 198.18.7.1/30 dev fva" +
                           id_ + "; ip -n " + b + " addr add 198.18.7.2/30 dev fvb" + id_ +
                           "; ip -n " + a + " link set fva" + id_ + " up; ip -n " + b +
                           " link set fvb" + id_ + " up",
                       &rc);
  ASSERT_EQ(rc, 0) << out;
  uint64_t ino_a = NetnsInode(a), ino_b = NetnsInode(b);
  ASSERT_NE(ino_a, 0u);
  ASSERT_NE(ino_b, 0u);
  for (int i = 0; i < 100 && !(following(ino_a) && following(ino_b)); ++i) usleep(50000);
  EXPECT_TRUE(following(ino_a));
  EXPECT_TRUE(following(ino_b));
  // Datagrams A -> B: captured in A (egress) and in B (ingress), each tagged with its netns.
  for (int i = 0; i < 100 && (run.log.Count(7777, ino_a) == 0 || run.log.Count(7777, ino_b) == 0); ++i) {
    Udp(a, "198.18.7.2", 7777);
    usleep(50000);
  }
  EXPECT_GT(run.log.Count(7777, ino_a), 0u);
  EXPECT_GT(run.log.Count(7777, ino_b), 0u);

  // The namespaces go away: their sockets are released (they would keep them alive).
  Sh("ip netns del " + a + "; ip netns del " + b);
  created_.clear();
  for (int i = 0; i < 100 && (following(ino_a) || following(ino_b)); ++i) usleep(50000);
  EXPECT_FALSE(following(ino_a));
  EXPECT_FALSE(following(ino_b));
  run.Stop();
  EXPECT_TRUE(run.status.ok()) << run.status.ToString();
}

}  // namespace
}  // namespace sonde::agent::capture
