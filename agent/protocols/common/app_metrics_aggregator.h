// Application RED metrics: aggregates L7 records per (client, server, server port, l7 protocol,
// endpoint) into 1 s and 60 s intervals and emits v1::ApplicationMetric when an interval closes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include "agent/export/record_sink.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols {

class AppMetricsAggregator {
 public:
  // `sink` must outlive the aggregator. An interval is emitted once packet time passes its end
  // by `delay_ns`, so records arriving slightly late still land in it.
  explicit AppMetricsAggregator(exporting::RecordSink* sink, uint64_t delay_ns = 2'000'000'000ULL);

  // Counts one record in the interval of its end time (the moment the outcome was known).
  void Add(const v1::L7RequestLog& rec);
  // Emits every interval that has closed by now_ns.
  void Advance(uint64_t now_ns);
  // Emits everything (end of input).
  void FlushAll();

  size_t open_intervals() const { return buckets_; }

 private:
  // One bucket: its key, then its counters, as plain fields (the ApplicationMetric is built only
  // when the interval is emitted). The key fields a lookup compares sit in the first cache line.
  struct alignas(64) Entry {
    uint32_t ip4_0 = 0, ip4_1 = 0;
    uint32_t server_port = 0, protocol = 0, is_ipv4 = 0;
    common::v1::L7Protocol l7_protocol = common::v1::L7_PROTOCOL_UNKNOWN;
    common::v1::SignalSource signal_source = common::v1::SIGNAL_SOURCE_PACKET;
    // 1 s entries: index of the same key's entry in the enclosing 60 s interval. Records are
    // counted in 1 s entries only; a 60 s entry gets the counters of its 1 s entries when those
    // are emitted, which is always before it is.
    uint32_t minute_index = 0;
    std::string endpoint;
    uint64_t requests = 0, responses = 0, client_errors = 0, server_errors = 0, timeouts = 0;
    uint64_t latency_sum_us = 0, latency_count = 0, latency_max_us = 0;
    uint64_t hash = 0;  // KeyHash, for growing the index
    std::string ip6_0, ip6_1;
  };
  // Entries in chunks that never move (growing a vector of them moved every entry).
  static constexpr uint32_t kChunkBits = 8;
  // One interval of one granularity. Entries are emitted in first-seen order, which is
  // deterministic. `slots` is an open-addressing index (linear probing, power-of-two size, at
  // most half full) over the entries: the key is compared against the stored entry itself.
  // 8 bytes, so the index of a busy interval stays small enough for the caches.
  struct Slot {
    uint32_t tag = 0;           // high half of the key hash (the low half picks the home slot)
    uint32_t index_plus_1 = 0;  // 0: empty
  };
  struct Interval {
    uint32_t granularity_s = 0;
    uint32_t time = 0;
    uint32_t size = 0;  // entries
    std::vector<Slot> slots;
    std::vector<std::unique_ptr<Entry[]>> chunks;
    Entry& at(uint32_t i) { return chunks[i >> kChunkBits][i & ((1u << kChunkBits) - 1)]; }
    // 1 s intervals: the 60 s interval holding them. It closes no earlier than they do, so it
    // lives (std::map nodes do not move) as long as they do.
    Interval* minute = nullptr;
  };

  // The index of the entry of `rec` in `interval` (created when new; *created tells). `hash`
  // covers every key field except the interval, so one hash serves both granularities.
  uint32_t Find(Interval* interval, uint64_t hash, const v1::L7RequestLog& rec, bool* created);
  Interval* IntervalOf(size_t g_index, uint32_t granularity_s, uint32_t time);
  void EmitInterval(Interval* interval);

  exporting::RecordSink* sink_;
  uint64_t delay_ns_;
  // By (granularity, interval start): Advance only touches the intervals that closed.
  std::map<std::pair<uint32_t, uint32_t>, Interval> intervals_;
  // The interval the last record of each granularity went to (records come in time order, so
  // this skips the map lookup almost always). Reset whenever intervals_ loses an element.
  struct CachedInterval {
    uint32_t time = 0;
    Interval* interval = nullptr;
  };
  CachedInterval cached_[2];
  size_t buckets_ = 0;
};

}  // namespace sonde::agent::protocols
