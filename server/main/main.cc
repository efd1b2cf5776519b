// sonde-server: wires ClickHouse (supervised or external), storage, spool, ingest and the HTTP API.
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/log/log.h"
#include "common/metrics/registry.h"
#include "server/api/http_api.h"
#include "server/enrich/kube_watcher.h"
#include "server/enrich/resource_model.h"
#include "server/enrich/tag_dictionary.h"
#include "server/enrich/tag_store.h"
#include "server/enrich/tagging_service.h"
#include "server/ingest/agent_registry.h"
#include "server/ingest/ingest_server.h"
#include "server/ingest/spool.h"
#include "server/ingest/spool_drainer.h"
#include "server/query/translator.h"
#include "server/storage/clickhouse/clickhouse_client.h"
#include "server/storage/clickhouse/clickhouse_process.h"
#include "server/storage/clickhouse/clickhouse_storage.h"

namespace {

constexpr char kVersion[] = "0.1.0";

constexpr char kUsage[] = R"(usage: sonde-server [flags]
  --listen HOST:PORT         agent ingest (TCP)                      [0.0.0.0:20033]
  --http HOST:PORT           HTTP API: /metrics /v1/status /v1/query [0.0.0.0:20080]
  --data-dir DIR             spool, agent ids, supervised ClickHouse [/var/lib/sonde-server]
  --clickhouse-url URL       use this ClickHouse (http://host:8123) instead of supervising one
  --clickhouse-binary PATH   ClickHouse to supervise                 [/usr/sbin/clickhouse-server]
  --clickhouse-http-port N   port of the supervised ClickHouse       [0 = any free port]
  --spool-max-bytes N[K|M|G] bound of the on-disk spool; beyond it batches get Nack [1G]
  --flush-interval-ms N      longest a spooled batch waits for a ClickHouse write [1000]
  --retention-interval-s N   how often expired partitions are dropped [3600]
  --ingest-token T           agents must present this token (repeatable)
  --query-token T            /v1/query needs "Authorization: Bearer T" (repeatable)
  --inventory FILE           hosts, clouds, static pods/services for AutoTagging (.yaml/.yml or JSON)
  --kubeconfig FILE          watch Kubernetes pods with this kubeconfig; "in-cluster" uses the
                             service account of the pod the server runs in
  --kube-cluster NAME        cluster name of watched pods (pod_cluster tag) [kubernetes]
  --tag-reload-interval-s N  reload tag ids allocated by other servers every N s [30]
  --log-level L              trace, debug, info, warn, error         [info]
  --version | --help
)";

struct Flags {
  std::string listen = "0.0.0.0:20033";
  std::string http = "0.0.0.0:20080";
  std::string data_dir = "/var/lib/sonde-server";
  std::string clickhouse_url;
  std::string clickhouse_binary = "/usr/sbin/clickhouse-server";
  uint16_t clickhouse_http_port = 0;
  uint64_t spool_max_bytes = 1ull << 30;
  uint32_t flush_interval_ms = 1000;
  uint32_t retention_interval_s = 3600;
  std::vector<std::string> ingest_tokens;
  std::vector<std::string> query_tokens;
  std::string inventory;
  std::string kubeconfig;
  std::string kube_cluster = "kubernetes";
  uint32_t tag_reload_interval_s = 30;
  std::string log_level = "info";
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "sonde-server: %s\n", message.c_str());
  return 2;
}

std::optional<uint64_t> ParseBytes(const std::string& s) {
  if (s.empty()) return std::nullopt;
  size_t pos = 0;
  uint64_t v;
  try {
    v = std::stoull(s, &pos);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const std::string suffix = s.substr(pos);
  if (suffix.empty()) return v;
  if (suffix == "K" || suffix == "k") return v << 10;
  if (suffix == "M" || suffix == "m") return v << 20;
  if (suffix == "G" || suffix == "g") return v << 30;
  return std::nullopt;
}

std::optional<uint32_t> ParseU32(const std::string& s) {
  auto v = ParseBytes(s);
  if (!v || *v > UINT32_MAX || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return static_cast<uint32_t>(*v);
}

// "host:port", "[v6]:port" or ":port" (all interfaces).
bool SplitHostPort(const std::string& s, std::string* host, uint16_t* port) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  std::string h = s.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  auto p = ParseU32(s.substr(colon + 1));
  if (!p || *p > 65535) return false;
  *host = h.empty() ? "0.0.0.0" : h;
  *port = static_cast<uint16_t>(*p);
  return true;
}

// Returns 0 to continue, otherwise an exit code (+1 so 0 = "exit 0" is representable as 1).
int ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    const size_t eq = a.find('=');
    const bool inline_value = a.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    auto value = [&]() -> bool {
      if (inline_value) return true;
      if (i + 1 >= argc) return false;
      v = argv[++i];
      return true;
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 1;
    }
    if (a == "--version") {
      std::printf("sonde-server %s\n", kVersion);
      return 1;
    }
    if (!value()) return Fail(a + " needs a value") + 1;
    bool ok = true;
    if (a == "--listen") f->listen = v;
    else if (a == "--http") f->http = v;
    else if (a == "--data-dir") f->data_dir = v;
    else if (a == "--clickhouse-url") f->clickhouse_url = v;
    else if (a == "--clickhouse-binary") f->clickhouse_binary = v;
    else if (a == "--clickhouse-http-port") {
      auto p = ParseU32(v);
      ok = p && *p <= 65535;
      if (ok) f->clickhouse_http_port = static_cast<uint16_t>(*p);
    } else if (a == "--spool-max-bytes") {
      auto b = ParseBytes(v);
      ok = b.has_value() && *b > 0;
      if (ok) f->spool_max_bytes = *b;
    } else if (a == "--flush-interval-ms") {
      auto n = ParseU32(v);
      ok = n.has_value();
      if (ok) f->flush_interval_ms = *n;
    } else if (a == "--retention-interval-s") {
      auto n = ParseU32(v);
      ok = n.has_value() && *n > 0;
      if (ok) f->retention_interval_s = *n;
    } else if (a == "--ingest-token") f->ingest_tokens.push_back(v);
    else if (a == "--query-token") f->query_tokens.push_back(v);
    else if (a == "--log-level") f->log_level = v;
    else if (a == "--inventory") f->inventory = v;
    else if (a == "--kubeconfig") f->kubeconfig = v;
    else if (a == "--kube-cluster") f->kube_cluster = v;
    else if (a == "--tag-reload-interval-s") {
      auto n = ParseU32(v);
      ok = n.has_value() && *n > 0;
      if (ok) f->tag_reload_interval_s = *n;
    }
    else return Fail("unknown flag " + a + " (see --help)") + 1;
    if (!ok) return Fail(fmt::format("bad value '{}' for {}", v, a)) + 1;
  }
  return 0;
}

// Runs `fn` every `interval` until stopped.
class Periodic {
 public:
  Periodic(std::chrono::seconds interval, std::function<void()> fn)
      : thread_([this, interval, fn = std::move(fn)] {
          std::unique_lock lock(mu_);
          while (!stop_) {
            lock.unlock();
            fn();
            lock.lock();
            cv_.wait_for(lock, interval, [this] { return stop_; });
          }
        }) {}
  ~Periodic() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Runs a Kubernetes watcher on its own thread until destroyed.
class WatcherThread {
 public:
  explicit WatcherThread(std::unique_ptr<sonde::server::enrich::KubeWatcher> watcher)
      : watcher_(std::move(watcher)), thread_([this] { watcher_->Run(); }) {}
  ~WatcherThread() {
    watcher_->Stop();
    thread_.join();
  }

 private:
  std::unique_ptr<sonde::server::enrich::KubeWatcher> watcher_;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace sonde;
  using namespace sonde::server;
  Flags flags;
  if (int rc = ParseFlags(argc, argv, &flags); rc != 0) return rc - 1;
  SetLogLevel(flags.log_level.c_str());

  ingest::IngestServerOptions ingest_options;
  api::HttpApiOptions api_options;
  if (!SplitHostPort(flags.listen, &ingest_options.listen_host, &ingest_options.port)) {
    return Fail("--listen wants HOST:PORT, got " + flags.listen);
  }
  if (!SplitHostPort(flags.http, &api_options.listen_host, &api_options.port)) {
    return Fail("--http wants HOST:PORT, got " + flags.http);
  }
  std::error_code ec;
  std::filesystem::create_directories(flags.data_dir, ec);
  if (ec) return Fail(fmt::format("cannot create --data-dir {}: {}", flags.data_dir, ec.message()));

  // Signals are handled by sigwait in this thread; every thread started below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  metrics::Registry registry;

  // 1. ClickHouse: external, or our own supervised child.
  std::unique_ptr<storage::clickhouse::ClickHouseProcess> clickhouse_process;
  storage::clickhouse::ClickHouseClientOptions client_options;
  if (!flags.clickhouse_url.empty()) {
    client_options.url = flags.clickhouse_url;
  } else {
    storage::clickhouse::ClickHouseProcessOptions po;
    po.binary = flags.clickhouse_binary;
    po.data_dir = flags.data_dir + "/clickhouse";
    po.http_port = flags.clickhouse_http_port;
    clickhouse_process = std::make_unique<storage::clickhouse::ClickHouseProcess>(po);
    Status s = clickhouse_process->Start();
    if (!s.ok()) return Fail("cannot start ClickHouse: " + s.ToString());
    client_options.url = clickhouse_process->http_url();
  }
  storage::clickhouse::ClickHouseClient clickhouse(client_options);
  storage::clickhouse::ClickHouseStorage storage(&clickhouse, &registry);
  if (Status s = storage.ApplySchema(); !s.ok()) {
    // Not fatal: agents can still spool; the drainer applies the schema again on write errors.
    spdlog::error("cannot apply schema yet (will retry on write): {}", s.ToString());
  }

  // 2. AutoTagging + SmartEncoding: every stored row gets tag ids for both of its sides.
  enrich::ResourceModel model;
  if (!flags.inventory.empty()) {
    auto loaded = enrich::ResourceModel::FromFile(flags.inventory);
    if (!loaded.ok()) return Fail("--inventory: " + loaded.status().ToString());
    model = std::move(*loaded);
  }
  ingest::AgentRegistry agents(flags.data_dir + "/agents.json");
  enrich::ClickHouseTagStore tag_store(&clickhouse);
  enrich::TagDictionary dictionary(&tag_store, {}, &registry);
  enrich::TaggingServiceOptions tagging_options;
  tagging_options.kube_cluster = flags.kube_cluster;
  enrich::TaggingService tagging(
      std::move(model), &dictionary, &tag_store,
      [&agents](uint32_t id) -> std::optional<enrich::AgentHost> {
        auto info = agents.Find(id);
        if (!info) return std::nullopt;
        enrich::AgentHost host{info->hostname, {}};
        for (const auto& iface : info->host.interfaces()) {
          for (const auto& cidr : iface.ips()) {
            auto ip = net::IpAddress::Parse(std::string_view(cidr).substr(0, cidr.find('/')));
            if (ip && !(ip->is_v4() && (ip->v4() >> 24) == 127)) host.ips.push_back(*ip);
          }
        }
        return host;
      },
      tagging_options, &registry);
  storage.SetTagger(&tagging);
  if (Status s = tagging.Maintain(); !s.ok()) {
    spdlog::error("cannot create or load the tag dictionary yet (will retry): {}", s.ToString());
  }
  std::unique_ptr<WatcherThread> kube_watcher;
  if (!flags.kubeconfig.empty()) {
    auto config = flags.kubeconfig == "in-cluster"
                      ? enrich::InClusterConfig("/var/run/secrets/kubernetes.io/serviceaccount")
                      : enrich::LoadKubeconfig(flags.kubeconfig);
    if (!config.ok()) return Fail("--kubeconfig: " + config.status().ToString());
    kube_watcher = std::make_unique<WatcherThread>(std::make_unique<enrich::KubeWatcher>(
        *config, enrich::KubeWatcherOptions{}, tagging.PodHandler(), &registry));
  }
  // Pod labels are published within a second of a change; ids other servers allocated are
  // reloaded every --tag-reload-interval-s.
  uint64_t maintain_ticks = 0;
  Periodic tag_upkeep(std::chrono::seconds(1), [&] {
    const bool reload = ++maintain_ticks % flags.tag_reload_interval_s == 0;
    if (!reload && tagging.pod_changes() == tagging.published_pod_changes()) return;
    if (Status s = tagging.Maintain(); !s.ok()) SONDE_LOG_EVERY(warn, "tag upkeep failed: {}", s.ToString());
  });

  // 3. Spool and its drainer.
  auto spool = ingest::Spool::Open({flags.data_dir + "/spool", flags.spool_max_bytes, true}, &registry);
  if (!spool.ok()) return Fail("cannot open spool: " + spool.status().ToString());
  ingest::SpoolDrainerOptions drain_options;
  drain_options.flush_interval = std::chrono::milliseconds(flags.flush_interval_ms);
  ingest::SpoolDrainer drainer(spool->get(), &storage, drain_options, &registry);
  drainer.Start();

  // 4. Agents.
  ingest_options.tokens = flags.ingest_tokens;
  ingest_options.agent_config.set_batch_max_records(4096);
  ingest_options.agent_config.set_batch_max_delay_ms(1000);
  ingest_options.agent_config.set_heartbeat_interval_ms(5000);
  ingest::IngestServer ingest_server(ingest_options, spool->get(), &agents, &registry);
  if (Status s = ingest_server.Start(); !s.ok()) return Fail("cannot start ingest: " + s.ToString());

  // 5. HTTP API.
  api_options.query_tokens = flags.query_tokens;
  api_options.server_version = kVersion;
  api::HttpApiDeps deps;
  deps.registry = &registry;
  deps.clickhouse = &clickhouse;
  deps.clickhouse_mode = clickhouse_process ? "supervised" : "external";
  // Users write Sonde SQL over the virtual wide tables; ClickHouse sees the translation.
  const query::Catalog catalog = query::Catalog::FromSchema();
  deps.translate = [&catalog](std::string_view db, std::string_view sql) -> StatusOr<std::string> {
    SONDE_ASSIGN_OR_RETURN(query::Translation t, query::Translate(db, sql, catalog));
    return std::move(t.sql);
  };
  ingest::Spool* spool_ptr = spool->get();
  deps.status = [&]() {
    nlohmann::json out;
    nlohmann::json list = nlohmann::json::array();
    for (const auto& a : agents.Snapshot()) {
      list.push_back({{"id", a.id},
                      {"hostname", a.hostname},
                      {"boot_id", a.boot_id},
                      {"agent_version", a.agent_version},
                      {"remote_address", a.remote_address},
                      {"connected", a.connections > 0},
                      {"registered_unix_us", a.registered_unix_us},
                      {"last_seen_unix_us", a.last_seen_unix_us},
                      {"last_heartbeat_unix_us", a.last_heartbeat_unix_us},
                      {"batches", a.batches},
                      {"records", a.records},
                      {"agent_records_sent", a.last_heartbeat.records_sent()},
                      {"agent_records_dropped", a.last_heartbeat.records_dropped()},
                      {"agent_spool_bytes", a.last_heartbeat.spool_bytes()}});
    }
    out["agents"] = std::move(list);
    out["ingest"] = {{"port", ingest_server.port()},
                     {"connections_open", ingest_server.connections_open()},
                     {"agents_connected", agents.connected()},
                     {"batches_acked", registry.GetCounter("sonde_server_ingest_batches_total", "",
                                                           {{"result", "ack"}})->Value()},
                     {"batches_nacked", registry.GetCounter("sonde_server_ingest_batches_total", "",
                                                            {{"result", "nack"}})->Value()},
                     {"records_received", registry.CounterTotal("sonde_server_records_received_total")},
                     {"records_written", registry.CounterTotal("sonde_server_records_written_total")},
                     {"records_dropped", registry.CounterTotal("sonde_server_records_dropped_total")},
                     {"frames_rejected", registry.CounterTotal("sonde_server_frames_rejected_total")}};
    out["spool"] = {{"bytes", spool_ptr->bytes()},
                    {"files", spool_ptr->files()},
                    {"max_bytes", spool_ptr->max_bytes()},
                    {"storage_failing", drainer.consecutive_failures() > 0}};
    return out;
  };
  api::HttpApi http(api_options, std::move(deps));
  if (Status s = http.Start(); !s.ok()) return Fail("cannot start HTTP API: " + s.ToString());

  // 6. Retention.
  Periodic retention(std::chrono::seconds(flags.retention_interval_s), [&] {
    auto dropped = storage.DropExpiredPartitions(std::chrono::system_clock::now());
    if (!dropped.ok()) spdlog::warn("retention pass failed: {}", dropped.status().ToString());
  });

  spdlog::info("sonde-server {} ready: ingest {}:{}, HTTP {}:{}, ClickHouse {} ({})", kVersion,
               ingest_options.listen_host, ingest_server.port(), api_options.listen_host, http.port(),
               client_options.url, clickhouse_process ? "supervised" : "external");

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  ingest_server.Stop();  // no new batches: everything acked is in the spool
  const bool drained = drainer.Stop(std::chrono::seconds(10));
  if (!drained) spdlog::warn("spool not empty at exit ({} batches); they are replayed at next start", spool_ptr->files());
  http.Stop();
  kube_watcher.reset();
  if (clickhouse_process) clickhouse_process->Stop();
  spdlog::info("bye");
  return 0;
}
