// End to end AutoTagging + SmartEncoding: a real sonde-server (with its supervised ClickHouse,
// an inventory, ingest and query tokens, and a kubeconfig pointing at a fake Kubernetes API on
// loopback) receives records from two agents on different hosts running different processes;
// Sonde SQL through POST /v1/query by pod_1, k8s.label.app_1, service_1, host_0 and
// process_name_0 returns the right rows, also across a pod renamed mid-run by a watch event.
// A second test starts the server on a ClickHouse holding an older, narrower table with
// expired partitions: the server migrates it and enforces retention.
#include <arpa/inet.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/enrich/testing/fake_kube_api_server.h"
#include "server/ingest/testing/fake_agent.h"
#include "server/storage/clickhouse/testing/clickhouse_fixture.h"
#include "tests/harness/process.h"

namespace sonde::testing {
namespace {

using namespace std::chrono_literals;
using server::enrich::testing::FakeKubeApiServer;
using server::enrich::testing::FakePod;
using server::enrich::testing::FakeWatchEvent;
using server::ingest::testing::FakeAgent;

constexpr char kIngestToken[] = "ingest-secret";
constexpr char kQueryToken[] = "query-secret";

uint32_t V4(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return ntohl(a.s_addr);
}

uint32_t NowS() {
  return static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

agent::v1::L7RequestLog L7(uint32_t time, const char* client, uint32_t pid, const char* server) {
  agent::v1::L7RequestLog m;
  m.set_time(time);
  m.set_is_ipv4(1);
  m.set_ip4_0(V4(client));
  m.set_ip4_1(V4(server));
  m.set_process_id_0(pid);
  m.set_server_port(8080);
  m.set_l7_protocol(common::v1::L7_PROTOCOL_HTTP1);
  m.set_request_type("GET");
  return m;
}

// A running sonde-server with extra flags, queried over its HTTP API.
class Server {
 public:
  explicit Server(std::vector<std::string> extra) : ingest_port_(FreePort()), http_port_(FreePort()) {
    std::vector<std::string> argv{BinaryDir() + "/server/main/sonde-server", "--data-dir", dir_.path() + "/data",
                                  "--listen", "127.0.0.1:" + std::to_string(ingest_port_), "--http",
                                  "127.0.0.1:" + std::to_string(http_port_), "--flush-interval-ms", "200"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<ChildProcess>("sonde-server", argv, dir_.path());
  }
  ~Server() {
    process_->Stop(20s);
    if (::testing::Test::HasFailure()) {
      std::fprintf(stderr, "--- sonde-server stderr ---\n%s\n", process_->Stderr().c_str());
    }
  }

  // POST /v1/query; returns (HTTP status, body).
  std::pair<int, nlohmann::json> Query(const std::string& sql, const std::string& token = kQueryToken,
                                       const std::string& db = "flow_log") {
    httplib::Client cli("127.0.0.1", http_port_);
    cli.set_read_timeout(30, 0);
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    auto res = cli.Post("/v1/query", headers, nlohmann::json{{"db", db}, {"sql", sql}}.dump(), "application/json");
    if (!res) return {-1, nullptr};
    return {res->status, nlohmann::json::parse(res->body, nullptr, false)};
  }
  // Rows as "v1 v2 ...;" text, or the error.
  std::string Rows(const std::string& sql, const std::string& db = "flow_log") {
    auto [status, body] = Query(sql, kQueryToken, db);
    if (status != 200) return "HTTP " + std::to_string(status) + ": " + (body.is_discarded() ? "" : body.dump());
    std::string out;
    for (const auto& row : body["rows"]) {
      for (const auto& v : row) out += (v.is_string() ? v.get<std::string>() : v.dump()) + " ";
      out.back() = ';';
    }
    return out;
  }
  // Polls until `sql` yields `want` (writes and label publication are asynchronous).
  std::string WaitRows(const std::string& sql, const std::string& want, std::chrono::seconds timeout = 20s,
                       const std::string& db = "flow_log") {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string got;
    while (std::chrono::steady_clock::now() < deadline) {
      got = Rows(sql, db);
      if (got == want) break;
      std::this_thread::sleep_for(200ms);
    }
    return got;
  }
  std::string Metrics() {
    httplib::Client cli("127.0.0.1", http_port_);
    auto res = cli.Get("/metrics");
    return res ? res->body : "";
  }
  bool WaitReady(std::chrono::seconds timeout = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!process_->running()) return false;
      if (Query("SELECT count() FROM l4_flow_log").first == 200) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }
  uint16_t ingest_port() const { return static_cast<uint16_t>(ingest_port_); }
  const std::string& dir() const { return dir_.path(); }

 private:
  TempDir dir_;
  int ingest_port_;
  int http_port_;
  std::unique_ptr<ChildProcess> process_;
};

// Value of a Prometheus counter line "name N" (0 when absent).
double MetricValue(const std::string& text, const std::string& name) {
  const size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return 0;
  return std::stod(text.substr(at + name.size() + 2));
}

TEST(TagsEndToEndTest, AgentsPodsProcessesAndARenameAreQueryableByTag) {
  TempDir dir;
  FakeKubeApiServer api(/*live_watch=*/true);
  api.SetList(R"({"kind":"PodList","metadata":{"resourceVersion":"10"},"items":[)" +
              FakePod("web-1", "10.1.0.11", "5", "web", "shop", "node-a") + "," +
              FakePod("db-0", "10.1.0.21", "6", "db", "shop", "node-a") + "]}");
  std::ofstream(dir.path() + "/kubeconfig")
      << "apiVersion: v1\ncurrent-context: fake\n"
      << "clusters: [{name: c, cluster: {server: '" << api.url() << "'}}]\n"
      << "contexts: [{name: fake, context: {cluster: c, user: u}}]\n"
      << "users: [{name: u, user: {token: kube-token}}]\n";
  // node-a is known from the inventory; vm-b only from its agent's registration.
  std::ofstream(dir.path() + "/inventory.yaml")
      << "hosts: [{name: node-a, ips: [10.0.0.1]}]\n"
      << "services:\n"
      << "  - {cluster: prod, namespace: shop, name: web-svc, cluster_ips: [10.96.0.10], selector: {app: web}}\n"
      << "  - {cluster: prod, namespace: shop, name: db-svc, cluster_ips: [10.96.0.20], selector: {app: db}}\n";

  Server server({"--inventory", dir.path() + "/inventory.yaml", "--kubeconfig", dir.path() + "/kubeconfig",
                 "--kube-cluster", "prod", "--ingest-token", kIngestToken, "--query-token", kQueryToken});
  ASSERT_TRUE(server.WaitReady()) << "server never became ready";

  // Tokens: queries and agents without the right one are refused.
  EXPECT_EQ(server.Query("SELECT 1", "").first, 401);
  EXPECT_EQ(server.Query("SELECT 1", "wrong").first, 401);
  {
    FakeAgent intruder;
    ASSERT_TRUE(intruder.Connect(server.ingest_port()).ok());
    EXPECT_FALSE(intruder.Register("node-a", "boot-x", "wrong").ok());
  }

  const uint32_t before = NowS() - 5;  // records from before the rename
  FakeAgent a, b;
  ASSERT_TRUE(a.Connect(server.ingest_port()).ok());
  ASSERT_TRUE(a.Register("node-a", "boot-a", kIngestToken).ok());
  agent::v1::HostInfo host_b;
  host_b.set_hostname("vm-b");
  auto* iface = host_b.add_interfaces();
  iface->set_name("eth0");
  iface->add_ips("10.0.0.5/24");
  iface->add_ips("127.0.0.1/8");
  ASSERT_TRUE(b.Connect(server.ingest_port()).ok());
  ASSERT_TRUE(b.Register("vm-b", "boot-b", kIngestToken, &host_b).ok());

  agent::v1::RecordBatch batch_a;
  auto* curl = batch_a.add_processes();
  curl->set_pid(100);
  curl->set_name("curl");
  for (int i = 0; i < 3; ++i) *batch_a.add_l7_request_logs() = L7(before, "10.0.0.1", 100, "10.1.0.11");
  for (int i = 0; i < 2; ++i) {
    auto* l4 = batch_a.add_l4_flow_logs();
    l4->set_time(before);
    l4->set_is_ipv4(1);
    l4->set_ip4_0(V4("10.0.0.1"));
    l4->set_ip4_1(V4("10.96.0.10"));
    l4->set_process_id_0(100);
  }
  auto* nm = batch_a.add_network_metrics();
  nm->set_time(before);
  nm->set_is_ipv4(1);
  nm->set_ip4_0(V4("10.0.0.1"));
  nm->set_ip4_1(V4("10.1.0.21"));
  nm->set_granularity_s(1);
  auto reply = a.SendBatch(1, batch_a);
  ASSERT_TRUE(reply.ok() && reply->has_ack()) << reply.status().ToString();

  agent::v1::RecordBatch batch_b;
  auto* py = batch_b.add_processes();
  py->set_pid(200);
  py->set_name("python3");
  for (int i = 0; i < 4; ++i) *batch_b.add_l7_request_logs() = L7(before, "10.0.0.5", 200, "10.1.0.21");
  reply = b.SendBatch(1, batch_b);
  ASSERT_TRUE(reply.ok() && reply->has_ack()) << reply.status().ToString();

  // Rename: web-1 is replaced by web-1b on the same address.
  const double applied_before = MetricValue(server.Metrics(), "sonde_server_kube_pods_applied_total");
  api.Push(FakeWatchEvent("DELETED", FakePod("web-1", "10.1.0.11", "11", "web", "shop", "node-a")));
  api.Push(FakeWatchEvent("ADDED", FakePod("web-1b", "10.1.0.11", "12", "web", "shop", "node-a")));
  for (int i = 0; i < 150 && MetricValue(server.Metrics(), "sonde_server_kube_pods_applied_total") <
                                 applied_before + 2;
       ++i) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_GE(MetricValue(server.Metrics(), "sonde_server_kube_pods_applied_total"), applied_before + 2)
      << "the watch events never reached the server";
  agent::v1::RecordBatch batch_after;
  for (int i = 0; i < 2; ++i) *batch_after.add_l7_request_logs() = L7(NowS(), "10.0.0.1", 100, "10.1.0.11");
  reply = a.SendBatch(2, batch_after);
  ASSERT_TRUE(reply.ok() && reply->has_ack()) << reply.status().ToString();

  EXPECT_EQ(server.WaitRows("SELECT count() FROM l7_request_log", "9;"), "9;");
  EXPECT_EQ(server.Rows("SELECT pod_1, count() FROM l7_request_log GROUP BY pod_1 ORDER BY pod_1"),
            "db-0 4;web-1 3;web-1b 2;");
  EXPECT_EQ(server.Rows("SELECT count() FROM l7_request_log WHERE pod_1 = 'web-1'"), "3;");
  EXPECT_EQ(server.Rows("SELECT count() FROM l7_request_log WHERE pod_1 = 'web-1b'"), "2;");
  EXPECT_EQ(server.Rows("SELECT service_1, count() FROM l7_request_log GROUP BY service_1 ORDER BY service_1"),
            "db-svc 4;web-svc 5;");
  EXPECT_EQ(server.Rows("SELECT host_0, process_name_0, count() FROM l7_request_log "
                        "GROUP BY host_0, process_name_0 ORDER BY host_0"),
            "node-a curl 5;vm-b python3 4;");
  EXPECT_EQ(server.Rows("SELECT count() FROM l7_request_log WHERE host_0 = 'vm-b' AND process_name_0 = 'python3'"),
            "4;");
  EXPECT_EQ(server.Rows("SELECT pod_ns_1, pod_cluster_1, pod_node_1, workload_1, count() FROM l7_request_log "
                        "WHERE pod_1 = 'db-0' GROUP BY pod_ns_1, pod_cluster_1, pod_node_1, workload_1"),
            "shop prod node-a ReplicaSet/web-5d 4;");
  // Labels are published by the server shortly after each pod change.
  EXPECT_EQ(server.WaitRows("SELECT count() FROM l7_request_log WHERE k8s.label.app_1 = 'web'", "5;"), "5;");
  EXPECT_EQ(server.Rows("SELECT k8s.label.app_1, count() FROM l7_request_log GROUP BY k8s.label.app_1 "
                        "ORDER BY k8s.label.app_1"),
            "db 4;web 5;");
  // L4 to the service address, and a metric record, are tagged on both sides too.
  EXPECT_EQ(server.WaitRows("SELECT service_1, host_0, process_name_0, count() FROM l4_flow_log "
                            "GROUP BY service_1, host_0, process_name_0",
                            "web-svc node-a curl 2;"),
            "web-svc node-a curl 2;");
  EXPECT_EQ(server.WaitRows("SELECT host_0, pod_1, service_1 FROM network_1s", "node-a db-0 db-svc;", 20s,
                            "flow_metrics"),
            "node-a db-0 db-svc;");
  // The fake API saw the kubeconfig's token.
  std::lock_guard lock(api.mu_);
  ASSERT_FALSE(api.auths_.empty());
  EXPECT_EQ(api.auths_.front(), "Bearer kube-token");
}

TEST(TagsEndToEndTest, ServerMigratesAnOlderTableAndDropsExpiredPartitions) {
  using server::storage::clickhouse::testing::ClickHouseFixture;
  if (!ClickHouseFixture::Available()) GTEST_SKIP() << "clickhouse-server not installed";
  ClickHouseFixture clickhouse;
  ASSERT_TRUE(clickhouse.Start().ok());
  auto& c = clickhouse.client();
  // What an older server version created: few columns, rows from today and 10 days ago.
  ASSERT_TRUE(c.Execute("CREATE DATABASE flow_log").ok());
  ASSERT_TRUE(c.Execute("CREATE TABLE flow_log.l4_flow_log (time DateTime, agent_id UInt32, ip4_0 UInt32, "
                        "ip4_1 UInt32) ENGINE = MergeTree PARTITION BY toYYYYMMDD(time) ORDER BY time")
                  .ok());
  const uint32_t now = NowS();
  ASSERT_TRUE(c.Execute("INSERT INTO flow_log.l4_flow_log VALUES (" + std::to_string(now) + ", 1, 1, 2), (" +
                        std::to_string(now - 10 * 86400) + ", 1, 1, 2)")
                  .ok());

  TempDir dir;
  std::ofstream(dir.path() + "/inventory.json") << R"({"hosts": [{"name": "old-host", "ips": ["10.0.0.9"]}]})";
  Server server({"--clickhouse-url", clickhouse.url(), "--retention-interval-s", "1", "--inventory",
                 dir.path() + "/inventory.json", "--query-token", kQueryToken});
  ASSERT_TRUE(server.WaitReady()) << "server never became ready";
  // Every column of the current schema exists now, the old rows kept their values.
  auto columns = c.Query("SELECT count() FROM system.columns WHERE database = 'flow_log' AND table = "
                         "'l4_flow_log' AND name IN ('rtt_us', 'tag_set_id_0', 'tag_set_id_1')");
  ASSERT_TRUE(columns.ok());
  EXPECT_EQ(columns->rows[0][0].dump(), "3");
  EXPECT_EQ(server.WaitRows("SELECT count(), min(rtt_us) FROM l4_flow_log", "1 0;"), "1 0;")
      << "the 10-day-old partition was not dropped";
  auto tag_tables = c.Query("SELECT count() FROM system.tables WHERE database = 'flow_tag'");
  ASSERT_TRUE(tag_tables.ok());
  EXPECT_EQ(tag_tables->rows[0][0].dump(), "15");  // 12 dimensions, tag sets, labels, annotations

  FakeAgent agent;
  ASSERT_TRUE(agent.Connect(server.ingest_port()).ok());
  ASSERT_TRUE(agent.Register("old-host", "boot").ok());
  agent::v1::RecordBatch batch;
  auto* l4 = batch.add_l4_flow_logs();
  l4->set_time(now);
  l4->set_is_ipv4(1);
  l4->set_ip4_0(V4("10.0.0.9"));
  l4->set_ip4_1(V4("10.0.0.10"));
  l4->set_rtt_us(77);
  auto reply = agent.SendBatch(1, batch);
  ASSERT_TRUE(reply.ok() && reply->has_ack());
  EXPECT_EQ(server.WaitRows("SELECT host_0, rtt_us FROM l4_flow_log WHERE rtt_us > 0", "old-host 77;"),
            "old-host 77;");
}

}  // namespace
}  // namespace sonde::testing
