// End to end: a real sonde-server (supervising a real ClickHouse), real sonde-agent replays of a
// recorded capture, and the sonde CLI reading the rows back.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/harness/process.h"

namespace sonde::testing {
namespace {

using namespace std::chrono_literals;

// The recorded workload of tests/testdata/record_http.sh.
constexpr int kConnections = 6;

std::string Bin(const std::string& rel) { return BinaryDir() + "/" + rel; }
std::string Capture() { return SourceDir() + "/tests/testdata/http_known.pcap"; }

// Pids of clickhouse-server processes whose command line mentions `needle`.
std::vector<pid_t> ClickHousePids(const std::string& needle) {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "cmdline");
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.find("clickhouse") != std::string::npos && cmd.find(needle) != std::string::npos) {
      out.push_back(std::stoi(name));
    }
  }
  return out;
}

class Platform {
 public:
  Platform() : ingest_port_(FreePort()), http_port_(FreePort()) {
    server_ = std::make_unique<ChildProcess>(
        "sonde-server",
        std::vector<std::string>{Bin("server/main/sonde-server"), "--data-dir", dir_.path() + "/data",
                                 "--listen", "127.0.0.1:" + std::to_string(ingest_port_), "--http",
                                 "127.0.0.1:" + std::to_string(http_port_)},
        dir_.path());
  }
  ~Platform() {
    server_->Stop(30s);
    if (::testing::Test::HasFailure()) {
      std::fprintf(stderr, "--- sonde-server stderr ---\n%s\n", server_->Stderr().c_str());
    }
  }

  // Waits until the server answers queries (it applies the schema before serving).
  bool WaitReady(std::chrono::seconds timeout = 120s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!server_->running()) return false;
      if (Query("SELECT count() FROM l4_flow_log").exit_code == 0) return true;
      std::this_thread::sleep_for(500ms);
    }
    return false;
  }

  CommandResult Query(const std::string& sql, const std::string& db = "flow_log") {
    return RunCommand({Bin("cli/sonde"), "--server", "http://127.0.0.1:" + std::to_string(http_port_),
                       "query", "--db", db, "--format", "json", sql},
                      60s);
  }

  // One scalar from a query, or -1.
  int64_t Scalar(const std::string& sql) {
    auto r = Query(sql);
    if (r.exit_code != 0) return -1;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || j["rows"].empty()) return -1;
    const auto& v = j["rows"][0][0];
    return v.is_string() ? std::stoll(v.get<std::string>()) : v.get<int64_t>();
  }

  // Polls until `sql` yields at least `want` (writes are asynchronous after the ack).
  int64_t WaitForAtLeast(const std::string& sql, int64_t want, std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int64_t got = -1;
    while (std::chrono::steady_clock::now() < deadline) {
      got = Scalar(sql);
      if (got >= want) return got;
      std::this_thread::sleep_for(500ms);
    }
    return got;
  }

  CommandResult Replay(const std::string& hostname) {
    return RunCommand({Bin("agent/main/sonde-agent"), "--pcap", Capture(), "--server",
                       "127.0.0.1:" + std::to_string(ingest_port_), "--hostname", hostname},
                      180s);
  }

  const std::string& data_dir() const { return dir_.path(); }
  int ingest_port() const { return ingest_port_; }

 private:
  TempDir dir_;
  int ingest_port_;
  int http_port_;
  std::unique_ptr<ChildProcess> server_;
};

TEST(EndToEndTest, CaptureBecomesQueryableRows) {
  // The offline mode tells us what the agent extracts from the capture.
  auto jsonl = RunCommand({Bin("agent/main/sonde-agent"), "--pcap", Capture(), "--output", "jsonl"});
  ASSERT_EQ(jsonl.exit_code, 0) << jsonl.err;
  int l7_lines = 0, l4_lines = 0;
  std::istringstream lines(jsonl.out);
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line);
    l7_lines += j["record"] == "l7_request";
    l4_lines += j["record"] == "l4_flow";
  }
  EXPECT_EQ(l4_lines, kConnections);
  EXPECT_EQ(l7_lines, kConnections);

  Platform p;
  ASSERT_TRUE(p.WaitReady()) << "server never became ready";
  auto replay = p.Replay("e2e-host");
  ASSERT_EQ(replay.exit_code, 0) << replay.err;

  EXPECT_EQ(p.WaitForAtLeast("SELECT count() FROM l7_request_log", kConnections, 60s), kConnections);
  EXPECT_EQ(p.WaitForAtLeast("SELECT count() FROM l4_flow_log", kConnections, 60s), kConnections);

  auto r = p.Query(
      "SELECT request_type, request_resource, response_code, count() AS n FROM l7_request_log "
      "GROUP BY request_type, request_resource, response_code "
      "ORDER BY request_type, request_resource, response_code");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  // Values may arrive as numbers or strings depending on the type; compare as text.
  std::vector<std::string> got;
  for (const auto& row : j["rows"]) {
    std::string s;
    for (const auto& v : row) s += (v.is_string() ? v.get<std::string>() : v.dump()) + " ";
    got.push_back(s);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"GET /hello.txt 200 3 ", "GET /missing 404 2 ",
                                           "POST /hello.txt 501 1 "}));
  EXPECT_EQ(p.Scalar("SELECT count() FROM l7_request_log WHERE l7_protocol = 'HTTP1' AND "
                     "server_port = 18080 AND response_status = 'client_error'"),
            2);
  EXPECT_EQ(p.Scalar("SELECT countIf(response_status = 'server_error') FROM l7_request_log"), 1);
}

TEST(EndToEndTest, NoAcknowledgedRecordIsLostWhenClickHouseDies) {
  Platform p;
  ASSERT_TRUE(p.WaitReady()) << "server never became ready";
  constexpr int kReplays = 8;
  std::atomic<int> done{0};
  std::atomic<int> failures{0};
  std::thread agents([&] {
    for (int i = 0; i < kReplays; ++i) {
      // A distinct host per replay, so each run's rows are told apart by agent_id.
      auto r = p.Replay("e2e-replay-" + std::to_string(i));
      if (r.exit_code != 0) {
        ++failures;
        std::fprintf(stderr, "replay %d failed: %s\n", i, r.err.c_str());
      }
      ++done;
    }
  });
  while (done < 2) std::this_thread::sleep_for(50ms);
  auto pids = ClickHousePids(p.data_dir());
  ASSERT_FALSE(pids.empty()) << "no supervised clickhouse-server found";
  for (pid_t pid : pids) kill(pid, SIGKILL);
  // A bad client in the middle of it all must not disturb the good ones.
  auto garbage = RunCommand({"/bin/sh", "-c",
                             "printf 'GET / HTTP/1.1\\r\\n\\r\\n' | timeout 5 "
                             "bash -c 'cat > /dev/tcp/127.0.0.1/" +
                                 std::to_string(p.ingest_port()) + "'"});
  (void)garbage;
  agents.join();
  EXPECT_EQ(failures.load(), 0);
  // The server's supervisor brought ClickHouse back as a new process.
  std::vector<pid_t> after;
  for (int i = 0; i < 600 && after.empty(); ++i) {
    std::this_thread::sleep_for(100ms);
    for (pid_t pid : ClickHousePids(p.data_dir())) {
      if (std::count(pids.begin(), pids.end(), pid) == 0) after.push_back(pid);
    }
  }
  ASSERT_FALSE(after.empty()) << "ClickHouse was not restarted";
  for (pid_t pid : pids) EXPECT_EQ(std::count(after.begin(), after.end(), pid), 0);
  const int64_t want = int64_t{kReplays} * kConnections;
  EXPECT_EQ(p.WaitForAtLeast("SELECT uniqExact(agent_id, flow_id) FROM l4_flow_log", want, 180s), want);
  EXPECT_EQ(p.WaitForAtLeast("SELECT uniqExact(agent_id, flow_id, request_id, start_time_us) FROM "
                             "l7_request_log",
                             want, 60s),
            want);
}

}  // namespace
}  // namespace sonde::testing
