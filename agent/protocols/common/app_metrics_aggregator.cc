// RED metric aggregation over L7 records.
#include "agent/protocols/common/app_metrics_aggregator.h"

#include <algorithm>
#include <functional>
#include <vector>

namespace sonde::agent::protocols {

AppMetricsAggregator::AppMetricsAggregator(exporting::RecordSink* sink, uint64_t delay_ns)
    : sink_(sink), delay_ns_(delay_ns) {}

namespace {

uint64_t Mix(uint64_t h, uint64_t v) {
  h = (h ^ v) * 0x9e3779b97f4a7c15ULL;
  return h ^ (h >> 29);
}

// Hash of the bucket key fields other than the interval.
uint64_t KeyHash(const v1::L7RequestLog& rec) {
  uint64_t h = 0xcbf29ce484222325ULL;
  h = Mix(h, (uint64_t{rec.ip4_0()} << 32) | rec.ip4_1());
  h = Mix(h, (uint64_t{rec.server_port()} << 32) | (uint64_t{rec.protocol()} << 16) |
                 (static_cast<uint64_t>(rec.l7_protocol()) << 4) | (uint64_t{rec.is_ipv4()} << 3) |
                 static_cast<uint64_t>(rec.signal_source()));
  h = Mix(h, std::hash<std::string_view>()(rec.endpoint()));
  if (!rec.ip6_0().empty()) h = Mix(h, std::hash<std::string_view>()(rec.ip6_0()));
  if (!rec.ip6_1().empty()) h = Mix(h, std::hash<std::string_view>()(rec.ip6_1()));
  return h;
}

// True when `m` is the bucket of `rec` (the interval is compared by the caller).
bool SameKey(const v1::ApplicationMetric& m, const v1::L7RequestLog& rec) {
  return m.ip4_0() == rec.ip4_0() && m.ip4_1() == rec.ip4_1() &&
         m.server_port() == rec.server_port() && m.protocol() == rec.protocol() &&
         m.l7_protocol() == rec.l7_protocol() && m.is_ipv4() == rec.is_ipv4() &&
         m.signal_source() == rec.signal_source() && m.endpoint() == rec.endpoint() &&
         m.ip6_0() == rec.ip6_0() && m.ip6_1() == rec.ip6_1();
}

constexpr uint32_t kGranularities[2] = {1, 60};

}  // namespace

AppMetricsAggregator::Interval* AppMetricsAggregator::IntervalOf(size_t g_index,
                                                                 uint32_t granularity_s,
                                                                 uint32_t time) {
  CachedInterval& c = cached_[g_index];
  if (c.interval == nullptr || c.time != time) {
    c.interval = &intervals_[{granularity_s, time}];
    c.time = time;
  }
  return c.interval;
}

v1::ApplicationMetric& AppMetricsAggregator::Bucket(Interval* interval, uint32_t g, uint32_t time,
                                                    uint64_t hash, const v1::L7RequestLog& rec) {
  if (interval->slots.empty()) interval->slots.resize(64);
  size_t mask = interval->slots.size() - 1;
  // Bounded: the table is at most half full, so an empty slot ends every probe.
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& slot = interval->slots[i];
    if (slot.index_plus_1 == 0) break;
    if (slot.hash == hash) {
      v1::ApplicationMetric& m = interval->metrics[slot.index_plus_1 - 1];
      if (SameKey(m, rec)) return m;
    }
  }
  v1::ApplicationMetric& m = interval->metrics.emplace_back();
  m.set_time(time);
  m.set_granularity_s(g);
  m.set_signal_source(rec.signal_source());
  m.set_is_ipv4(rec.is_ipv4());
  m.set_ip4_0(rec.ip4_0());
  m.set_ip4_1(rec.ip4_1());
  if (!rec.ip6_0().empty()) m.set_ip6_0(rec.ip6_0());
  if (!rec.ip6_1().empty()) m.set_ip6_1(rec.ip6_1());
  m.set_server_port(rec.server_port());
  m.set_protocol(rec.protocol());
  m.set_l7_protocol(rec.l7_protocol());
  m.set_endpoint(rec.endpoint());
  ++buckets_;
  const uint32_t n = static_cast<uint32_t>(interval->metrics.size());
  if (size_t{n} * 2 > interval->slots.size()) {
    std::vector<Slot> bigger(interval->slots.size() * 2);
    mask = bigger.size() - 1;
    for (const Slot& old : interval->slots) {
      if (old.index_plus_1 == 0) continue;
      size_t j = old.hash & mask;
      while (bigger[j].index_plus_1 != 0) j = (j + 1) & mask;
      bigger[j] = old;
    }
    interval->slots.swap(bigger);
  }
  size_t j = hash & mask;
  while (interval->slots[j].index_plus_1 != 0) j = (j + 1) & mask;
  interval->slots[j] = Slot{hash, n};
  return m;
}

void AppMetricsAggregator::Add(const v1::L7RequestLog& rec) {
  const uint64_t t_s = std::max(rec.end_time_us(), rec.start_time_us()) / 1000000;
  const uint64_t hash = KeyHash(rec);
  // Both granularities' first probe slots are fetched before either is used: with many buckets
  // these are cache misses, and overlapping them is most of the cost of a lookup.
  Interval* intervals[2];
  uint32_t times[2];
  for (size_t gi = 0; gi < 2; ++gi) {
    const uint32_t g = kGranularities[gi];
    times[gi] = static_cast<uint32_t>(t_s / g * g);
    intervals[gi] = IntervalOf(gi, g, times[gi]);
    const std::vector<Slot>& slots = intervals[gi]->slots;
    if (!slots.empty()) __builtin_prefetch(&slots[hash & (slots.size() - 1)]);
  }
  for (size_t gi = 0; gi < 2; ++gi) {
    const uint32_t g = kGranularities[gi];
    const uint32_t time = times[gi];
    v1::ApplicationMetric& m = Bucket(intervals[gi], g, time, hash, rec);
    if (rec.request_length() >= 0) m.set_requests(m.requests() + 1);
    switch (rec.response_status()) {
      case common::v1::RESPONSE_STATUS_TIMEOUT:
        m.set_timeouts(m.timeouts() + 1);
        break;
      case common::v1::RESPONSE_STATUS_CLIENT_ERROR:
        m.set_client_errors(m.client_errors() + 1);
        break;
      case common::v1::RESPONSE_STATUS_SERVER_ERROR:
        m.set_server_errors(m.server_errors() + 1);
        break;
      default:
        break;
    }
    if (rec.response_status() != common::v1::RESPONSE_STATUS_TIMEOUT &&
        rec.response_length() >= 0) {
      m.set_responses(m.responses() + 1);
      m.set_latency_sum_us(m.latency_sum_us() + rec.response_duration());
      m.set_latency_count(m.latency_count() + 1);
      m.set_latency_max_us(std::max<uint64_t>(m.latency_max_us(), rec.response_duration()));
    }
  }
}

void AppMetricsAggregator::EmitInterval(Interval* interval) {
  buckets_ -= interval->metrics.size();
  for (v1::ApplicationMetric& m : interval->metrics) {
    if (sink_ != nullptr) sink_->Emit(std::move(m));
  }
}

void AppMetricsAggregator::Advance(uint64_t now_ns) {
  // Intervals are ordered by granularity, then start: scan each granularity's closed prefix.
  for (auto it = intervals_.begin(); it != intervals_.end();) {
    const auto [g, time] = it->first;
    const uint64_t end_ns = (static_cast<uint64_t>(time) + g) * 1000000000ULL;
    if (end_ns + delay_ns_ <= now_ns) {
      EmitInterval(&it->second);
      it = intervals_.erase(it);
      cached_[0] = cached_[1] = CachedInterval{};
    } else {
      it = intervals_.lower_bound({g + 1, 0});  // later intervals of g are open too
    }
  }
}

void AppMetricsAggregator::FlushAll() {
  for (auto& [key, interval] : intervals_) EmitInterval(&interval);
  intervals_.clear();
  cached_[0] = cached_[1] = CachedInterval{};
}

}  // namespace sonde::agent::protocols
