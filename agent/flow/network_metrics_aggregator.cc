// Interval bucketing of network counters.
#include "agent/flow/network_metrics_aggregator.h"

#include <cstring>
#include <string>

namespace sonde::agent::flow {

void NetworkCounters::Add(const NetworkCounters& o) {
  new_flows += o.new_flows;
  closed_flows += o.closed_flows;
  packets_0 += o.packets_0;
  packets_1 += o.packets_1;
  bytes_0 += o.bytes_0;
  bytes_1 += o.bytes_1;
  rtt_sum_us += o.rtt_sum_us;
  rtt_count += o.rtt_count;
  if (o.rtt_max_us > rtt_max_us) rtt_max_us = o.rtt_max_us;
  retrans_0 += o.retrans_0;
  retrans_1 += o.retrans_1;
  zero_win_0 += o.zero_win_0;
  zero_win_1 += o.zero_win_1;
  syn_unanswered += o.syn_unanswered;
  rst_on_syn += o.rst_on_syn;
  rst_0 += o.rst_0;
  rst_1 += o.rst_1;
  timeouts += o.timeouts;
}

uint64_t NetworkKeyHash::operator()(const NetworkKey& k) const {
  __extension__ using U128 = unsigned __int128;
  auto mix = [](uint64_t a, uint64_t b) {
    U128 r = static_cast<U128>(a) * b;
    return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
  };
  uint64_t w[4];
  std::memcpy(w, k.client_ip.bytes().data(), 16);
  std::memcpy(w + 2, k.server_ip.bytes().data(), 16);
  uint64_t h = mix(w[0] ^ 0x243F6A8885A308D3ull, w[1] ^ 0x13198A2E03707344ull);
  h = mix(h ^ w[2], w[3] ^ 0xA4093822299F31D0ull);
  return mix(h ^ (static_cast<uint64_t>(k.server_port) << 8 | k.protocol), 0x082EFA98EC4E6C89ull);
}

NetworkCounters& NetworkMetricsAggregator::Bucket::Find(const NetworkKey& key, uint64_t hash,
                                                        uint32_t* index) {
  uint32_t tag = static_cast<uint32_t>(hash);
  if ((size_t{size} + 1) * 2 > slots.size()) {
    std::vector<Slot> old;
    old.swap(slots);
    const size_t n = old.empty() ? 64 : old.size() * 2;
    slots.assign(n, Slot{});
    for (const Slot& s : old) {  // in old slot order; any order gives the same lookups
      if (s.row == 0) continue;
      size_t i = s.tag & (n - 1);
      while (slots[i].row != 0) i = (i + 1) & (n - 1);
      slots[i] = s;
    }
  }
  size_t mask = slots.size() - 1;
  size_t i = tag & mask;
  for (; slots[i].row != 0; i = (i + 1) & mask) {
    if (slots[i].tag == tag) {
      Row& r = at(slots[i].row - 1);
      if (r.first == key) {
        *index = slots[i].row - 1;
        return r.second;
      }
    }
  }
  *index = size++;
  const uint32_t chunk = static_cast<uint32_t>(std::bit_width((*index >> kFirstChunkBits) + 1)) - 1;
  if (chunk == chunks.size()) {
    // Default-initialised: every Row field has an initializer, and value-initialising a chunk
    // (make_unique<Row[]>) would zero it all first.
    chunks.push_back(std::make_unique_for_overwrite<Row[]>(size_t{1} << (kFirstChunkBits + chunk)));
  }
  Row& r = at(*index);
  r.first = key;
  slots[i] = Slot{tag, size};
  return r.second;
}

void NetworkMetricsAggregator::Add(const NetworkKey& key, uint64_t timestamp_ns,
                                   const NetworkCounters& delta, NetworkRowHint* hint) {
  uint32_t t_s = static_cast<uint32_t>(timestamp_ns / 1'000'000'000ull);
  uint64_t hash = 0;
  bool hashed = false;
  Row* second_row = nullptr;  // the key's 1 s row, once level 0 is done
  for (size_t l = 0; l < 2; ++l) {
    Level& level = levels_[l];
    uint32_t start = t_s - t_s % level.granularity_s;
    // Late events (time went backwards across sources) land in the oldest open interval.
    if (start < level.flushed_until_s) start = level.flushed_until_s;
    if (level.last == nullptr || level.last_start_s != start) {
      Bucket& b = level.buckets[start];
      if (b.slots.empty()) {  // new: an index for as many rows as the last emitted interval
        size_t n = 64;
        while (n < 2 * size_t{level.last_emitted_rows} + 2) n *= 2;
        b.slots.assign(n, Bucket::Slot{});
      }
      level.last = &b;
      level.last_start_s = start;
    }
    Bucket& b = *level.last;
    if (hint != nullptr && hint->start_s[l] == start && hint->row_plus_1[l] != 0 &&
        hint->row_plus_1[l] <= b.size) {
      Row& r = b.at(hint->row_plus_1[l] - 1);
      if (r.first == key) {
        r.second.Add(delta);
        if (l == 0) second_row = &r;
        continue;
      }
    }
    if (l == 1 && second_row != nullptr && second_row->minute_start_s == start &&
        second_row->minute_row_plus_1 != 0 && second_row->minute_row_plus_1 <= b.size) {
      Row& r = b.at(second_row->minute_row_plus_1 - 1);
      if (r.first == key) {
        r.second.Add(delta);
        if (hint != nullptr) {
          hint->start_s[l] = start;
          hint->row_plus_1[l] = second_row->minute_row_plus_1;
        }
        continue;
      }
    }
    if (!hashed) {
      hash = NetworkKeyHash()(key);
      hashed = true;
    }
    uint32_t index = 0;
    b.Find(key, hash, &index).Add(delta);
    if (l == 0) {
      second_row = &b.at(index);
    } else if (second_row != nullptr) {
      second_row->minute_start_s = start;
      second_row->minute_row_plus_1 = index + 1;
    }
    if (hint != nullptr) {
      hint->start_s[l] = start;
      hint->row_plus_1[l] = index + 1;
    }
  }
}

void NetworkMetricsAggregator::EmitBucket(uint32_t start_s, uint32_t granularity_s,
                                          const Bucket& bucket) {
  if (sink_ == nullptr) return;
  for (uint32_t i = 0; i < bucket.size; ++i) {
    const Row& row = bucket.at(i);
    const NetworkKey& key = row.first;
    const NetworkCounters& c = row.second;
    v1::NetworkMetric m;
    m.set_time(start_s);
    m.set_granularity_s(granularity_s);
    bool v4 = key.client_ip.is_v4() && key.server_ip.is_v4();
    m.set_is_ipv4(v4 ? 1 : 0);
    if (v4) {
      m.set_ip4_0(key.client_ip.v4());
      m.set_ip4_1(key.server_ip.v4());
    } else {
      m.set_ip6_0(std::string(key.client_ip.bytes().begin(), key.client_ip.bytes().end()));
      m.set_ip6_1(std::string(key.server_ip.bytes().begin(), key.server_ip.bytes().end()));
    }
    m.set_server_port(key.server_port);
    m.set_protocol(key.protocol);
    m.set_new_flows(c.new_flows);
    m.set_closed_flows(c.closed_flows);
    m.set_packets_0(c.packets_0);
    m.set_packets_1(c.packets_1);
    m.set_bytes_0(c.bytes_0);
    m.set_bytes_1(c.bytes_1);
    m.set_rtt_sum_us(c.rtt_sum_us);
    m.set_rtt_count(c.rtt_count);
    m.set_rtt_max_us(c.rtt_max_us);
    m.set_retrans_0(c.retrans_0);
    m.set_retrans_1(c.retrans_1);
    m.set_zero_win_0(c.zero_win_0);
    m.set_zero_win_1(c.zero_win_1);
    m.set_syn_unanswered(c.syn_unanswered);
    m.set_rst_on_syn(c.rst_on_syn);
    m.set_rst_0(c.rst_0);
    m.set_rst_1(c.rst_1);
    m.set_timeouts(c.timeouts);
    sink_->Emit(std::move(m));
    ++rows_emitted_;
  }
}

void NetworkMetricsAggregator::Advance(uint64_t now_ns, uint64_t lateness_ns) {
  uint64_t horizon_ns = now_ns > lateness_ns ? now_ns - lateness_ns : 0;
  uint32_t horizon_s = static_cast<uint32_t>(horizon_ns / 1'000'000'000ull);
  for (Level& level : levels_) {
    while (!level.buckets.empty()) {
      auto it = level.buckets.begin();
      uint32_t end_s = it->first + level.granularity_s;
      if (end_s > horizon_s) break;
      EmitBucket(it->first, level.granularity_s, it->second);
      level.last_emitted_rows = it->second.size;
      level.flushed_until_s = end_s;
      if (level.last == &it->second) level.last = nullptr;
      level.buckets.erase(it);
    }
  }
}

void NetworkMetricsAggregator::FlushAll() {
  for (Level& level : levels_) {
    for (const auto& [start, bucket] : level.buckets) {
      EmitBucket(start, level.granularity_s, bucket);
      level.flushed_until_s = start + level.granularity_s;
    }
    level.buckets.clear();
    level.last = nullptr;
  }
}

}  // namespace sonde::agent::flow
