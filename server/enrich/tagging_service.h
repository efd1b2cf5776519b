// The write-path face of AutoTagging + SmartEncoding: a storage::RecordTagger that tags both
// sides of every stored record with dictionary ids, over a resource model that the inventory,
// agent registrations, agents' ProcessInfo records and the Kubernetes watcher keep current.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/status.h"
#include "common/metrics/registry.h"
#include "common/net/ip_address.h"
#include "server/enrich/enricher.h"
#include "server/enrich/kube_watcher.h"
#include "server/enrich/resource_model.h"
#include "server/enrich/tag_dictionary.h"
#include "server/enrich/tag_store.h"
#include "server/storage/record_sides.h"
#include "server/storage/record_tagger.h"

namespace sonde::server::enrich {

// What an agent told the server about its host when it registered.
struct AgentHost {
  std::string hostname;
  std::vector<net::IpAddress> ips;  // of its interfaces (may be empty)
};
// Agent id -> host; nullopt for ids the server does not know (e.g. spooled before a restart
// that lost the registry).
using AgentLookup = std::function<std::optional<AgentHost>(uint32_t agent_id)>;

struct TaggingServiceOptions {
  // Cluster name given to pods the Kubernetes watcher reports (the pod_cluster tag).
  std::string kube_cluster = "kubernetes";
};

// Thread safety: Tag() runs on the storage writer thread, the Kubernetes handlers on the
// watcher thread and Maintain() on a maintenance thread, concurrently. The model is guarded by
// a reader/writer lock: matching takes it shared and never holds it across dictionary
// allocation (which may wait for the claim protocol); model updates take it exclusively.
class TaggingService : public storage::RecordTagger {
 public:
  // `dictionary`, `store` and `registry` must outlive the service; registry may be null.
  TaggingService(ResourceModel model, TagDictionary* dictionary, TagStore* store, AgentLookup agents,
                 TaggingServiceOptions options, metrics::Registry* registry);

  // storage::RecordTagger: tag_set_id_0, tag_set_id_1 (the client's and the server's tag set:
  // the ids of every dimension of that side, see TagSetValue()).
  const std::vector<std::string>& Columns() const override { return columns_; }
  Status Tag(const storage::AgentBatch& batch, std::vector<uint32_t>* ids) override;
  Status TagSides(const storage::AgentBatch& batch, std::span<const storage::RecordSide> sides,
                  std::vector<uint32_t>* ids) override;

  // Creates the flow_tag schema and loads the dictionary once; later calls are no-ops once it
  // succeeded. Tag() and Maintain() call it, so a ClickHouse that is down at start is fine.
  Status EnsureReady();
  // Periodic upkeep: reloads ids other servers allocated and publishes pod labels and
  // annotations when pods changed since the last publication.
  Status Maintain();

  // Kubernetes pods (a KubeWatcher on /api/v1/pods calls these through PodHandler()).
  KubeWatchHandler PodHandler();
  void ApplyPodList(const std::vector<nlohmann::json>& items, uint32_t now_s);
  void ApplyPodEvent(WatchEventType type, const nlohmann::json& pod, uint32_t now_s);

  // Runs fn(const ResourceModel&) under the shared lock (status pages, tests).
  template <typename F>
  auto ReadModel(F&& fn) const {
    std::shared_lock lock(model_mu_);
    return fn(model_);
  }
  // Bumped on every pod change; Maintain() publishes metadata when it moved.
  uint64_t pod_changes() const { return pod_changes_.load(); }
  uint64_t published_pod_changes() const { return published_pod_changes_.load(); }

 private:
  // Adds the agent's host (from its registration) when the inventory does not know it.
  void NoteAgentHost(const AgentHost& host);
  // Fills the pod's services from selectors of known services when it names none.
  void AddSelectedServices(PodInfo* pod) const;

  // Tag set ids of the sides matched in earlier batches of one agent host: (address, start of
  // its stable interval, pid) -> id. Valid while the model and the dictionary are unchanged
  // (their generations), since a match is a function of the host, the model and the stable
  // interval, and an encoding of the dictionary. Tag() thread only.
  struct CachedSet {
    uint32_t id = 0;
    bool untagged = false;   // no resource matched (counted once per batch, as without the cache)
    uint64_t last_batch = 0;  // batch_serial_ of the last batch that used it
  };
  static constexpr size_t kMaxCachedSides = 1 << 20;  // per host; the cache restarts beyond
  struct SideCache {
    uint64_t model_generation = 0;
    uint64_t dictionary_generation = 0;
    std::unordered_map<SideKey, CachedSet, SideKeyHash> sets;
  };

  mutable std::shared_mutex model_mu_;
  ResourceModel model_;
  uint64_t model_generation_ = 1;  // guarded by model_mu_; bumped by every model change
  Enricher enricher_;
  TagDictionary* dictionary_;
  TagStore* store_;
  AgentLookup agents_;
  const TaggingServiceOptions options_;
  std::vector<std::string> columns_;

  std::mutex ready_mu_;
  bool ready_ = false;
  std::mutex maintain_mu_;
  std::atomic<uint64_t> pod_changes_{0};
  std::atomic<uint64_t> published_pod_changes_{0};
  bool first_list_done_ = false;                          // watcher thread only
  std::map<std::string, std::vector<net::IpAddress>> agent_hosts_;  // Tag() thread only
  std::unordered_map<std::string, SideCache> side_caches_;          // Tag() thread only, by host
  uint64_t batch_serial_ = 0;                                        // Tag() thread only
  std::vector<storage::RecordSide> record_sides_;                    // Tag() thread only, scratch

  metrics::Counter* rows_tagged_ = nullptr;
  metrics::Counter* processes_seen_ = nullptr;
  metrics::Counter* kube_pods_applied_ = nullptr;
  metrics::Counter* unknown_agents_ = nullptr;
  metrics::Counter* untagged_sides_ = nullptr;  // the Enricher's counter, for cache hits
};

}  // namespace sonde::server::enrich
