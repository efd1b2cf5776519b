// NetworkMetricsAggregator: sums per-flow events into flow_metrics.network_1s / _1m rows keyed by
// (client ip, server ip, server port, protocol), closed by packet time so replay is deterministic.
#pragma once

#include <cstdint>
#include <map>
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
  friend bool operator==(const NetworkKey&, const NetworkKey&) = default;
};

struct NetworkKeyHash {
  uint64_t operator()(const NetworkKey& k) const;
};

class NetworkMetricsAggregator {
 public:
  // Emits 1 s and 60 s rows (the schema granularities). `sink` may be null (counting only).
  explicit NetworkMetricsAggregator(exporting::RecordSink* sink) : sink_(sink) {}

  void Add(const NetworkKey& key, uint64_t timestamp_ns, const NetworkCounters& delta);
  // Emits every interval that ended more than `lateness_ns` before now.
  void Advance(uint64_t now_ns, uint64_t lateness_ns = 1'000'000'000ull);
  // Emits everything still open.
  void FlushAll();

  uint64_t rows_emitted() const { return rows_emitted_; }

 private:
  // One interval's rows in insertion order, with an open-addressing index over them (the
  // aggregator is fed once per flow and second, so lookups are on the hot path).
  struct Bucket {
    struct Slot {
      uint32_t tag = 0;
      uint32_t row = 0;  // row index + 1; 0 = empty
    };
    std::vector<std::pair<NetworkKey, NetworkCounters>> rows;
    std::vector<Slot> slots;
    NetworkCounters& Find(const NetworkKey& key, uint64_t hash);
  };
  struct Level {
    uint32_t granularity_s;
    uint32_t flushed_until_s = 0;  // intervals starting before this were emitted
    std::map<uint32_t, Bucket> buckets;
    uint32_t last_start_s = 0;     // cache of the bucket used last
    Bucket* last = nullptr;
  };
  void EmitBucket(uint32_t start_s, uint32_t granularity_s, const Bucket& bucket);

  exporting::RecordSink* sink_;
  Level levels_[2] = {{1}, {60}};
  uint64_t rows_emitted_ = 0;
};

}  // namespace sonde::agent::flow
