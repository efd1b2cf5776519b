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
};
static_assert(std::size(kDimensions) == kTagDimensionCount);

}  // namespace

std::span<const TagDimensionInfo> AllTagDimensions() { return kDimensions; }

const TagDimensionInfo& InfoOf(TagDimension d) {
  const auto i = static_cast<size_t>(d);
  SONDE_CHECK(i < kTagDimensionCount && kDimensions[i].dimension == d);
  return kDimensions[i];
}

std::optional<TagDimension> FindTagDimension(std::string_view name) {
  for (const auto& d : kDimensions) {
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
