// TaggingService: per-batch side deduplication, locked model matching, dictionary encoding.
#include "server/enrich/tagging_service.h"

#include <chrono>
#include <cstring>
#include <unordered_map>

#include "common/log/log.h"
#include "server/storage/record_sides.h"

namespace sonde::server::enrich {
namespace {

uint64_t NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

uint32_t NowS() { return static_cast<uint32_t>(NowMs() / 1000); }

std::string StringField(const nlohmann::json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool Transient(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded;
}

}  // namespace

TaggingService::TaggingService(ResourceModel model, TagDictionary* dictionary, TagStore* store, AgentLookup agents,
                               TaggingServiceOptions options, metrics::Registry* registry)
    : model_(std::move(model)),
      enricher_(&model_, dictionary, registry),
      dictionary_(dictionary),
      store_(store),
      agents_(std::move(agents)),
      options_(std::move(options)) {
  for (int side = 0; side < 2; ++side) columns_.push_back(IdColumnName(TagDimension::kTagSet, side));
  // Inventory pods need their labels published too.
  if (!model_.pods().empty()) pod_changes_ = 1;
  if (registry != nullptr) {
    rows_tagged_ = registry->GetCounter("sonde_server_tag_rows_total", "records given tag id columns");
    processes_seen_ = registry->GetCounter("sonde_server_tag_processes_total",
                                           "ProcessInfo records applied to the resource model");
    kube_pods_applied_ = registry->GetCounter("sonde_server_kube_pods_applied_total",
                                              "Kubernetes pod objects applied to the resource model");
    unknown_agents_ = registry->GetCounter("sonde_server_tag_unknown_agent_batches_total",
                                           "batches from an agent id the registry does not know");
    untagged_sides_ = registry->GetCounter("sonde_server_enrich_untagged_sides_total",
                                           "record sides no resource matched");
  }
}

Status TaggingService::EnsureReady() {
  std::lock_guard lock(ready_mu_);
  if (ready_) return Status::Ok();
  SONDE_RETURN_IF_ERROR(store_->EnsureSchema());
  SONDE_RETURN_IF_ERROR(dictionary_->Load());
  ready_ = true;
  return Status::Ok();
}

Status TaggingService::Maintain() {
  std::lock_guard lock(maintain_mu_);
  SONDE_RETURN_IF_ERROR(EnsureReady());
  SONDE_RETURN_IF_ERROR(dictionary_->Load());
  const uint64_t changes = pod_changes_.load();
  if (changes != published_pod_changes_.load()) {
    std::shared_lock model_lock(model_mu_);
    SONDE_RETURN_IF_ERROR(enricher_.PublishPodMetadata(store_, NowMs()));
    published_pod_changes_ = changes;
  }
  return Status::Ok();
}

void TaggingService::NoteAgentHost(const AgentHost& host) {
  if (host.hostname.empty() || host.ips.empty()) return;
  auto it = agent_hosts_.find(host.hostname);
  if (it != agent_hosts_.end() && it->second == host.ips) return;
  agent_hosts_[host.hostname] = host.ips;
  std::unique_lock lock(model_mu_);
  // The inventory is the authority on hosts it lists (VPC, zone); registrations fill the rest.
  if (it == agent_hosts_.end() && model_.HasHost(host.hostname)) return;
  model_.AddHost({host.hostname, model_.VpcOfHost(host.hostname, NowS()), "", host.ips, {}});
  ++model_generation_;
}

Status TaggingService::Tag(const storage::AgentBatch& batch, std::vector<uint32_t>* ids) {
  record_sides_.clear();
  SONDE_RETURN_IF_ERROR(storage::ExtractSides(batch, &record_sides_));
  return TagSides(batch, record_sides_, ids);
}

Status TaggingService::TagSides(const storage::AgentBatch& batch, std::span<const storage::RecordSide> record_sides,
                                std::vector<uint32_t>* ids) {
  const auto& r = batch.records;
  const size_t records = record_sides.size() / 2;
  const size_t width = columns_.size();
  const size_t base = ids->size();
  ids->resize(base + records * width, 0);
  if (records == 0 && r.processes_size() == 0) return Status::Ok();
  if (Status s = EnsureReady(); !s.ok()) return UnavailableError("tag dictionary not ready: " + s.ToString());

  std::string host;
  if (auto agent = agents_ ? agents_(batch.agent_id) : std::nullopt) {
    host = agent->hostname;
    NoteAgentHost(*agent);
  } else if (unknown_agents_ != nullptr) {
    unknown_agents_->Inc();
  }
  if (r.processes_size() > 0 && !host.empty()) {
    std::unique_lock lock(model_mu_);
    for (const auto& p : r.processes()) {
      if (p.pid() == 0 || p.name().empty()) continue;
      Lifetime life;
      life.since_s = static_cast<uint32_t>(p.start_time_us() / 1000000);
      if (model_.AddProcess({host, p.pid(), p.name(), life})) ++model_generation_;
    }
    if (processes_seen_ != nullptr) processes_seen_->Inc(static_cast<uint64_t>(r.processes_size()));
  }
  if (records == 0) return Status::Ok();

  // Answers only change at lifetime boundaries: sides that differ only in their second within
  // one stable interval share one match. Sides seen in earlier batches of this host (same model,
  // same dictionary) take their tag set id from the cache; the others are deduplicated and each
  // matched once, with the first second seen for it.
  uint32_t* out = ids->data() + base;
  const uint64_t serial = ++batch_serial_;
  SideCache& cache = side_caches_[host];
  std::vector<SideKey> miss_keys;   // distinct cache misses, as cached
  std::vector<SideKey> to_match;    // the same with the first second seen
  std::vector<std::pair<uint32_t, uint32_t>> misses;  // (record side, index into to_match)
  std::vector<ResourceTags> tags;
  {
    std::shared_lock lock(model_mu_);
    const uint64_t dictionary_generation = dictionary_->generation();
    if (cache.model_generation != model_generation_ || cache.dictionary_generation != dictionary_generation ||
        cache.sets.size() > kMaxCachedSides) {
      cache.sets.clear();
      cache.model_generation = model_generation_;
      cache.dictionary_generation = dictionary_generation;
    }
    std::unordered_map<SideKey, uint32_t, SideKeyHash> match_slot;
    uint32_t last_time = 0, last_stable = 0;
    bool have_last = false;
    for (size_t i = 0; i < record_sides.size(); ++i) {
      const storage::RecordSide& rs = record_sides[i];
      if (!have_last || rs.time_s != last_time) {  // records come roughly in time order
        last_time = rs.time_s;
        last_stable = model_.StableFrom(rs.time_s);
        have_last = true;
      }
      const SideKey key{rs.ip, last_stable, rs.pid};
      if (auto hit = cache.sets.find(key); hit != cache.sets.end()) {
        CachedSet& set = hit->second;
        out[i] = set.id;
        if (set.last_batch != serial) {
          set.last_batch = serial;
          if (set.untagged && untagged_sides_ != nullptr) untagged_sides_->Inc();
        }
        continue;
      }
      auto [it, inserted] = match_slot.emplace(key, static_cast<uint32_t>(to_match.size()));
      if (inserted) {
        to_match.push_back(SideKey{rs.ip, rs.time_s, rs.pid});
        miss_keys.push_back(key);
      }
      misses.emplace_back(static_cast<uint32_t>(i), it->second);
    }
    if (!to_match.empty()) tags = enricher_.MatchSides(host, to_match);
  }
  if (!to_match.empty()) {
    std::vector<bool> untagged(tags.size());
    for (size_t i = 0; i < tags.size(); ++i) {
      bool any = false;
      for (const auto& v : tags[i].values) any = any || !v.empty();
      untagged[i] = !any;
    }
    // One tag set per distinct match: rows store its id, the dimension ids live in the set.
    auto sets = [&]() -> StatusOr<std::vector<uint32_t>> {
      SONDE_ASSIGN_OR_RETURN(auto encoded, enricher_.EncodeSides(std::move(tags)));
      std::vector<std::string> values(encoded.size());
      for (size_t i = 0; i < encoded.size(); ++i) values[i] = TagSetValue(encoded[i]);
      return dictionary_->Encode(TagDimension::kTagSet, values);
    }();
    if (!sets.ok()) {
      std::fill(out, out + records * width, 0u);
      if (Transient(sets.status())) return sets.status();
      // Not worth blocking the spool over: store the rows untagged and say so.
      SONDE_LOG_EVERY(warn, "tagging a batch failed, storing it untagged: {}", sets.status().ToString());
      return Status::Ok();
    }
    for (const auto& [side, slot] : misses) out[side] = (*sets)[slot];
    // Entries belong to the generations checked above; a change since is seen by the next batch.
    for (size_t i = 0; i < miss_keys.size(); ++i) cache.sets.emplace(miss_keys[i], CachedSet{(*sets)[i], untagged[i], serial});
  }
  if (rows_tagged_ != nullptr) rows_tagged_->Inc(records);
  return Status::Ok();
}

void TaggingService::AddSelectedServices(PodInfo* pod) const {
  if (!pod->services.empty()) return;
  pod->services = model_.ServicesSelecting(pod->cluster, pod->ns, pod->labels, pod->life.since_s);
}

void TaggingService::ApplyPodList(const std::vector<nlohmann::json>& items, uint32_t now_s) {
  // Pods of the first list existed before we looked: tag earlier records with them too.
  const uint32_t since = first_list_done_ ? now_s : 0;
  first_list_done_ = true;
  std::vector<PodInfo> pods;
  for (const auto& item : items) {
    if (auto p = PodFromJson(item, options_.kube_cluster, since)) pods.push_back(std::move(*p));
  }
  std::unique_lock lock(model_mu_);
  // Pods the list no longer has were deleted while we were not watching.
  std::vector<std::pair<std::string, std::string>> gone;
  for (const auto& existing : model_.pods()) {
    if (existing.cluster != options_.kube_cluster || existing.life.until_s != kForever) continue;
    bool listed = false;
    for (const auto& p : pods) listed = listed || (p.ns == existing.ns && p.name == existing.name);
    if (!listed) gone.emplace_back(existing.ns, existing.name);
  }
  ++model_generation_;
  for (const auto& [ns, name] : gone) model_.EndPod(options_.kube_cluster, ns, name, now_s);
  for (auto& p : pods) {
    AddSelectedServices(&p);
    model_.UpsertPod(std::move(p));
  }
  if (kube_pods_applied_ != nullptr) kube_pods_applied_->Inc(items.size());
  ++pod_changes_;
}

void TaggingService::ApplyPodEvent(WatchEventType type, const nlohmann::json& pod, uint32_t now_s) {
  if (kube_pods_applied_ != nullptr) kube_pods_applied_->Inc();
  if (type == WatchEventType::kDeleted) {
    if (!pod.is_object()) return;
    auto meta = pod.find("metadata");
    if (meta == pod.end() || !meta->is_object()) return;
    const std::string ns = StringField(*meta, "namespace");
    const std::string name = StringField(*meta, "name");
    std::unique_lock lock(model_mu_);
    model_.EndPod(options_.kube_cluster, ns, name, now_s);
    ++model_generation_;
    ++pod_changes_;
    return;
  }
  auto p = PodFromJson(pod, options_.kube_cluster, now_s);
  if (!p) return;  // no address yet: a later MODIFIED brings it
  std::unique_lock lock(model_mu_);
  AddSelectedServices(&*p);
  model_.UpsertPod(std::move(*p));
  ++model_generation_;
  ++pod_changes_;
}

KubeWatchHandler TaggingService::PodHandler() {
  KubeWatchHandler h;
  h.on_list = [this](const std::vector<nlohmann::json>& items) { ApplyPodList(items, NowS()); };
  h.on_event = [this](WatchEventType type, const nlohmann::json& pod) { ApplyPodEvent(type, pod, NowS()); };
  return h;
}

}  // namespace sonde::server::enrich
