// Application RED metrics: aggregates L7 records per (client, server, server port, l7 protocol,
// endpoint) into 1 s and 60 s intervals and emits v1::ApplicationMetric when an interval closes.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
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

  // Buckets of the open intervals. (Counts the records still in the prefetch ring first: the
  // cast is sound, the aggregator is never a const object while records are added.)
  size_t open_intervals() const {
    const_cast<AppMetricsAggregator*>(this)->Drain();
    return buckets_;
  }
  // Bytes held by the key dictionaries of the open minutes (freed when a minute is emitted).
  size_t dictionary_bytes() const;

 private:
  friend class AppMetricsAggregatorTestPeer;

  // A slot of the open-addressing indexes here (an interval's entries, a dictionary's items):
  // linear probing, power-of-two size, at most half full. 8 bytes, so the index of a busy
  // interval stays small enough for the caches; 32 bits of the hash, enough to regrow the index
  // without reading what it indexes.
  struct Slot {
    uint32_t hash = 0;    // its low bits pick the home slot
    uint32_t plus_1 = 0;  // 1 + the entry's index or the item's id; 0: empty
  };
  // Indexes the `count`-th item (s.plus_1 == count, items counted with it), doubling the index
  // first when it would be more than half full. Inline: new keys add to an interval's index on
  // the record path (out of line it cost +0.26% instructions on the Redis capture).
  static void IndexAdd(std::vector<Slot>* slots, Slot s) {
    const auto place = [](Slot* table, size_t mask, Slot x) {
      size_t j = x.hash & mask;
      while (table[j].plus_1 != 0) j = (j + 1) & mask;
      table[j] = x;
    };
    if (size_t{s.plus_1} * 2 > slots->size()) {
      std::vector<Slot> bigger(slots->size() * 2);
      for (const Slot& old : *slots) {
        if (old.plus_1 != 0) place(bigger.data(), bigger.size() - 1, old);
      }
      slots->swap(bigger);
    }
    place(slots->data(), slots->size() - 1, s);
  }

  // Interned byte strings: id -> bytes, and bytes -> id through an open-addressing index. Ids
  // are dense from 0 in first-seen order. Owned by one 60 s interval and freed with it, so a
  // long-running agent holds only the keys of the minutes still open.
  class Dictionary {
   public:
    // The id of the item `head` + `tail` (two parts, so callers need not join them), added
    // when new; `hash64` is their hash. Inline, so a fixed-size head is compared without a call.
    uint32_t Intern(std::string_view head, std::string_view tail, uint64_t hash64) {
      const auto hash = static_cast<uint32_t>(hash64 ^ (hash64 >> 32));
      if (!slots_.empty()) {
        const size_t mask = slots_.size() - 1;
        // Bounded: the index is at most half full, so an empty slot ends every probe.
        for (size_t i = hash & mask;; i = (i + 1) & mask) {
          const Slot& slot = slots_[i];
          if (slot.plus_1 == 0) break;
          if (slot.hash != hash) continue;
          const Item& item = items_[slot.plus_1 - 1];
          const char* bytes = arena_.data() + item.offset;
          if (item.size == head.size() + tail.size() &&
              std::memcmp(bytes, head.data(), head.size()) == 0 &&
              (tail.empty() || std::memcmp(bytes + head.size(), tail.data(), tail.size()) == 0)) {
            return slot.plus_1 - 1;
          }
        }
      }
      return Insert(head, tail, hash);
    }
    std::string_view at(uint32_t id) const {
      return std::string_view(arena_).substr(items_[id].offset, items_[id].size);
    }
    size_t bytes() const {
      return arena_.capacity() + items_.capacity() * sizeof(Item) +
             slots_.capacity() * sizeof(Slot);
    }

   private:
    uint32_t Insert(std::string_view head, std::string_view tail, uint32_t hash);
    struct Item {
      size_t offset = 0, size = 0;  // in arena_
    };
    std::string arena_;  // every item's bytes, back to back
    std::vector<Item> items_;
    std::vector<Slot> slots_;
  };

  // Counters an entry keeps (latency_count always equals responses: both count the records
  // with a response, so it needs no counter of its own).
  enum Counter : uint32_t { kRequests, kResponses, kClientErrors, kServerErrors, kTimeouts };
  static constexpr uint32_t kCounters = 5;

  // One bucket in one cache line: an integer key (the minute's dictionary ids stand for the
  // endpoint and the other service fields, and for the IPv6 addresses), then the counters.
  // Counters are 32 bits; the rare carry out of them goes to the interval's `carries` map, so
  // every emitted value is exact. No member initializers: chunks of them are allocated without
  // zeroing (every field is written when an entry is created).
  struct Key {
    uint32_t ip4_0, ip4_1;
    uint32_t service_id;  // in the minute's `services`
    uint32_t ip6_id;      // 0: no IPv6 addresses; else 1 + id in the minute's `ip6`
  };
  struct alignas(64) Entry {
    Key key;
    // 1 s entries: index of the same key's entry in the enclosing 60 s interval. Records are
    // counted in 1 s entries only; a 60 s entry gets the counters of its 1 s entries when those
    // are emitted, which is always before it is.
    uint32_t minute_index;
    uint32_t count[kCounters];
    uint64_t latency_sum_us, latency_max_us;
  };
  static_assert(sizeof(Entry) == 64);
  // Entries in chunks that never move (growing a vector of them moved every entry).
  static constexpr uint32_t kChunkBits = 8;
  using Chunk = std::unique_ptr<Entry[]>;
  // One interval of one granularity. Entries are emitted in first-seen order, which is
  // deterministic. `slots` is an open-addressing index (see Slot) over the entries: the key is
  // compared against the stored entry itself.
  struct Interval {
    uint32_t granularity_s = 0;
    uint32_t time = 0;
    uint32_t size = 0;  // entries
    std::vector<Slot> slots;
    std::vector<Chunk> chunks;
    Entry& at(uint32_t i) { return chunks[i >> kChunkBits][i & ((1u << kChunkBits) - 1)]; }
    // entry index -> what carried out of its 32-bit counters (almost always empty).
    std::unordered_map<uint32_t, std::array<uint64_t, kCounters>> carries;
    uint64_t Total(uint32_t index, uint32_t counter);
    // 1 s intervals: the 60 s interval holding them. It closes no earlier than they do, so it
    // lives (std::map nodes do not move) as long as they do.
    Interval* minute = nullptr;
    // 60 s intervals: the dictionaries their keys' ids (and their seconds' ids) refer to.
    Dictionary services;  // server port, protocols, signal source and endpoint
    Dictionary ip6;       // both IPv6 addresses
  };

  // 1 + the index of the entry of `key` in `interval`, or 0.
  // `hash` is of the key's contents (what the ids stand for), so one hash serves both
  // granularities and is known before the dictionary lookups. Inline: every record does one.
  static uint32_t Lookup(Interval* interval, uint32_t hash, const Key& key) {
    const size_t mask = interval->slots.size() - 1;
    // Bounded: the table is at most half full, so an empty slot ends every probe.
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const Slot& slot = interval->slots[i];
      if (slot.plus_1 == 0) return 0;
      if (slot.hash != hash) continue;
      const Key& e = interval->at(slot.plus_1 - 1).key;
      if (e.ip4_0 == key.ip4_0 && e.ip4_1 == key.ip4_1 && e.service_id == key.service_id &&
          e.ip6_id == key.ip6_id) {
        return slot.plus_1;
      }
    }
  }
  // Adds `key` (not in `interval`) with zero counters; returns its index.
  uint32_t Insert(Interval* interval, uint32_t hash, const Key& key);
  Interval* IntervalOf(size_t g_index, uint32_t granularity_s, uint32_t time);
  void EmitInterval(Interval* interval);
  // Keeps the memory of an emitted interval for the next ones (bounded).
  void Recycle(Interval* interval);

  // A record waiting in the ring: its key, where it goes, and what it counts. Add issues the
  // prefetch of the record's home slot and counts the record kRing records later, when that
  // miss has completed (a slot of a busy second is a random line of a ~1 MB index). Records are
  // counted in the order they were added, and Advance, FlushAll and open_intervals drain the
  // ring first, so what they see is what they would see without it.
  struct Pending {
    Interval* sec;
    Key key;
    uint32_t hash;
    bool request, response;
    common::v1::ResponseStatus status;
    uint64_t latency_us;
  };
  static constexpr uint32_t kRing = 8;  // a power of two
  void Count(const Pending& p);
  void Drain();  // counts every record in the ring

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
  // Storage of emitted intervals, reused so that a busy interval does not fault in fresh pages.
  std::vector<Chunk> free_chunks_;
  std::vector<std::vector<Slot>> free_slots_;
  std::string scratch_;  // the bytes of a record's IPv6 dictionary key
  std::array<Pending, kRing> ring_;
  uint32_t ring_head_ = 0, ring_size_ = 0;
};

}  // namespace sonde::agent::protocols
