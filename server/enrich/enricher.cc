// Record enrichment: match both sides, then encode every tag string in one pass per dimension.
#include "server/enrich/enricher.h"

#include <algorithm>

namespace sonde::server::enrich {
namespace {

// 127.0.0.0/8 (IPv4 and IPv4-mapped) and ::1.
bool IsLoopback(const net::IpAddress& ip) {
  if (ip.is_v4()) return ip.v4() >> 24 == 127;
  static constexpr uint8_t kV6Loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return std::equal(ip.bytes().begin(), ip.bytes().end(), kV6Loopback);
}

}  // namespace

void RecordTagIds::ForEachColumn(const std::function<void(const std::string&, uint32_t)>& fn) const {
  for (int side = 0; side < 2; ++side) {
    for (const auto& d : AllTagDimensions()) fn(IdColumnName(d.dimension, side), Get(d.dimension, side));
  }
}

Enricher::Enricher(const ResourceModel* model, TagDictionary* dictionary, metrics::Registry* registry)
    : model_(model), dictionary_(dictionary) {
  if (registry != nullptr) {
    untagged_ = registry->GetCounter("sonde_server_enrich_untagged_sides_total",
                                     "record sides no resource matched");
  }
}

std::vector<ResourceTags> Enricher::MatchSides(std::string_view agent_host, std::span<const SideKey> sides) const {
  std::vector<ResourceTags> out(sides.size());
  std::string vpc;
  uint32_t vpc_time = 0;
  bool have_vpc = false;
  for (size_t i = 0; i < sides.size(); ++i) {
    const SideKey& k = sides[i];
    if (!have_vpc || vpc_time != k.time_s) {
      vpc = model_->VpcOfHost(agent_host, k.time_s);
      vpc_time = k.time_s;
      have_vpc = true;
    }
    // Loopback traffic never left the agent's host: that host is both sides.
    out[i] = IsLoopback(k.ip) ? model_->MatchHost(vpc, agent_host, k.time_s) : model_->Match(vpc, k.ip, k.time_s);
    if (k.pid != 0) out[i][TagDimension::kProcessName] = model_->ProcessName(agent_host, k.pid, k.time_s);
    bool any = false;
    for (const auto& v : out[i].values) any = any || !v.empty();
    if (!any && untagged_) untagged_->Inc();
    out[i].pod = nullptr;  // callers may use the tags after the model changed
  }
  return out;
}

StatusOr<std::vector<TagIdArray>> Enricher::EncodeSides(std::vector<ResourceTags> tags) {
  std::vector<TagIdArray> out(tags.size());
  std::vector<std::string> strings(tags.size());
  for (size_t d = 0; d < kTagDimensionCount; ++d) {
    for (size_t i = 0; i < tags.size(); ++i) strings[i] = std::move(tags[i].values[d]);
    SONDE_ASSIGN_OR_RETURN(auto ids, dictionary_->Encode(static_cast<TagDimension>(d), strings));
    for (size_t i = 0; i < tags.size(); ++i) out[i][d] = ids[i];
  }
  return out;
}

StatusOr<std::vector<RecordTagIds>> Enricher::TagBatch(std::string_view agent_host,
                                                       std::span<const RecordSides> records) {
  std::vector<SideKey> sides;
  sides.reserve(records.size() * 2);
  for (const RecordSides& r : records) {
    for (int side = 0; side < 2; ++side) sides.push_back({r.ip[side], r.time_s, r.process_id[side]});
  }
  SONDE_ASSIGN_OR_RETURN(auto ids, EncodeSides(MatchSides(agent_host, sides)));
  std::vector<RecordTagIds> out(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    out[i].ids[0] = ids[i * 2];
    out[i].ids[1] = ids[i * 2 + 1];
  }
  return out;
}

Status Enricher::PublishPodMetadata(TagStore* store, uint64_t version) {
  const auto& pods = model_->pods();
  std::vector<std::string> clusters, namespaces, names;
  for (const PodInfo& pod : pods) {
    clusters.push_back(pod.cluster);
    namespaces.push_back(pod.ns);
    names.push_back(pod.name);
  }
  // One allocation round per dimension for all pods.
  SONDE_ASSIGN_OR_RETURN(auto cluster_ids, dictionary_->Encode(TagDimension::kPodCluster, clusters));
  SONDE_ASSIGN_OR_RETURN(auto ns_ids, dictionary_->Encode(TagDimension::kPodNamespace, namespaces));
  SONDE_ASSIGN_OR_RETURN(auto pod_ids, dictionary_->Encode(TagDimension::kPod, names));
  std::vector<PodMetadataRow> labels, annotations;
  for (size_t i = 0; i < pods.size(); ++i) {
    for (const auto& [k, v] : pods[i].labels) {
      labels.push_back({cluster_ids[i], ns_ids[i], pod_ids[i], k, v, version, false});
    }
    for (const auto& [k, v] : pods[i].annotations) {
      annotations.push_back({cluster_ids[i], ns_ids[i], pod_ids[i], k, v, version, false});
    }
  }
  SONDE_RETURN_IF_ERROR(store->InsertPodMetadata(false, labels));
  return store->InsertPodMetadata(true, annotations);
}

}  // namespace sonde::server::enrich
