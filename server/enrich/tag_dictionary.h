// SmartEncoding: tag strings <-> UInt32 ids, one dictionary per tag dimension, persisted in
// flow_tag and consistent across restarts and across servers allocating concurrently.
//
// Ids are deterministic: hash(dimension, value, probe) for probe = 0, 1, ... Collisions are
// settled by a claim protocol on the shared store (pre-read, claim, wait `settle`, post-read;
// the smallest live value wins the id, losers release and probe on). Only local durations are
// compared, never clocks of different servers. See docs/design/smart-encoding.md.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/base/status.h"
#include "common/metrics/registry.h"
#include "server/enrich/tag_dimensions.h"
#include "server/enrich/tag_store.h"

namespace sonde::server::enrich {

struct TagDictionaryOptions {
  // Upper bound on one claim insert (pre-read start to insert done). A claim slower than this
  // is released and retried; the post-read waits this long after the insert.
  std::chrono::milliseconds settle{200};
  // Probes per value before giving up (each probe is a fresh hash).
  int max_probes = 32;
  // Bits of the id space; 32 in production. Tests shrink it to force collisions.
  int id_bits = 32;
};

class TagDictionary {
 public:
  // `store` and `registry` must outlive the dictionary; registry may be null.
  TagDictionary(TagStore* store, TagDictionaryOptions options, metrics::Registry* registry);

  // Loads every live id of every dimension into the cache (call at start; safe to repeat).
  Status Load();

  // Ids of `values`, allocating ids for values never seen. "" encodes to 0 (no tag).
  // Blocks for about `settle` when new values need ids; hits are served from the cache.
  StatusOr<std::vector<uint32_t>> Encode(TagDimension d, std::span<const std::string> values);
  StatusOr<uint32_t> Encode(TagDimension d, std::string_view value);

  // Cache lookups only (no store access).
  std::optional<uint32_t> Find(TagDimension d, std::string_view value) const;
  std::optional<std::string> Decode(TagDimension d, uint32_t id) const;
  size_t size(TagDimension d) const;
  // Bumped whenever a value already cached gets a different id (Adopt after a collision another
  // server settled): callers caching Encode() results drop them when it moves.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // The id probe sequence, exposed for tests and the design doc.
  uint32_t ProbeId(TagDimension d, std::string_view value, int probe) const;

 private:
  struct Cache {
    std::unordered_map<std::string, uint32_t> by_value;
    std::unordered_map<uint32_t, std::string> by_id;
  };
  // Assigns ids to `values` (none cached) with the claim protocol.
  Status Allocate(TagDimension d, std::vector<std::string> values);
  // Applies the reader rule (smallest live value per id) to claims and caches the winners.
  void Adopt(TagDimension d, const std::vector<TagClaim>& claims);

  TagStore* store_;
  TagDictionaryOptions options_;
  mutable std::mutex mu_;                  // guards caches_
  std::mutex alloc_mu_;                    // one allocation round at a time per server
  std::array<Cache, kTagDictionaryCount> caches_;
  std::atomic<uint64_t> generation_{0};
  metrics::Counter* allocated_ = nullptr;
  metrics::Counter* collisions_ = nullptr;
  metrics::Counter* slow_claims_ = nullptr;
};

}  // namespace sonde::server::enrich
