// AutoTagging + SmartEncoding for ingest: turns the two sides of each record into tag id
// columns (region_id_0 ... process_name_id_1) using the resource model and the dictionaries.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/metrics/registry.h"
#include "common/net/ip_address.h"
#include "server/enrich/resource_model.h"
#include "server/enrich/tag_dictionary.h"

namespace sonde::server::enrich {

// What the enricher needs from one record (fields of L7RequestLog / L4FlowLog / metrics).
struct RecordSides {
  uint32_t time_s = 0;
  net::IpAddress ip[2];         // [0] client, [1] server
  uint32_t process_id[2] = {};  // 0 when unknown or not local to the agent
};

// One side of a record as the matcher sees it: address, time and pid (0 = not a local process).
struct SideKey {
  net::IpAddress ip;
  uint32_t time_s = 0;
  uint32_t pid = 0;
  bool operator==(const SideKey&) const = default;
};

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

using TagIdArray = std::array<uint32_t, kTagDimensionCount>;

// Tag ids per side and dimension; 0 = no tag.
struct RecordTagIds {
  std::array<std::array<uint32_t, kTagDimensionCount>, 2> ids{};
  uint32_t Get(TagDimension d, int side) const { return ids[side][static_cast<size_t>(d)]; }
  // Calls fn(column name, value) for all 24 id columns, e.g. ("pod_id_1", 42).
  void ForEachColumn(const std::function<void(const std::string& column, uint32_t id)>& fn) const;
};

class Enricher {
 public:
  // model, dictionary and registry must outlive the enricher; registry may be null.
  Enricher(const ResourceModel* model, TagDictionary* dictionary, metrics::Registry* registry);

  // Tags a batch of records reported by the agent on `agent_host`. One dictionary round per
  // dimension for the whole batch, so new values cost one settle delay per batch, not per row.
  StatusOr<std::vector<RecordTagIds>> TagBatch(std::string_view agent_host,
                                               std::span<const RecordSides> records);

  // The two halves of TagBatch for callers that deduplicate sides and guard the model with a
  // lock: MatchSides reads the model only, EncodeSides the dictionary only (it may block for
  // an allocation round, so it should run without the model's lock).
  std::vector<ResourceTags> MatchSides(std::string_view agent_host, std::span<const SideKey> sides) const;
  StatusOr<std::vector<TagIdArray>> EncodeSides(std::vector<ResourceTags> tags);

  // Writes the labels and annotations of every pod in the model to the metadata tables (once
  // per pod, never per row), keyed by the pod's encoded (cluster, namespace, pod) ids.
  Status PublishPodMetadata(TagStore* store, uint64_t version);

 private:
  const ResourceModel* model_;
  TagDictionary* dictionary_;
  metrics::Counter* untagged_ = nullptr;
};

}  // namespace sonde::server::enrich
