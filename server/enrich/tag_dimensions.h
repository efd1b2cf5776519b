// The one table of SmartEncoding tag dimensions: which string tags are dictionary-encoded into
// integer id columns of the stored tables, and which flow_tag dictionary holds each.
#pragma once

#include <array>
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
  // Not a user-facing tag: the dictionary of tag sets. A tag set is one side's ids of all the
  // dimensions above; data rows store only its id (tag_set_id_0 / tag_set_id_1), so a row
  // pays for two integers however many dimensions there are (docs/design/smart-encoding.md).
  kTagSet,
};
// User-facing dimensions (AllTagDimensions()); kTagSet comes after them.
inline constexpr size_t kTagDimensionCount = 12;
// Dictionaries the TagDictionary keeps: every dimension plus the tag sets.
inline constexpr size_t kTagDictionaryCount = kTagDimensionCount + 1;

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
// AllTagDimensions() plus the tag-set dictionary: what TagDictionary loads and TagStore creates.
std::span<const TagDimensionInfo> AllTagDictionaries();
const TagDimensionInfo& InfoOf(TagDimension d);
// By user-facing name ("pod"); nullopt when unknown.
std::optional<TagDimension> FindTagDimension(std::string_view name);

// "pod_id_0" for (kPod, side 0); "tag_set_id_1" for (kTagSet, side 1).
std::string IdColumnName(TagDimension d, int side);

// A tag set's dictionary value: its dimension ids in AllTagDimensions() order, in decimal,
// separated by ','; "" when every id is 0 (untagged, tag set id 0). Query time splits it with
// splitByChar(',', value)[position] (TagSetPosition()).
std::string TagSetValue(std::span<const uint32_t, kTagDimensionCount> ids);
// The inverse of TagSetValue (missing trailing ids read 0); nullopt when `value` is malformed.
std::optional<std::array<uint32_t, kTagDimensionCount>> ParseTagSetValue(std::string_view value);
// 1-based position of `d` in a tag set value.
inline size_t TagSetPosition(TagDimension d) { return static_cast<size_t>(d) + 1; }

// The database holding dictionaries and Kubernetes metadata.
inline constexpr std::string_view kTagDatabase = "flow_tag";
// Kubernetes labels and annotations, one row per (pod, key): stored once, joined at query time.
inline constexpr std::string_view kPodLabelTable = "pod_k8s_label";
inline constexpr std::string_view kPodAnnotationTable = "pod_k8s_annotation";

}  // namespace sonde::server::enrich
