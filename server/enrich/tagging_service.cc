// TaggingService: per-batch side deduplication, locked model matching, dictionary encoding.
#include "server/enrich/tagging_service.h"

#include <chrono>
#include <cstring>
#include <unordered_map>

#include "common/log/log.h"
#include "server/storage/record_sides.h"

namespace sonde::server::enrich {
namespace {

struct SideKeyHash {
  size_t operator()(const SideKey& k) const {
    uint64_t a, b;
    std::memcpy(&a, k.ip.bytes().data(), 8);
    std::memcpy(&b, k.ip.bytes().data() + 8, 8);
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
    h ^= (static_cast<uint64_t>(k.time_s) << 32 | k.pid) * 0x165667B19E3779F9ull;
    return static_cast<size_t>(h ^ (h >> 31));
  }
};

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
}

Status TaggingService::Tag(const storage::AgentBatch& batch, std::vector<uint32_t>* ids) {
  const auto& r = batch.records;
  std::vector<storage::RecordSide> record_sides;
  SONDE_RETURN_IF_ERROR(storage::ExtractSides(batch, &record_sides));
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
      model_.AddProcess({host, p.pid(), p.name(), life});
    }
    if (processes_seen_ != nullptr) processes_seen_->Inc(static_cast<uint64_t>(r.processes_size()));
  }
  if (records == 0) return Status::Ok();

  // Answers only change at lifetime boundaries: sides that differ only in their second within
  // one stable interval share one match. A batch has few distinct (address, interval, pid)
  // sides; each is matched once, with the first second seen for it.
  std::vector<uint32_t> match_of;  // per record side: index into to_match
  match_of.reserve(records * 2);
  std::vector<ResourceTags> tags;
  {
    std::shared_lock lock(model_mu_);
    std::unordered_map<SideKey, uint32_t, SideKeyHash> match_slot;
    std::vector<SideKey> to_match;
    uint32_t last_time = 0, last_stable = 0;
    bool have_last = false;
    for (const storage::RecordSide& rs : record_sides) {
      if (!have_last || rs.time_s != last_time) {  // records come roughly in time order
        last_time = rs.time_s;
        last_stable = model_.StableFrom(rs.time_s);
        have_last = true;
      }
      auto [it, inserted] = match_slot.emplace(SideKey{rs.ip, last_stable, rs.pid},
                                               static_cast<uint32_t>(to_match.size()));
      if (inserted) to_match.push_back(SideKey{rs.ip, rs.time_s, rs.pid});
      match_of.push_back(it->second);
    }
    tags = enricher_.MatchSides(host, to_match);
  }
  // One tag set per distinct match: rows store its id, the dimension ids live in the set.
  auto sets = [&]() -> StatusOr<std::vector<uint32_t>> {
    SONDE_ASSIGN_OR_RETURN(auto encoded, enricher_.EncodeSides(std::move(tags)));
    std::vector<std::string> values(encoded.size());
    for (size_t i = 0; i < encoded.size(); ++i) values[i] = TagSetValue(encoded[i]);
    return dictionary_->Encode(TagDimension::kTagSet, values);
  }();
  if (!sets.ok()) {
    if (Transient(sets.status())) return sets.status();
    // Not worth blocking the spool over: store the rows untagged and say so.
    SONDE_LOG_EVERY(warn, "tagging a batch failed, storing it untagged: {}", sets.status().ToString());
    return Status::Ok();
  }
  uint32_t* out = ids->data() + base;
  for (size_t i = 0; i < records * 2; ++i) out[i] = (*sets)[match_of[i]];
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
    ++pod_changes_;
    return;
  }
  auto p = PodFromJson(pod, options_.kube_cluster, now_s);
  if (!p) return;  // no address yet: a later MODIFIED brings it
  std::unique_lock lock(model_mu_);
  AddSelectedServices(&*p);
  model_.UpsertPod(std::move(*p));
  ++pod_changes_;
}

KubeWatchHandler TaggingService::PodHandler() {
  KubeWatchHandler h;
  h.on_list = [this](const std::vector<nlohmann::json>& items) { ApplyPodList(items, NowS()); };
  h.on_event = [this](WatchEventType type, const nlohmann::json& pod) { ApplyPodEvent(type, pod, NowS()); };
  return h;
}

}  // namespace sonde::server::enrich
