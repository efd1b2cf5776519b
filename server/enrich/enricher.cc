// Record enrichment: match both sides, then encode every tag string in one pass per dimension.
#include "server/enrich/enricher.h"

namespace sonde::server::enrich {

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

StatusOr<std::vector<RecordTagIds>> Enricher::TagBatch(std::string_view agent_host,
                                                       std::span<const RecordSides> records) {
  // strings[d][i * 2 + side]
  std::array<std::vector<std::string>, kTagDimensionCount> strings;
  for (auto& v : strings) v.resize(records.size() * 2);
  for (size_t i = 0; i < records.size(); ++i) {
    const RecordSides& r = records[i];
    const std::string vpc = model_->VpcOfHost(agent_host, r.time_s);
    for (int side = 0; side < 2; ++side) {
      ResourceTags tags = model_->Match(vpc, r.ip[side], r.time_s);
      if (r.process_id[side] != 0) {
        tags[TagDimension::kProcessName] = model_->ProcessName(agent_host, r.process_id[side], r.time_s);
      }
      bool any = false;
      for (size_t d = 0; d < kTagDimensionCount; ++d) {
        any = any || !tags.values[d].empty();
        strings[d][i * 2 + side] = std::move(tags.values[d]);
      }
      if (!any && untagged_) untagged_->Inc();
    }
  }
  std::vector<RecordTagIds> out(records.size());
  for (size_t d = 0; d < kTagDimensionCount; ++d) {
    SONDE_ASSIGN_OR_RETURN(auto ids, dictionary_->Encode(static_cast<TagDimension>(d), strings[d]));
    for (size_t i = 0; i < records.size(); ++i) {
      out[i].ids[0][d] = ids[i * 2];
      out[i].ids[1][d] = ids[i * 2 + 1];
    }
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
