// RED metric aggregation over L7 records.
#include "agent/protocols/common/app_metrics_aggregator.h"

#include <algorithm>
#include <cstring>
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

uint32_t Fold32(uint64_t h) { return static_cast<uint32_t>(h ^ (h >> 32)); }

uint32_t ReadU32(std::string_view in, size_t at) {
  uint32_t v = 0;
  std::memcpy(&v, in.data() + at, 4);
  return v;
}

// A `services` dictionary item: these five fields of the record (the header), then the
// endpoint.
constexpr size_t kServiceHeader = 20;
enum ServiceField : size_t {
  kServerPort = 0,
  kProtocol = 4,
  kIsIpv4 = 8,
  kL7Protocol = 12,
  kSignalSource = 16,
};

constexpr uint32_t kGranularities[2] = {1, 60};
// Emitted intervals' entry chunks kept for reuse: 1024 chunks of 256 entries (16 MB) is more
// than the busiest captures' second and minute need at once.
constexpr size_t kMaxFreeChunks = 1024;
constexpr size_t kMaxFreeSlotTables = 4;

}  // namespace

uint32_t AppMetricsAggregator::Dictionary::Insert(std::string_view head, std::string_view tail,
                                                 uint32_t hash) {
  if (slots_.empty()) slots_.resize(16);
  const auto id = static_cast<uint32_t>(items_.size());
  items_.push_back(Item{arena_.size(), head.size() + tail.size()});
  arena_.append(head);
  arena_.append(tail);
  IndexAdd(&slots_, Slot{hash, id + 1});
  return id;
}

uint64_t AppMetricsAggregator::Interval::Total(uint32_t index, uint32_t counter) {
  uint64_t total = at(index).count[counter];
  if (!carries.empty()) {
    const auto it = carries.find(index);
    if (it != carries.end()) total += it->second[counter];
  }
  return total;
}

size_t AppMetricsAggregator::dictionary_bytes() const {
  size_t bytes = 0;
  for (const auto& [key, interval] : intervals_) {
    bytes += interval.services.bytes() + interval.ip6.bytes();
  }
  return bytes;
}

AppMetricsAggregator::Interval* AppMetricsAggregator::IntervalOf(size_t g_index,
                                                                 uint32_t granularity_s,
                                                                 uint32_t time) {
  CachedInterval& c = cached_[g_index];
  if (c.interval == nullptr || c.time != time) {
    Interval& interval = intervals_[{granularity_s, time}];
    if (interval.granularity_s == 0) {  // new
      interval.granularity_s = granularity_s;
      interval.time = time;
      if (free_slots_.empty()) {
        interval.slots.resize(64);
      } else {
        // A table sized by an earlier interval: traffic is steady, so this one likely needs as
        // many slots, and they are already in memory.
        interval.slots = std::move(free_slots_.back());
        free_slots_.pop_back();
        std::fill(interval.slots.begin(), interval.slots.end(), Slot{});
      }
    }
    c.interval = &interval;
    c.time = time;
  }
  return c.interval;
}

uint32_t AppMetricsAggregator::Insert(Interval* interval, uint32_t hash, const Key& key) {
  const uint32_t index = interval->size++;
  if ((index >> kChunkBits) == interval->chunks.size()) {
    if (free_chunks_.empty()) {
      interval->chunks.push_back(std::make_unique_for_overwrite<Entry[]>(size_t{1} << kChunkBits));
    } else {
      interval->chunks.push_back(std::move(free_chunks_.back()));
      free_chunks_.pop_back();
    }
  }
  Entry& e = interval->at(index);
  e.key = key;
  e.minute_index = 0;
  std::fill(std::begin(e.count), std::end(e.count), 0u);
  e.latency_sum_us = e.latency_max_us = 0;
  ++buckets_;
  IndexAdd(&interval->slots, Slot{hash, interval->size});
  return index;
}

void AppMetricsAggregator::Count(const Pending& p) {
  Interval* sec = p.sec;
  const Key& key = p.key;
  // One lookup per record: the 1 s entry remembers its 60 s entry (the 60 s lookup happens only
  // when a key first shows up in a second, i.e. in the order it did when both were looked up).
  const uint32_t found = Lookup(sec, p.hash, key);
  uint32_t index = found - 1;
  if (found == 0) {
    Interval* minute = sec->minute;
    // The minute's slot is the next miss: start it before adding to the second. (Prefetching
    // it for every record, with the second's slot, wastes it when the key is not new in the
    // second: about 9 records in 10 on the DNS capture.)
    __builtin_prefetch(&minute->slots[p.hash & (minute->slots.size() - 1)]);
    index = Insert(sec, p.hash, key);
    const uint32_t in_minute = Lookup(minute, p.hash, key);
    sec->at(index).minute_index = in_minute != 0 ? in_minute - 1 : Insert(minute, p.hash, key);
  }
  // Only the 1 s entry counts the record: its counters fold into its 60 s entry when the second
  // is emitted (EmitInterval), so a record touches one entry's counters, not two.
  Entry& e = sec->at(index);
  const auto bump = [sec, index, &e](Counter c) {
    if (__builtin_add_overflow(e.count[c], 1u, &e.count[c])) {
      sec->carries[index][c] += uint64_t{1} << 32;
    }
  };
  if (p.request) bump(kRequests);
  switch (p.status) {
    case common::v1::RESPONSE_STATUS_TIMEOUT:
      bump(kTimeouts);
      break;
    case common::v1::RESPONSE_STATUS_CLIENT_ERROR:
      bump(kClientErrors);
      break;
    case common::v1::RESPONSE_STATUS_SERVER_ERROR:
      bump(kServerErrors);
      break;
    default:
      break;
  }
  if (p.response) {
    bump(kResponses);  // and latency_count, always equal to it
    e.latency_sum_us += p.latency_us;
    e.latency_max_us = std::max(e.latency_max_us, p.latency_us);
  }
}

void AppMetricsAggregator::Drain() {
  for (; ring_size_ > 0; --ring_size_, ring_head_ = (ring_head_ + 1) & (kRing - 1)) {
    Count(ring_[ring_head_]);
  }
}

void AppMetricsAggregator::Add(const v1::L7RequestLog& rec) {
  const uint64_t t_s = std::max(rec.end_time_us(), rec.start_time_us()) / 1000000;
  const uint32_t second = static_cast<uint32_t>(t_s);
  Interval* sec = IntervalOf(0, kGranularities[0], second);
  if (sec->minute == nullptr) {
    const uint32_t g = kGranularities[1];
    sec->minute = IntervalOf(1, g, static_cast<uint32_t>(t_s / g * g));
  }
  Interval* minute = sec->minute;
  // The key: the addresses as integers, the rest as ids in the minute's dictionaries (small
  // and hot: a capture has few distinct services and endpoints per minute).
  Key key{rec.ip4_0(), rec.ip4_1(), 0, 0};
  const uint32_t header[5] = {rec.server_port(), rec.protocol(), rec.is_ipv4(),
                              static_cast<uint32_t>(rec.l7_protocol()),
                              static_cast<uint32_t>(rec.signal_source())};
  static_assert(sizeof(header) == kServiceHeader);
  uint64_t service_hash = Mix(0xcbf29ce484222325ULL, (uint64_t{header[0]} << 32) | header[1]);
  service_hash = Mix(service_hash, (uint64_t{header[2]} << 32) | header[3]);
  service_hash = Mix(service_hash, (uint64_t{header[4]} << 32) ^
                                       std::hash<std::string_view>()(rec.endpoint()));
  const bool ip6 = !rec.ip6_0().empty() || !rec.ip6_1().empty();
  uint64_t ip6_hash = 0;
  if (ip6) {
    // The length of the first address, then both.
    const auto len0 = static_cast<uint32_t>(rec.ip6_0().size());
    scratch_.assign(reinterpret_cast<const char*>(&len0), 4);
    scratch_.append(rec.ip6_0());
    ip6_hash = Mix(std::hash<std::string_view>()(scratch_),
                   std::hash<std::string_view>()(rec.ip6_1()));
  }
  // The hash of the key's bytes, not of its ids: it is known before the dictionary lookups,
  // so the home slot's cache miss overlaps them.
  const uint32_t hash = Fold32(Mix(Mix(service_hash, (uint64_t{key.ip4_0} << 32) | key.ip4_1),
                                   ip6_hash));
  __builtin_prefetch(&sec->slots[hash & (sec->slots.size() - 1)]);
  key.service_id = minute->services.Intern(
      std::string_view(reinterpret_cast<const char*>(header), kServiceHeader), rec.endpoint(),
      service_hash);
  if (ip6) key.ip6_id = 1 + minute->ip6.Intern(scratch_, rec.ip6_1(), ip6_hash);
  Pending* pending;
  if (ring_size_ == kRing) {
    Count(ring_[ring_head_]);
    pending = &ring_[ring_head_];
    ring_head_ = (ring_head_ + 1) & (kRing - 1);
  } else {
    pending = &ring_[(ring_head_ + ring_size_) & (kRing - 1)];
    ++ring_size_;
  }
  pending->sec = sec;
  pending->key = key;
  pending->hash = hash;
  pending->request = rec.request_length() >= 0;
  pending->status = rec.response_status();
  pending->response =
      pending->status != common::v1::RESPONSE_STATUS_TIMEOUT && rec.response_length() >= 0;
  pending->latency_us = rec.response_duration();
}

void AppMetricsAggregator::EmitInterval(Interval* interval) {
  buckets_ -= interval->size;
  if (sink_ == nullptr) return;
  Interval* minute = interval->minute;
  const Interval* dictionaries = minute != nullptr ? minute : interval;
  // Far enough ahead for a miss to complete, near enough for the line to still be in L1.
  constexpr uint32_t kPrefetchAhead = 8;
  for (uint32_t i = 0; i < interval->size; ++i) {
    if (minute != nullptr && i + kPrefetchAhead < interval->size) {
      // The minute entries the seconds fold into are in the minute's first-seen order, not
      // the second's: fetch them ahead (the seconds' own entries are read in order).
      __builtin_prefetch(&minute->at(interval->at(i + kPrefetchAhead).minute_index), 1);
    }
    const Entry& e = interval->at(i);
    uint64_t total[kCounters];
    if (interval->carries.empty()) {
      for (uint32_t c = 0; c < kCounters; ++c) total[c] = e.count[c];
    } else {
      for (uint32_t c = 0; c < kCounters; ++c) total[c] = interval->Total(i, c);
    }
    if (minute != nullptr) {
      // A 1 s interval: its 60 s interval is emitted no earlier than it is (Advance and
      // FlushAll emit granularity 1 first, and a minute ends no earlier than its seconds).
      Entry& m = minute->at(e.minute_index);
      uint64_t sum[kCounters];
      uint64_t high = 0;
      for (uint32_t c = 0; c < kCounters; ++c) {
        sum[c] = uint64_t{m.count[c]} + total[c];
        m.count[c] = static_cast<uint32_t>(sum[c]);
        high |= sum[c] >> 32;
      }
      if (high != 0) {  // a carry out of the minute's 32-bit counters
        auto& carry = minute->carries[e.minute_index];
        for (uint32_t c = 0; c < kCounters; ++c) carry[c] += sum[c] & ~uint64_t{0xffffffff};
      }
      m.latency_sum_us += e.latency_sum_us;
      m.latency_max_us = std::max(m.latency_max_us, e.latency_max_us);
    }
    const std::string_view service = dictionaries->services.at(e.key.service_id);
    v1::ApplicationMetric m;
    m.set_time(interval->time);
    m.set_granularity_s(interval->granularity_s);
    m.set_signal_source(static_cast<common::v1::SignalSource>(ReadU32(service, kSignalSource)));
    m.set_is_ipv4(ReadU32(service, kIsIpv4));
    m.set_ip4_0(e.key.ip4_0);
    m.set_ip4_1(e.key.ip4_1);
    if (e.key.ip6_id != 0) {
      const std::string_view ip6 = dictionaries->ip6.at(e.key.ip6_id - 1);
      const uint32_t len0 = ReadU32(ip6, 0);
      if (len0 != 0) m.mutable_ip6_0()->assign(ip6.data() + 4, len0);
      if (ip6.size() > 4 + len0) m.mutable_ip6_1()->assign(ip6.data() + 4 + len0, ip6.size() - 4 - len0);
    }
    m.set_server_port(ReadU32(service, kServerPort));
    m.set_protocol(ReadU32(service, kProtocol));
    m.set_l7_protocol(static_cast<common::v1::L7Protocol>(ReadU32(service, kL7Protocol)));
    // Assigned in place: set_endpoint(data, size) would copy through a temporary string.
    m.mutable_endpoint()->assign(service.data() + kServiceHeader, service.size() - kServiceHeader);
    m.set_requests(total[kRequests]);
    m.set_responses(total[kResponses]);
    m.set_client_errors(total[kClientErrors]);
    m.set_server_errors(total[kServerErrors]);
    m.set_timeouts(total[kTimeouts]);
    m.set_latency_sum_us(e.latency_sum_us);
    m.set_latency_count(total[kResponses]);
    m.set_latency_max_us(e.latency_max_us);
    sink_->Emit(std::move(m));
  }
}

void AppMetricsAggregator::Recycle(Interval* interval) {
  for (Chunk& chunk : interval->chunks) {
    if (free_chunks_.size() == kMaxFreeChunks) break;
    free_chunks_.push_back(std::move(chunk));
  }
  if (free_slots_.size() < kMaxFreeSlotTables) free_slots_.push_back(std::move(interval->slots));
}

void AppMetricsAggregator::Advance(uint64_t now_ns) {
  Drain();
  // Intervals are ordered by granularity, then start: scan each granularity's closed prefix.
  for (auto it = intervals_.begin(); it != intervals_.end();) {
    const auto [g, time] = it->first;
    const uint64_t end_ns = (static_cast<uint64_t>(time) + g) * 1000000000ULL;
    if (end_ns + delay_ns_ <= now_ns) {
      EmitInterval(&it->second);
      Recycle(&it->second);
      it = intervals_.erase(it);
      cached_[0] = cached_[1] = CachedInterval{};
    } else {
      it = intervals_.lower_bound({g + 1, 0});  // later intervals of g are open too
    }
  }
}

void AppMetricsAggregator::FlushAll() {
  Drain();
  for (auto& [key, interval] : intervals_) {
    EmitInterval(&interval);
    Recycle(&interval);
  }
  intervals_.clear();
  cached_[0] = cached_[1] = CachedInterval{};
}

}  // namespace sonde::agent::protocols
