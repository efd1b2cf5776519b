// The tag dimension table (see tag_dimensions.h).
#include "server/enrich/tag_dimensions.h"

#include "common/base/check.h"

namespace sonde::server::enrich {
namespace {

constexpr TagDimensionInfo kDimensions[] = {
    {TagDimension::kRegion, "region", "region_id", "region_map", "cloud region"},
    {TagDimension::kZone, "zone", "zone_id", "zone_map", "availability zone"},
    {TagDimension::kVpc, "vpc", "vpc_id", "vpc_map", "VPC (or on-prem network) of the address"},
    {TagDimension::kSubnet, "subnet", "subnet_id", "subnet_map", "subnet holding the address"},
    {TagDimension::kHost, "host", "host_id", "host_map", "host (VM or bare metal)"},
    {TagDimension::kPodCluster, "pod_cluster", "pod_cluster_id", "pod_cluster_map",
     "Kubernetes cluster"},
    {TagDimension::kPodNode, "pod_node", "pod_node_id", "pod_node_map", "Kubernetes node"},
    {TagDimension::kPodNamespace, "pod_ns", "pod_ns_id", "pod_ns_map", "Kubernetes namespace"},
    {TagDimension::kPod, "pod", "pod_id", "pod_map", "Kubernetes pod name"},
    {TagDimension::kService, "service", "service_id", "service_map", "Kubernetes service"},
    {TagDimension::kWorkload, "workload", "workload_id", "workload_map",
     "Kubernetes workload (Deployment, StatefulSet, DaemonSet, ...)"},
    {TagDimension::kProcessName, "process_name", "process_name_id", "process_name_map",
     "process name"},
    {TagDimension::kTagSet, "tag_set", "tag_set_id", "tag_set_map",
     "one side's ids of every dimension above (SmartEncoding tag set)"},
};
static_assert(std::size(kDimensions) == kTagDictionaryCount);

}  // namespace

std::span<const TagDimensionInfo> AllTagDimensions() {
  return std::span<const TagDimensionInfo>(kDimensions, kTagDimensionCount);
}

std::span<const TagDimensionInfo> AllTagDictionaries() { return kDimensions; }

const TagDimensionInfo& InfoOf(TagDimension d) {
  const auto i = static_cast<size_t>(d);
  SONDE_CHECK(i < kTagDictionaryCount && kDimensions[i].dimension == d);
  return kDimensions[i];
}

std::optional<TagDimension> FindTagDimension(std::string_view name) {
  for (const auto& d : AllTagDimensions()) {
    if (d.name == name) return d.dimension;
  }
  return std::nullopt;
}

std::string IdColumnName(TagDimension d, int side) {
  std::string s(InfoOf(d).id_column);
  s += side == 0 ? "_0" : "_1";
  return s;
}

}  // namespace sonde::server::enrich

namespace sonde::server::enrich {

std::string TagSetValue(std::span<const uint32_t, kTagDimensionCount> ids) {
  bool any = false;
  for (uint32_t id : ids) any = any || id != 0;
  if (!any) return std::string();
  std::string out;
  out.reserve(kTagDimensionCount * 6);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i != 0) out += ',';
    out += std::to_string(ids[i]);
  }
  return out;
}

std::optional<std::array<uint32_t, kTagDimensionCount>> ParseTagSetValue(std::string_view value) {
  std::array<uint32_t, kTagDimensionCount> ids{};
  if (value.empty()) return ids;
  size_t i = 0;
  uint64_t v = 0;
  bool digits = false;
  for (size_t k = 0; k <= value.size(); ++k) {
    if (k == value.size() || value[k] == ',') {
      if (!digits || i >= ids.size()) return std::nullopt;
      ids[i++] = static_cast<uint32_t>(v);
      v = 0;
      digits = false;
    } else if (value[k] >= '0' && value[k] <= '9') {
      v = v * 10 + static_cast<uint64_t>(value[k] - '0');
      if (v > UINT32_MAX) return std::nullopt;
      digits = true;
    } else {
      return std::nullopt;
    }
  }
  return ids;
}

}  // namespace sonde::server::enrich
