// NetworkMetricsAggregator: sums per-flow events into flow_metrics.network_1s / _1m rows keyed by
// (client ip, server ip, server port, protocol), closed by packet time so replay is deterministic.
#pragma once

#include <bit>
#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "agent/export/record_sink.h"
#include "common/net/five_tuple.h"

namespace sonde::agent::flow {

// Additive counters of one key in one interval; field names follow schema network_metrics.yaml.
struct NetworkCounters {
  uint64_t new_flows = 0;
  uint64_t closed_flows = 0;
  uint64_t packets_0 = 0, packets_1 = 0;
  uint64_t bytes_0 = 0, bytes_1 = 0;
  uint64_t rtt_sum_us = 0, rtt_count = 0;
  uint32_t rtt_max_us = 0;
  uint64_t retrans_0 = 0, retrans_1 = 0;
  uint64_t zero_win_0 = 0, zero_win_1 = 0;
  uint64_t syn_unanswered = 0, rst_on_syn = 0;
  uint64_t rst_0 = 0, rst_1 = 0;
  uint64_t timeouts = 0;

  void Add(const NetworkCounters& o);
};

struct NetworkKey {
  net::IpAddress client_ip;
  net::IpAddress server_ip;
  uint16_t server_port = 0;
  uint8_t protocol = 0;
  friend bool operator==(const NetworkKey&, const NetworkKey&) = default;  // addresses inline
};

struct NetworkKeyHash {
  uint64_t operator()(const NetworkKey& k) const;
};

// Where one key's rows were last added (per granularity), so the next Add of the same key goes
// straight to its row instead of hashing and probing the interval's index: a caller adding for
// the same key again and again (a flow, once per second and at its close) keeps one. A stale or
// foreign hint is detected (interval and key are checked) and costs a normal lookup.
struct NetworkRowHint {
  uint32_t start_s[2] = {0, 0};
  uint32_t row_plus_1[2] = {0, 0};  // 0: none
};

class NetworkMetricsAggregator {
 public:
  // Emits 1 s and 60 s rows (the schema granularities). `sink` may be null (counting only).
  explicit NetworkMetricsAggregator(exporting::RecordSink* sink) : sink_(sink) {}

  // `hint` (may be null) is read and updated.
  void Add(const NetworkKey& key, uint64_t timestamp_ns, const NetworkCounters& delta,
           NetworkRowHint* hint = nullptr);
  // Emits every interval that ended more than `lateness_ns` before now.
  void Advance(uint64_t now_ns, uint64_t lateness_ns = 1'000'000'000ull);
  // Emits everything still open.
  void FlushAll();

  uint64_t rows_emitted() const { return rows_emitted_; }

 private:
  // One interval's rows in insertion order, with an open-addressing index over them (the
  // aggregator is fed once per flow and second, so lookups are on the hot path). Rows live in
  // chunks of doubling size (64, 128, 256, ... rows) that never move: a growing vector copied
  // every row (184 bytes each) at each doubling, and an interval can hold one row per flow.
  // The index grows from the slot tags alone (the tag is the hash's low half, which also gives
  // the home slot), without reading the rows again.
  struct Row {
    NetworkKey first;
    NetworkCounters second;
    // 1 s rows: where the same key's 60 s row was (checked before use), so a flow without a
    // hint of its own (a new one) hashes and probes once, not once per granularity.
    uint32_t minute_start_s = 0;
    uint32_t minute_row_plus_1 = 0;  // 0: none
  };
  struct Bucket {
    struct Slot {
      uint32_t tag = 0;
      uint32_t row = 0;  // row index + 1; 0 = empty
    };
    static constexpr uint32_t kFirstChunkBits = 6;
    std::vector<std::unique_ptr<Row[]>> chunks;
    uint32_t size = 0;  // rows
    std::vector<Slot> slots;
    // The row of `key`, created when absent; its index in *index.
    NetworkCounters& Find(const NetworkKey& key, uint64_t hash, uint32_t* index);
    Row& at(uint32_t i) {
      const uint32_t k = static_cast<uint32_t>(std::bit_width((i >> kFirstChunkBits) + 1)) - 1;
      return chunks[k][i - (((1u << k) - 1) << kFirstChunkBits)];
    }
    const Row& at(uint32_t i) const { return const_cast<Bucket*>(this)->at(i); }
  };
  struct Level {
    uint32_t granularity_s;
    uint32_t flushed_until_s = 0;  // intervals starting before this were emitted
    std::map<uint32_t, Bucket> buckets;
    uint32_t last_start_s = 0;     // cache of the bucket used last
    Bucket* last = nullptr;
    uint32_t last_emitted_rows = 0;  // sizes a new bucket's index (intervals look alike)
  };
  void EmitBucket(uint32_t start_s, uint32_t granularity_s, const Bucket& bucket);

  exporting::RecordSink* sink_;
  Level levels_[2] = {{1}, {60}};
  uint64_t rows_emitted_ = 0;
};

}  // namespace sonde::agent::flow
