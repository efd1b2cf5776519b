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

// True when `e` is the bucket of `rec` (the interval is compared by the caller).
template <typename Entry>
bool SameKey(const Entry& e, const v1::L7RequestLog& rec) {
  return e.ip4_0 == rec.ip4_0() && e.ip4_1 == rec.ip4_1() && e.server_port == rec.server_port() &&
         e.protocol == rec.protocol() && e.l7_protocol == rec.l7_protocol() &&
         e.is_ipv4 == rec.is_ipv4() && e.signal_source == rec.signal_source() &&
         e.endpoint == rec.endpoint() && e.ip6_0 == rec.ip6_0() && e.ip6_1 == rec.ip6_1();
}

constexpr uint32_t kGranularities[2] = {1, 60};

}  // namespace

AppMetricsAggregator::Interval* AppMetricsAggregator::IntervalOf(size_t g_index,
                                                                 uint32_t granularity_s,
                                                                 uint32_t time) {
  CachedInterval& c = cached_[g_index];
  if (c.interval == nullptr || c.time != time) {
    Interval& interval = intervals_[{granularity_s, time}];
    if (interval.granularity_s == 0) {  // new
      interval.granularity_s = granularity_s;
      interval.time = time;
      interval.slots.resize(64);
    }
    c.interval = &interval;
    c.time = time;
  }
  return c.interval;
}

uint32_t AppMetricsAggregator::Find(Interval* interval, uint64_t hash,
                                    const v1::L7RequestLog& rec, bool* created) {
  size_t mask = interval->slots.size() - 1;
  const uint32_t tag = static_cast<uint32_t>(hash >> 32);
  // Bounded: the table is at most half full, so an empty slot ends every probe.
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& slot = interval->slots[i];
    if (slot.index_plus_1 == 0) break;
    if (slot.tag == tag && SameKey(interval->at(slot.index_plus_1 - 1), rec)) {
      *created = false;
      return slot.index_plus_1 - 1;
    }
  }
  *created = true;
  const uint32_t index = interval->size++;
  if ((index >> kChunkBits) == interval->chunks.size()) {
    interval->chunks.push_back(std::make_unique<Entry[]>(size_t{1} << kChunkBits));
  }
  Entry& e = interval->at(index);
  e.ip4_0 = rec.ip4_0();
  e.ip4_1 = rec.ip4_1();
  e.server_port = rec.server_port();
  e.protocol = rec.protocol();
  e.is_ipv4 = rec.is_ipv4();
  e.l7_protocol = rec.l7_protocol();
  e.signal_source = rec.signal_source();
  e.endpoint = rec.endpoint();
  e.hash = hash;
  if (!rec.ip6_0().empty()) e.ip6_0 = rec.ip6_0();
  if (!rec.ip6_1().empty()) e.ip6_1 = rec.ip6_1();
  ++buckets_;
  const uint32_t n = interval->size;
  if (size_t{n} * 2 > interval->slots.size()) {
    std::vector<Slot> bigger(interval->slots.size() * 2);
    mask = bigger.size() - 1;
    for (const Slot& old : interval->slots) {
      if (old.index_plus_1 == 0) continue;
      size_t j = interval->at(old.index_plus_1 - 1).hash & mask;
      while (bigger[j].index_plus_1 != 0) j = (j + 1) & mask;
      bigger[j] = old;
    }
    interval->slots.swap(bigger);
  }
  size_t j = hash & mask;
  while (interval->slots[j].index_plus_1 != 0) j = (j + 1) & mask;
  interval->slots[j] = Slot{tag, n};
  return index;
}

void AppMetricsAggregator::Add(const v1::L7RequestLog& rec) {
  const uint64_t t_s = std::max(rec.end_time_us(), rec.start_time_us()) / 1000000;
  const uint64_t hash = KeyHash(rec);
  // One lookup per record: the 1 s entry remembers its 60 s entry (the 60 s lookup happens only
  // when a key first shows up in a second, i.e. in the order it did when both were looked up).
  const uint32_t second = static_cast<uint32_t>(t_s);
  Interval* sec = IntervalOf(0, kGranularities[0], second);
  __builtin_prefetch(&sec->slots[hash & (sec->slots.size() - 1)]);
  if (sec->minute == nullptr) {
    const uint32_t g = kGranularities[1];
    sec->minute = IntervalOf(1, g, static_cast<uint32_t>(t_s / g * g));
  }
  bool created = false;
  const uint32_t index = Find(sec, hash, rec, &created);
  if (created) {
    bool unused = false;
    sec->at(index).minute_index = Find(sec->minute, hash, rec, &unused);
  }
  // Only the 1 s entry counts the record: its counters fold into its 60 s entry when the second
  // is emitted (EmitInterval), so a record touches one entry's counters, not two.
  Entry& e = sec->at(index);
  if (rec.request_length() >= 0) ++e.requests;
  const common::v1::ResponseStatus status = rec.response_status();
  switch (status) {
    case common::v1::RESPONSE_STATUS_TIMEOUT:
      ++e.timeouts;
      break;
    case common::v1::RESPONSE_STATUS_CLIENT_ERROR:
      ++e.client_errors;
      break;
    case common::v1::RESPONSE_STATUS_SERVER_ERROR:
      ++e.server_errors;
      break;
    default:
      break;
  }
  if (status != common::v1::RESPONSE_STATUS_TIMEOUT && rec.response_length() >= 0) {
    const uint64_t latency_us = rec.response_duration();
    ++e.responses;
    e.latency_sum_us += latency_us;
    ++e.latency_count;
    e.latency_max_us = std::max(e.latency_max_us, latency_us);
  }
}

void AppMetricsAggregator::EmitInterval(Interval* interval) {
  buckets_ -= interval->size;
  if (sink_ == nullptr) return;
  for (uint32_t i = 0; i < interval->size; ++i) {
    Entry& e = interval->at(i);
    if (interval->minute != nullptr) {
      // A 1 s interval: its 60 s interval is emitted no earlier than it is (Advance and
      // FlushAll emit granularity 1 first, and a minute ends no earlier than its seconds).
      Entry& m = interval->minute->at(e.minute_index);
      m.requests += e.requests;
      m.responses += e.responses;
      m.client_errors += e.client_errors;
      m.server_errors += e.server_errors;
      m.timeouts += e.timeouts;
      m.latency_sum_us += e.latency_sum_us;
      m.latency_count += e.latency_count;
      m.latency_max_us = std::max(m.latency_max_us, e.latency_max_us);
    }
    v1::ApplicationMetric m;
    m.set_time(interval->time);
    m.set_granularity_s(interval->granularity_s);
    m.set_signal_source(e.signal_source);
    m.set_is_ipv4(e.is_ipv4);
    m.set_ip4_0(e.ip4_0);
    m.set_ip4_1(e.ip4_1);
    if (!e.ip6_0.empty()) m.set_ip6_0(std::move(e.ip6_0));
    if (!e.ip6_1.empty()) m.set_ip6_1(std::move(e.ip6_1));
    m.set_server_port(e.server_port);
    m.set_protocol(e.protocol);
    m.set_l7_protocol(e.l7_protocol);
    m.set_endpoint(std::move(e.endpoint));
    m.set_requests(e.requests);
    m.set_responses(e.responses);
    m.set_client_errors(e.client_errors);
    m.set_server_errors(e.server_errors);
    m.set_timeouts(e.timeouts);
    m.set_latency_sum_us(e.latency_sum_us);
    m.set_latency_count(e.latency_count);
    m.set_latency_max_us(e.latency_max_us);
    sink_->Emit(std::move(m));
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
