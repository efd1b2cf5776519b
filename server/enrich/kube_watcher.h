// Kubernetes API client for AutoTagging: list, then watch from the list's resourceVersion with
// bookmarks; re-lists after 410 Gone. Bearer token auth, from a kubeconfig or in-cluster files.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/status.h"
#include "common/metrics/registry.h"
#include "server/enrich/resource_model.h"

namespace httplib {
class Client;
}

namespace sonde::server::enrich {

struct KubeConfig {
  std::string server;        // https://host:port or http://host:port
  std::string bearer_token;  // empty = none
  std::string ca_file;       // PEM; empty = system default
  bool insecure_skip_verify = false;
};

// The current context's cluster server, CA and user token of a kubeconfig file.
StatusOr<KubeConfig> LoadKubeconfig(const std::string& path);
// In-cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT with the service
// account token and CA under `sa_dir` (normally /var/run/secrets/kubernetes.io/serviceaccount).
StatusOr<KubeConfig> InClusterConfig(const std::string& sa_dir);

enum class WatchEventType : uint8_t { kAdded, kModified, kDeleted };

struct KubeWatchHandler {
  // A full list replaced the state (first sync and after 410 Gone): items as returned.
  std::function<void(const std::vector<nlohmann::json>& items)> on_list;
  std::function<void(WatchEventType type, const nlohmann::json& object)> on_event;
};

struct KubeWatcherOptions {
  std::string path = "/api/v1/pods";  // collection to list and watch
  uint32_t watch_timeout_s = 300;     // server-side timeoutSeconds of one watch request
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds backoff_min{500};
  std::chrono::milliseconds backoff_max{30000};
};

// Keeps one collection in sync. Not thread-safe; Run() on one thread, Stop() from any (it also
// cuts an idle watch stream short).
class KubeWatcher {
 public:
  KubeWatcher(KubeConfig config, KubeWatcherOptions options, KubeWatchHandler handler,
              metrics::Registry* registry);

  // One step: lists when there is no resourceVersion, then watches until the server ends the
  // stream. 410 Gone (as HTTP status or ERROR event) clears the resourceVersion so the next
  // step lists again. Bookmarks advance the resourceVersion without touching state.
  Status SyncOnce();
  // SyncOnce in a loop with exponential backoff on errors until Stop().
  void Run();
  void Stop();

  const std::string& resource_version() const { return resource_version_; }
  uint64_t lists() const { return lists_; }

 private:
  Status List();
  Status Watch();
  // One line of the watch stream.
  Status HandleLine(std::string_view line);

  KubeConfig config_;
  KubeWatcherOptions options_;
  KubeWatchHandler handler_;
  std::string resource_version_;
  std::atomic<bool> stop_{false};
  std::mutex active_mu_;
  httplib::Client* active_ = nullptr;  // the client of the watch in progress
  uint64_t lists_ = 0;
  bool gone_ = false;
  metrics::Counter* events_ = nullptr;
  metrics::Counter* relists_ = nullptr;
  metrics::Counter* bad_events_ = nullptr;
};

// A pod object as a PodInfo (cluster given by the caller, lifetime from `now_s`). nullopt for
// pods without an IP yet or on the host network without a usable address.
std::optional<PodInfo> PodFromJson(const nlohmann::json& pod, const std::string& cluster, uint32_t now_s);

}  // namespace sonde::server::enrich
