// Application RED metrics: aggregates L7 records per (client, server, server port, l7 protocol,
// endpoint) into 1 s and 60 s intervals and emits v1::ApplicationMetric when an interval closes.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
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
  // One interval of one granularity. Metrics live in a deque (stable addresses) and are emitted
  // in first-seen order, which is deterministic. `slots` is an open-addressing index (linear
  // probing, power-of-two size, at most half full) over `metrics`: the bucket key is compared
  // against the stored metric itself, so a lookup allocates nothing and touches two cache lines.
  struct Slot {
    uint64_t hash = 0;
    uint32_t index_plus_1 = 0;  // 0: empty
  };
  struct Interval {
    std::vector<Slot> slots;
    std::deque<v1::ApplicationMetric> metrics;
  };

  // The bucket of `rec` in `interval` (created when new). `hash` covers every key field except
  // the interval, so one hash serves both granularities.
  v1::ApplicationMetric& Bucket(Interval* interval, uint32_t granularity_s, uint32_t time,
                                uint64_t hash, const v1::L7RequestLog& rec);
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
