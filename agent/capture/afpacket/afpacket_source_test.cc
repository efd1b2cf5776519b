// AfPacketSource live tests (label bpf: root, network namespaces, nginx, curl, nft). Two network
// namespaces joined by a veth pair in 198.18.0.0/15; nginx in one, curl in the other; the source
// captures inside the server namespace (exercising the netns option) and the flow tracker must
// report exactly the connections and bytes curl reports. Skips when the tools are missing.
#include "agent/capture/afpacket/afpacket_source.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "agent/flow/flow_tracker.h"
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
  // (we captured them on its side) and has to send them again.
  int rc = 0;
  std::ofstream(dir_ / "drop.nft")
      << "table inet sonde_test {\n chain in {\n  type filter hook input priority 0;\n"
      << "  tcp sport 8080 meta length > 500 numgen random mod 4 == 0 drop\n }\n}\n";
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

}  // namespace
}  // namespace sonde::agent::capture
