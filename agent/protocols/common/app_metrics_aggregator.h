// Application RED metrics: aggregates L7 records per (client, server, server port, l7 protocol,
// endpoint) into 1 s and 60 s intervals and emits v1::ApplicationMetric when an interval closes.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <utility>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>

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
  // Numeric parts of the bucket key; the strings are compared separately so a lookup needs no
  // copies (this runs once per record per granularity).
  struct Key {
    uint32_t granularity_s;
    uint32_t time;
    int signal_source;
    uint32_t is_ipv4;
    uint32_t ip4_0, ip4_1;
    uint32_t server_port;
    uint32_t protocol;
    int l7_protocol;
    std::string_view ip6_0, ip6_1, endpoint;  // view into the record, or into the bucket's metric
    auto Tie() const {
      return std::tie(granularity_s, time, signal_source, is_ipv4, ip4_0, ip4_1, ip6_0, ip6_1,
                      server_port, protocol, l7_protocol, endpoint);
    }
    bool operator==(const Key& o) const { return Tie() == o.Tie(); }
    bool operator<(const Key& o) const { return Tie() < o.Tie(); }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  // One interval of one granularity. Metrics live in a deque (stable addresses: the index keys'
  // string views point into them) and are emitted in first-seen order, which is deterministic.
  struct Interval {
    std::unordered_map<Key, size_t, KeyHash> index;
    std::deque<v1::ApplicationMetric> metrics;
  };

  void EmitInterval(Interval* interval);

  exporting::RecordSink* sink_;
  uint64_t delay_ns_;
  // By (granularity, interval start): Advance only touches the intervals that closed.
  std::map<std::pair<uint32_t, uint32_t>, Interval> intervals_;
  size_t buckets_ = 0;
};

}  // namespace sonde::agent::protocols
