// The one table of SmartEncoding tag dimensions: which string tags are dictionary-encoded into
// integer id columns of the stored tables, and which flow_tag dictionary holds each.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sonde::server::enrich {

enum class TagDimension : uint8_t {
  kRegion,
  kZone,
  kVpc,
  kSubnet,
  kHost,
  kPodCluster,
  kPodNode,
  kPodNamespace,
  kPod,
  kService,
  kWorkload,
  kProcessName,
};
inline constexpr size_t kTagDimensionCount = 12;

struct TagDimensionInfo {
  TagDimension dimension;
  // What users write, suffixed with _0 (client) or _1 (server): "pod" -> pod_0, pod_1.
  std::string_view name;
  // Stored UInt32 column prefix, suffixed the same way: "pod_id" -> pod_id_0, pod_id_1.
  std::string_view id_column;
  // Dictionary table in the flow_tag database holding (id, value).
  std::string_view dictionary;
  std::string_view doc;
};

std::span<const TagDimensionInfo> AllTagDimensions();
const TagDimensionInfo& InfoOf(TagDimension d);
// By user-facing name ("pod"); nullopt when unknown.
std::optional<TagDimension> FindTagDimension(std::string_view name);

// "pod_id_0" for (kPod, side 0).
std::string IdColumnName(TagDimension d, int side);

// The database holding dictionaries and Kubernetes metadata.
inline constexpr std::string_view kTagDatabase = "flow_tag";
// Kubernetes labels and annotations, one row per (pod, key): stored once, joined at query time.
inline constexpr std::string_view kPodLabelTable = "pod_k8s_label";
inline constexpr std::string_view kPodAnnotationTable = "pod_k8s_annotation";

}  // namespace sonde::server::enrich
