// The shipped eBPF pipeline end to end: the real `sonde-agent --output jsonl --ebpf on` binary
// watches real servers and clients (nginx, python http.server, node, redis, mariadb, postgres,
// mosquitto, dnsmasq, nginx TLS, nginx proxy_pass, a server in a network namespace) running a
// known workload, is stopped with SIGTERM (it flushes), and its L7 request records are checked:
// each request exactly once from each side with the real protocol layer (protocol, type,
// resource, status/code, duration), the right process, and syscall_trace_id links through a proxy.
// Needs root, a BPF-capable kernel and the server packages (scripts/install-deps.sh).
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/bpf_l7/process_harness.h"

namespace sonde::tests {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

uint32_t ParentOf(uint32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("PPid:", 0) == 0) return static_cast<uint32_t>(std::stoul(line.substr(5)));
  }
  return 0;
}

// The agent under test: live mode, eBPF on, packet capture on an interface that does not exist.
class Agent {
 public:
  explicit Agent(const fs::path& dir) : out_(dir / "agent.jsonl"), err_(dir / "agent.log") {
    const std::string bin = Env("SONDE_BINARY_DIR") + "/agent/main/sonde-agent";
    proc_ = std::make_unique<Proc>(
        std::vector<std::string>{"/bin/sh", "-c",
                                 "exec " + bin + " --output jsonl --ebpf on --interfaces sonde-none0 " +
                                     "--metrics-listen '' --l7-timeout-ms 5000 >" + out_.string() + " 2>" +
                                     err_.string()},
        dir / "agent.sh.log");
    ready_ = WaitFor([&] { return ReadFile(err_).find("eBPF socket tracing active") != std::string::npos; }, 90s);
  }
  bool ready() const { return ready_; }
  std::string log() const { return ReadFile(err_); }

  // SIGTERM (the agent flushes every open connection), then the L7 records it printed.
  std::vector<json> StopAndCollect() {
    std::this_thread::sleep_for(400ms);  // let the ring buffer drain
    const int status = proc_->Stop(SIGTERM, 30s);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "agent exit status " << status << "\n" << log();
    std::vector<json> out;
    std::ifstream in(out_);
    std::string line;
    while (std::getline(in, line)) {
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded()) {
        ADD_FAILURE() << "not JSON: " << line;
        continue;
      }
      if (j.value("record", "") == "l7_request" && j.value("signal_source", "") == "ebpf") out.push_back(j);
    }
    return out;
  }

 private:
  fs::path out_, err_;
  std::unique_ptr<Proc> proc_;
  bool ready_ = false;
};

// Records of one side of the connections to `server_port`: the server's view (process_id_1
// set) or the client's (process_id_0 set).
std::vector<json> SideOf(const std::vector<json>& recs, uint16_t server_port, bool server_side) {
  std::vector<json> out;
  for (const json& r : recs) {
    if (r.value("server_port", 0) != server_port) continue;
    const bool is_server = r.value("process_id_1", 0) != 0;
    const bool is_client = r.value("process_id_0", 0) != 0;
    if (server_side ? is_server : is_client) out.push_back(r);
  }
  return out;
}

// "type resource code" -> count, the fingerprint of a workload.
std::map<std::string, int> Fingerprint(const std::vector<json>& recs) {
  std::map<std::string, int> m;
  for (const json& r : recs) {
    m[r.value("request_type", "") + " " + r.value("request_resource", "") + " " +
      std::to_string(r.value("response_code", 0)) + " " + r.value("response_status", "")]++;
  }
  return m;
}

std::string Dump(const std::vector<json>& recs) {
  std::string s;
  for (const json& r : recs) {
    s += r.value("l7_protocol", "") + " " + r.value("request_type", "") + " " + r.value("request_resource", "") +
         " code=" + std::to_string(r.value("response_code", 0)) + " " + r.value("response_status", "") +
         " dur=" + std::to_string(r.value("response_duration", 0)) + " p0=" + std::to_string(r.value("process_id_0", 0)) +
         "/" + r.value("process_kname_0", "") + " p1=" + std::to_string(r.value("process_id_1", 0)) + "/" +
         r.value("process_kname_1", "") + " " + std::to_string(r.value("client_port", 0)) + "->" +
         std::to_string(r.value("server_port", 0)) + "\n";
  }
  return s;
}

struct Expect {
  std::string protocol;                 // l7_protocol
  std::map<std::string, int> requests;  // Fingerprint()
  std::string server_comm, client_comm;
  uint32_t server_pid = 0;              // 0: not checked
  bool encrypted = false;
};

// Each request exactly once from each side, with the real protocol fields and processes.
void CheckBothSides(const std::vector<json>& recs, uint16_t port, const Expect& e) {
  for (bool server_side : {true, false}) {
    SCOPED_TRACE(server_side ? "server side" : "client side");
    const std::vector<json> side = SideOf(recs, port, server_side);
    EXPECT_EQ(Fingerprint(side), e.requests) << Dump(side);
    for (const json& r : side) {
      EXPECT_EQ(r.value("l7_protocol", ""), e.protocol) << r.dump();
      const uint64_t dur = r.value("response_duration", uint64_t{0});
      EXPECT_GT(dur, 0u) << r.dump();
      EXPECT_LT(dur, 3'000'000u) << "response_duration is in microseconds: " << r.dump();
      EXPECT_EQ(r.value("is_encrypted", 0), e.encrypted ? 1 : 0);
      if (server_side) {
        EXPECT_EQ(r.value("process_kname_1", ""), e.server_comm);
        if (e.server_pid) {
          const uint32_t pid = r.value("process_id_1", 0u);
          EXPECT_TRUE(pid == e.server_pid || ParentOf(pid) == e.server_pid) << pid << " vs " << e.server_pid;
        }
        EXPECT_NE(r.value("syscall_trace_id_request", uint64_t{0}), 0u);
      } else {
        EXPECT_EQ(r.value("process_kname_0", ""), e.client_comm);
      }
    }
  }
}

class BpfL7Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    if (Env("SONDE_BINARY_DIR").empty()) GTEST_SKIP() << "SONDE_BINARY_DIR not set (run through ctest)";
    if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) GTEST_SKIP() << "no kernel BTF";
    dir_ = fs::temp_directory_path() / ("sonde_bpf_l7_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "html");
    fs::create_directories(dir_ / "tmp");
    fs::permissions(dir_, fs::perms::all);
    std::ofstream(dir_ / "html" / "index.html") << std::string(3000, 'i');  // sent with sendfile
  }
  void TearDown() override {
    servers_.clear();  // kill the process groups before removing their files
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  bool Have(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

  std::unique_ptr<Agent> StartAgent() {
    auto a = std::make_unique<Agent>(dir_);
    if (!a->ready()) ADD_FAILURE() << "agent did not start:\n" << a->log();
    return a;
  }
  Proc* Start(std::vector<std::string> argv, const std::string& name, const std::string& user = "",
              const std::string& netns = "") {
    servers_.push_back(std::make_unique<Proc>(std::move(argv), dir_ / (name + ".log"), user, netns));
    return servers_.back().get();
  }
  Proc* StartNginx(const std::string& server_blocks) {
    const std::string d = dir_.string();
    std::ofstream(dir_ / "nginx.conf")
        << "worker_processes 1;\ndaemon off;\npid " << d << "/nginx.pid;\nerror_log " << d << "/nginx.err;\n"
        << "events { worker_connections 256; }\nhttp {\n  access_log off;\n  sendfile on;\n"
        << "  client_body_temp_path " << d << "/tmp/body;\n  proxy_temp_path " << d << "/tmp/proxy;\n"
        << "  fastcgi_temp_path " << d << "/tmp/fcgi;\n  uwsgi_temp_path " << d << "/tmp/uwsgi;\n"
        << "  scgi_temp_path " << d << "/tmp/scgi;\n"
        << server_blocks << "}\n";
    return Start({"/usr/sbin/nginx", "-p", d, "-c", d + "/nginx.conf"}, "nginx");
  }
  void Curl(const std::string& args, int times = 1) {
    for (int i = 0; i < times; ++i) ASSERT_EQ(Sh("curl -s -o /dev/null " + args), 0) << args;
  }

  fs::path dir_;
  std::vector<std::unique_ptr<Proc>> servers_;
};

TEST_F(BpfL7Test, NginxWithSendfileAndCurl) {
  constexpr uint16_t kPort = 17481;
  auto agent = StartAgent();
  Proc* nginx = StartNginx("  server { listen 127.0.0.1:" + std::to_string(kPort) + "; root " + dir_.string() +
                           "/html; }\n");
  ASSERT_TRUE(WaitFor([&] { return PortOpen("127.0.0.1", kPort); }, 10s));
  const std::string base = "http://127.0.0.1:" + std::to_string(kPort);
  Curl(base + "/index.html", 3);
  Curl(base + "/missing", 2);
  Curl("-X POST -d x=1 " + base + "/index.html");  // 405: static files do not take POST
  // keep-alive: two requests on one connection, the first body sent with sendfile
  Curl("-o /dev/null " + base + "/index.html " + base + "/missing");
  const auto recs = agent->StopAndCollect();
  CheckBothSides(recs, kPort,
                 {"HTTP1",
                  {{"GET /index.html 200 ok", 4}, {"GET /missing 404 client_error", 3},
                   {"POST /index.html 405 client_error", 1}},
                  "nginx", "curl", static_cast<uint32_t>(nginx->pid())});
}

TEST_F(BpfL7Test, PythonHttpServerAndCurl) {
  constexpr uint16_t kPort = 17482;
  auto agent = StartAgent();
  Start({"/usr/bin/python3", "-m", "http.server", std::to_string(kPort), "--bind", "127.0.0.1", "--directory",
         (dir_ / "html").string()},
        "python");
  ASSERT_TRUE(WaitFor([&] { return PortOpen("127.0.0.1", kPort); }, 10s));
  const std::string base = "http://127.0.0.1:" + std::to_string(kPort);
  Curl(base + "/index.html", 2);
  Curl(base + "/nope", 2);
  const auto recs = agent->StopAndCollect();
  CheckBothSides(recs, kPort,
                 {"HTTP1", {{"GET /index.html 200 ok", 2}, {"GET /nope 404 client_error", 2}}, "python3", "curl",
                  static_cast<uint32_t>(servers_.back()->pid())});
}

TEST_F(BpfL7Test, NodeServerAndCurl) {
  if (!Have("/usr/bin/node")) GTEST_SKIP() << "nodejs not installed";
  constexpr uint16_t kPort = 17483;
  std::ofstream(dir_ / "server.js")
      << "const http = require('http');\n"
      << "http.createServer((req, res) => {\n"
      << "  if (req.url === '/ok') { res.writeHead(200, {'Content-Type': 'text/plain'}); res.end('fine'); }\n"
      << "  else { res.writeHead(500); res.end('broken on purpose'); }\n"
      << "}).listen(" << kPort << ", '127.0.0.1');\n";
  auto agent = StartAgent();
  Start({"/usr/bin/node", (dir_ / "server.js").string()}, "node");
  ASSERT_TRUE(WaitFor([&] { return PortOpen("127.0.0.1", kPort); }, 15s));
  const std::string base = "http://127.0.0.1:" + std::to_string(kPort);
  Curl(base + "/ok", 3);
  Curl(base + "/fail", 2);
  const auto recs = agent->StopAndCollect();
  CheckBothSides(recs, kPort,
                 {"HTTP1", {{"GET /ok 200 ok", 3}, {"GET /fail 500 server_error", 2}}, "node", "curl",
                  static_cast<uint32_t>(servers_.back()->pid())});
}

TEST_F(BpfL7Test, RedisServerAndCli) {
  constexpr uint16_t kPort = 17484;
  auto agent = StartAgent();
  Start({"/usr/bin/redis-server", "--port", std::to_string(kPort), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", dir_.string()},
        "redis");
  ASSERT_TRUE(WaitFor([&] { return PortOpen("127.0.0.1", kPort); }, 10s));
  const std::string cli = "redis-cli -p " + std::to_string(kPort) + " ";
  ASSERT_EQ(Sh(cli + "SET k hello >/dev/null"), 0);
  ASSERT_EQ(Sh(cli + "GET k >/dev/null"), 0);
  ASSERT_EQ(Sh(cli + "GET k >/dev/null"), 0);
  ASSERT_EQ(Sh(cli + "INCR k >/dev/null"), 0);  // fails on purpose: not an integer
  const auto recs = agent->StopAndCollect();
  // redis-cli also sends COMMAND DOCS on start; only our commands are counted.
  std::vector<json> ours;
  for (const json& r : recs) {
    const std::string t = r.value("request_type", "");
    if (t == "SET" || t == "GET" || t == "INCR") ours.push_back(r);
  }
  for (bool server_side : {true, false}) {
    SCOPED_TRACE(server_side ? "server side" : "client side");
    auto side = SideOf(ours, kPort, server_side);
    std::map<std::string, int> got;
    for (const json& r : side) {
      got[r.value("request_type", "") + " " + r.value("response_status", "")]++;
      EXPECT_EQ(r.value("l7_protocol", ""), "Redis");
      EXPECT_GT(r.value("response_duration", 0), 0);
      EXPECT_EQ(r.value(server_side ? "process_kname_1" : "process_kname_0", ""),
                server_side ? "redis-server" : "redis-cli");
    }
    // An error reply (-ERR) is the client's mistake in the protocol layer's mapping.
    EXPECT_EQ(got, (std::map<std::string, int>{{"SET ok", 1}, {"GET ok", 2}, {"INCR client_error", 1}}))
        << Dump(side);
  }
}

TEST_F(BpfL7Test, MariadbAndMysqlClient) {
  if (!Have("/usr/sbin/mysqld") || !Have("/usr/bin/mariadb-install-db")) GTEST_SKIP() << "mariadb not installed";
  constexpr uint16_t kPort = 17485;
  const std::string data = (dir_ / "mysql").string();
  fs::create_directories(data);
  ASSERT_EQ(Sh("chown -R mysql:mysql " + dir_.string() + " && mariadb-install-db --no-defaults --user=mysql "
               "--datadir=" + data + " --auth-root-authentication-method=normal >" + dir_.string() +
               "/install.log 2>&1"),
            0)
      << ReadFile(dir_ / "install.log");
  auto agent = StartAgent();
  Start({"/usr/sbin/mysqld", "--no-defaults", "--user=mysql", "--datadir=" + data, "--port=" + std::to_string(kPort),
         "--bind-address=127.0.0.1", "--socket=" + data + "/mysqld.sock", "--pid-file=" + data + "/mysqld.pid",
         "--skip-grant-tables", "--skip-log-bin", "--innodb-buffer-pool-size=16M"},
        "mysqld");
  ASSERT_TRUE(WaitFor([&] { return PortOpen("127.0.0.1", kPort); }, 60s)) << ReadFile(dir_ / "mysqld.log");
  const std::string cli = "mysql --no-defaults -h127.0.0.1 -P" + std::to_string(kPort) + " -uroot ";
  ASSERT_EQ(Sh(cli + "-e 'SELECT 1' >/dev/null"), 0);
  ASSERT_EQ(Sh(cli + "-e 'SELECT 2' >/dev/null"), 0);
  ASSERT_NE(Sh(cli + "-e 'SELECT * FROM nope.nothing' >/dev/null 2>&1"), 0);  // fails on purpose
  const auto recs = agent->StopAndCollect();
  for (bool server_side : {true, false}) {
    SCOPED_TRACE(server_side ? "server side" : "client side");
    auto side = SideOf(recs, kPort, server_side);
    int ok_selects = 0, failed = 0;
    for (const json& r : side) {
      EXPECT_EQ(r.value("l7_protocol", ""), "MySQL") << r.dump();
      EXPECT_EQ(r.value(server_side ? "process_kname_1" : "process_kname_0", ""), server_side ? "mysqld" : "mysql");
      const std::string res = r.value("request_resource", "");
      if (res.rfind("SELECT", 0) == 0) {
        EXPECT_GT(r.value("response_duration", 0), 0) << r.dump();
      }
      if (res == "SELECT 1" || res == "SELECT 2") ok_selects += r.value("response_status", "") == "ok";
      if (res == "SELECT * FROM nope.nothing") {
        ++failed;
        EXPECT_EQ(r.value("response_status", ""), "client_error") << r.dump();
        EXPECT_EQ(r.value("request_type", ""), "COM_QUERY");
        EXPECT_NE(r.value("response_code", 0), 0);  // the server's error number
      }
    }
    EXPECT_EQ(ok_selects, 2) << Dump(side);
    EXPECT_EQ(failed, 1) << Dump(side);
  }
}

TEST_F(BpfL7Test, PostgresAndPsql) {
  const std::string bin = "/usr/lib/postgresql/15/bin/";
  if (!Have(bin + "initdb")) GTEST_SKIP() << "postgresql 15 not installed";
  constexpr uint16_t kPort = 17486;
  const std::string data = (dir_ / "pg").string();
  ASSERT_EQ(Sh("chown -R postgres " + dir_.string()), 0);
  {
    Proc init({bin + "initdb", "-D", data, "-U", "postgres", "--auth=trust"}, dir_ / "initdb.log", "postgres");
    const int st = init.Stop(0, 60s);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << ReadFile(dir_ / "initdb.log");
  }
  auto agent = StartAgent();
  Start({bin + "postgres", "-D", data, "-p", std::to_string(kPort), "-h", "127.0.0.1", "-k", dir_.string()},
        "postgres", "postgres");
  ASSERT_TRUE(WaitFor([&] { return PortOpen("127.0.0.1", kPort); }, 30s)) << ReadFile(dir_ / "postgres.log");
  const std::string cli = "psql -X -h 127.0.0.1 -p " + std::to_string(kPort) + " -U postgres ";
  ASSERT_EQ(Sh(cli + "-c 'SELECT 1' >/dev/null"), 0);
  ASSERT_EQ(Sh(cli + "-c 'SELECT 2' >/dev/null"), 0);
  ASSERT_NE(Sh(cli + "-c 'SELECT * FROM nothing_here' >/dev/null 2>&1"), 0);  // fails on purpose
  const auto recs = agent->StopAndCollect();
  for (bool server_side : {true, false}) {
    SCOPED_TRACE(server_side ? "server side" : "client side");
    auto side = SideOf(recs, kPort, server_side);
    int ok_selects = 0, failed = 0;
    for (const json& r : side) {
      EXPECT_EQ(r.value("l7_protocol", ""), "PostgreSQL") << r.dump();
      EXPECT_EQ(r.value(server_side ? "process_kname_1" : "process_kname_0", ""), server_side ? "postgres" : "psql");
      EXPECT_GT(r.value("response_duration", 0), 0);
      const std::string res = r.value("request_resource", "");
      if (res == "SELECT 1" || res == "SELECT 2") ok_selects += r.value("response_status", "") == "ok";
      if (res == "SELECT * FROM nothing_here") {
        ++failed;
        EXPECT_NE(r.value("response_status", ""), "ok") << r.dump();
      }
    }
    EXPECT_EQ(ok_selects, 2) << Dump(side);
    EXPECT_EQ(failed, 1) << Dump(side);
  }
}

TEST_F(BpfL7Test, MosquittoAndClients) {
  if (!Have("/usr/sbin/mosquitto")) GTEST_SKIP() << "mosquitto not installed";
  constexpr uint16_t kPort = 17487;
  auto agent = StartAgent();
  Start({"/usr/sbin/mosquitto", "-p", std::to_string(kPort)}, "mosquitto");
  ASSERT_TRUE(WaitFor([&] { return PortOpen("127.0.0.1", kPort); }, 10s));
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Sh("mosquitto_pub -h 127.0.0.1 -p " + std::to_string(kPort) + " -q 1 -t sonde/t -m hello"), 0);
  }
  const auto recs = agent->StopAndCollect();
  for (bool server_side : {true, false}) {
    SCOPED_TRACE(server_side ? "server side" : "client side");
    auto side = SideOf(recs, kPort, server_side);
    std::map<std::string, int> got;
    for (const json& r : side) {
      EXPECT_EQ(r.value("l7_protocol", ""), "MQTT") << r.dump();
      EXPECT_EQ(r.value(server_side ? "process_kname_1" : "process_kname_0", ""),
                server_side ? "mosquitto" : "mosquitto_pub");
      got[r.value("request_type", "") + " " + r.value("response_status", "")]++;
    }
    // Each publisher: CONNECT/CONNACK, PUBLISH(QoS 1)/PUBACK, DISCONNECT (no reply).
    EXPECT_EQ(got["CONNECT ok"], 3) << Dump(side);
    EXPECT_EQ(got["PUBLISH ok"], 3) << Dump(side);
  }
}

TEST_F(BpfL7Test, DnsmasqAndDigOverUdp) {
  if (!Have("/usr/sbin/dnsmasq") || !Have("/usr/bin/dig")) GTEST_SKIP() << "dnsmasq/dig not installed";
  constexpr uint16_t kPort = 17488;
  auto agent = StartAgent();
  Start({"/usr/sbin/dnsmasq", "-p", std::to_string(kPort), "--no-daemon", "--no-resolv", "--no-hosts",
         "--listen-address=127.0.0.1", "--bind-interfaces", "--address=/sonde.test/198.18.0.5",
         "--pid-file=" + dir_.string() + "/dnsmasq.pid", "--user=root"},
        "dnsmasq");
  const std::string dig = "dig +tries=1 +time=2 @127.0.0.1 -p " + std::to_string(kPort) + " ";
  ASSERT_TRUE(WaitFor([&] { return Sh(dig + "warmup.sonde.test >/dev/null 2>&1") == 0; }, 10s));
  // The warm-up went before a marker: count only what follows.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Sh(dig + "a.sonde.test A +short >/dev/null"), 0);
  for (int i = 0; i < 2; ++i) ASSERT_EQ(Sh(dig + "elsewhere.invalid A >/dev/null"), 0);  // no upstream: refused
  const auto recs = agent->StopAndCollect();
  for (bool server_side : {true, false}) {
    SCOPED_TRACE(server_side ? "server side" : "client side");
    auto side = SideOf(recs, kPort, server_side);
    std::map<std::string, int> got;
    for (const json& r : side) {
      EXPECT_EQ(r.value("l7_protocol", ""), "DNS") << r.dump();
      EXPECT_EQ(r.value("protocol", 0), 17);
      EXPECT_EQ(r.value(server_side ? "process_kname_1" : "process_kname_0", ""), server_side ? "dnsmasq" : "dig");
      EXPECT_GT(r.value("response_duration", 0), 0);
      EXPECT_NE(r.value("client_port", 0), 0) << "peer address of the unconnected socket: " << r.dump();
      if (r.value("request_resource", "") == "warmup.sonde.test") continue;
      got[r.value("request_type", "") + " " + r.value("request_resource", "") + " " +
          r.value("response_status", "")]++;
    }
    EXPECT_EQ(got["A a.sonde.test ok"], 3) << Dump(side);
    EXPECT_EQ(got["A elsewhere.invalid ok"], 0) << Dump(side);
    int refused = 0;
    for (const auto& [k, n] : got) {
      if (k.rfind("A elsewhere.invalid ", 0) == 0) refused += n;
    }
    EXPECT_EQ(refused, 2) << Dump(side);
  }
}

TEST_F(BpfL7Test, NginxTlsAndCurlPlaintextViaUprobes) {
  constexpr uint16_t kPort = 17489;
  const std::string d = dir_.string();
  ASSERT_EQ(Sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout " + d + "/key.pem -out " + d +
               "/cert.pem -days 1 -subj /CN=localhost >/dev/null 2>&1"),
            0);
  // nginx first: the agent finds libssl users when it starts (and rescans every few seconds).
  Proc* nginx = StartNginx("  server { listen 127.0.0.1:" + std::to_string(kPort) + " ssl; root " + d +
                           "/html;\n    ssl_certificate " + d + "/cert.pem; ssl_certificate_key " + d +
                           "/key.pem; }\n");
  ASSERT_TRUE(WaitFor([&] { return PortOpen("127.0.0.1", kPort); }, 10s));
  auto agent = StartAgent();
  const std::string base = "https://127.0.0.1:" + std::to_string(kPort);
  Curl("-k " + base + "/index.html", 2);
  Curl("-k " + base + "/missing");
  const auto recs = agent->StopAndCollect();
  // Two views of each connection: the handshake from the ciphertext (TLS parser), then the
  // plaintext from the uprobes (HTTP parser).
  std::vector<json> plaintext, handshakes;
  for (const json& r : recs) {
    (r.value("l7_protocol", "") == "TLS" ? handshakes : plaintext).push_back(r);
  }
  for (bool server_side : {true, false}) {
    auto side = SideOf(handshakes, kPort, server_side);
    EXPECT_EQ(side.size(), 3u) << Dump(side);
    for (const json& r : side) EXPECT_EQ(r.value("request_type", ""), "ClientHello");
  }
  CheckBothSides(plaintext, kPort,
                 {"HTTP1", {{"GET /index.html 200 ok", 2}, {"GET /missing 404 client_error", 1}}, "nginx", "curl",
                  static_cast<uint32_t>(nginx->pid()), /*encrypted=*/true});
}

TEST_F(BpfL7Test, NginxProxyPassLinksSyscallTraceIds) {
  constexpr uint16_t kFront = 17490, kBack = 17491;
  auto agent = StartAgent();
  Start({"/usr/bin/python3", "-m", "http.server", std::to_string(kBack), "--bind", "127.0.0.1", "--directory",
         (dir_ / "html").string()},
        "backend");
  StartNginx("  server { listen 127.0.0.1:" + std::to_string(kFront) + ";\n    location /api/ { proxy_pass http://127.0.0.1:" +
             std::to_string(kBack) + "/; }\n  }\n");
  ASSERT_TRUE(WaitFor([&] { return PortOpen("127.0.0.1", kFront) && PortOpen("127.0.0.1", kBack); }, 10s));
  const std::string base = "http://127.0.0.1:" + std::to_string(kFront);
  Curl(base + "/api/index.html", 3);
  Curl(base + "/api/absent", 1);
  const auto recs = agent->StopAndCollect();
  const auto inbound = SideOf(recs, kFront, true);    // nginx serving curl
  const auto outbound = SideOf(recs, kBack, false);   // nginx calling the backend
  const auto backend = SideOf(recs, kBack, true);     // python serving nginx
  ASSERT_EQ(inbound.size(), 4u) << Dump(recs);
  ASSERT_EQ(outbound.size(), 4u) << Dump(recs);
  ASSERT_EQ(backend.size(), 4u) << Dump(recs);
  std::set<uint64_t> ids;
  for (const json& in : inbound) {
    const uint64_t id = in.value("syscall_trace_id_request", uint64_t{0});
    ASSERT_NE(id, 0u);
    EXPECT_EQ(in.value("syscall_trace_id_response", uint64_t{0}), id) << "request and response share the id";
    ids.insert(id);
    int linked = 0;
    for (const json& out : outbound) {
      if (out.value("syscall_trace_id_request", uint64_t{0}) != id) continue;
      ++linked;
      EXPECT_EQ(out.value("process_kname_0", ""), "nginx");
      EXPECT_EQ(out.value("process_id_0", 0u), in.value("process_id_1", 0u));
      // The proxied path and status match the inbound request's.
      EXPECT_EQ("/api" + out.value("request_resource", ""), in.value("request_resource", ""));
      EXPECT_EQ(out.value("response_code", 0), in.value("response_code", 0));
    }
    EXPECT_EQ(linked, 1) << "exactly one backend call per inbound request\n" << Dump(recs);
  }
  EXPECT_EQ(ids.size(), 4u) << "one id per inbound request";
  for (const json& b : backend) EXPECT_EQ(ids.count(b.value("syscall_trace_id_request", uint64_t{0})), 0u);
}

TEST_F(BpfL7Test, ServerInNetworkNamespace) {
  constexpr uint16_t kPort = 17492;
  const std::string ns = "sonde-l7-" + std::to_string(getpid());
  const std::string host_if = "sl7h" + std::to_string(getpid() % 100000), ns_if = "sl7n" + std::to_string(getpid() % 100000);
  ASSERT_EQ(Sh("ip netns add " + ns), 0);
  struct Cleanup {
    std::string ns, host_if;
    ~Cleanup() {
      Sh("ip link del " + host_if + " 2>/dev/null");
      Sh("ip netns del " + ns + " 2>/dev/null");
    }
  } cleanup{ns, host_if};
  ASSERT_EQ(Sh("ip link add " + host_if + " type veth peer name " + ns_if + " netns " + ns +
               " && ip addr add 198.18.7.1/30 dev " + host_if + " && ip link set " + host_if +
               " up && ip netns exec " + ns + " ip addr add 198.18.7.2/30 dev " + ns_if + " && ip netns exec " + ns +
               " ip link set " + ns_if + " up && ip netns exec " + ns + " ip link set lo up"),
            0);
  auto agent = StartAgent();
  Start({"/usr/bin/python3", "-m", "http.server", std::to_string(kPort), "--bind", "198.18.7.2", "--directory",
         (dir_ / "html").string()},
        "python-ns", "", ns);
  ASSERT_TRUE(WaitFor([&] { return PortOpen("198.18.7.2", kPort); }, 10s));
  const std::string base = "http://198.18.7.2:" + std::to_string(kPort);
  Curl(base + "/index.html", 2);
  Curl(base + "/gone");
  const auto recs = agent->StopAndCollect();
  CheckBothSides(recs, kPort,
                 {"HTTP1", {{"GET /index.html 200 ok", 2}, {"GET /gone 404 client_error", 1}}, "python3", "curl"});
  for (const json& r : SideOf(recs, kPort, true)) {
    EXPECT_EQ(r.value("ip4_0", ""), "198.18.7.1");
    EXPECT_EQ(r.value("ip4_1", ""), "198.18.7.2");
  }
}

}  // namespace
}  // namespace sonde::tests
