// ConnectionTable: the L7 analyzer's one table of flows by id. An entry is open (it points at
// the caller's connection object), dormant (an open connection whose parser held nothing, kept
// as the few bytes needed to resume it) or closed (only its protocol, so ProtocolOf answers after
// OnClose). One table for all three lets a chunk of a live connection cost one probe, and a new,
// resumed, parked or closed flow one probe sequence, with no allocation per flow (a node-based
// map of open connections beside a table of closed ones cost a node and two lookups per flow).
// Open addressing in 24-byte slots, linear probing, no tombstones (entries leave only by
// EraseClosedUpTo, which rebuilds).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <sys/mman.h>

#include "common/base/check.h"
#include "sonde/common/v1/common.pb.h"

namespace sonde::agent::protocols {

template <typename T>
class ConnectionTable {
 public:
  enum class State : uint8_t { kEmpty, kClosed, kDormant, kOpen };
  struct Entry {
    uint64_t flow_id;
    union {
      uint64_t ns;  // closed: when it closed; dormant: its last activity
      T* open;      // open: the caller's connection (not owned)
    };
    common::v1::L7Protocol protocol;  // closed and dormant
    uint16_t resume;                  // dormant: the caller's description of how to resume
    State state;
  };

  ConnectionTable() { Allocate(kMinSlots); }
  ~ConnectionTable() { Free(slots_, capacity_); }
  ConnectionTable(const ConnectionTable&) = delete;
  ConnectionTable& operator=(const ConnectionTable&) = delete;

  size_t size() const { return size_; }
  size_t open() const { return open_; }
  size_t dormant() const { return dormant_; }
  size_t capacity() const { return capacity_; }

  // The entry of `flow_id`, or nullptr. Entry pointers stay valid until the next call that adds
  // an entry (Open on a new id) or EraseClosedUpTo.
  Entry* Find(uint64_t flow_id) {
    for (size_t i = Home(flow_id);; i = (i + 1) & mask_) {
      Entry& e = slots_[i];
      if (e.state == State::kEmpty) return nullptr;
      if (e.flow_id == flow_id) return &e;
    }
  }
  const Entry* Find(uint64_t flow_id) const {
    return const_cast<ConnectionTable*>(this)->Find(flow_id);
  }
  // The entry of `flow_id`, or the empty slot where Open would add it (state kEmpty): a miss
  // followed by an insertion costs one probe sequence.
  Entry* FindOrSlot(uint64_t flow_id) {
    for (size_t i = Home(flow_id);; i = (i + 1) & mask_) {
      Entry& e = slots_[i];
      if (e.state == State::kEmpty || e.flow_id == flow_id) return &e;
    }
  }

  // `e` (from FindOrSlot(flow_id); empty, closed or dormant) becomes open with `value`.
  // Invalidates entry pointers when `e` was empty (the table may grow).
  void Open(Entry* e, uint64_t flow_id, T* value) {
    const State was = e->state;
    e->flow_id = flow_id;
    e->open = value;
    e->state = State::kOpen;
    ++open_;
    if (was == State::kDormant) --dormant_;
    if (was != State::kEmpty) return;
    ++size_;
    const size_t probes = (static_cast<size_t>(e - slots_) - Home(flow_id)) & mask_;
    // Ids spanning more than the table wrap onto older ones and make long runs: a long probe
    // doubles the table (ids then wrap half as often), as does a half-full one. Not below 1/8
    // full: ids landing inside a long run of sequential ones (not wrapped ones) would otherwise
    // double it without end; this bounds it to 16 slots per entry.
    if (size_ * 2 > capacity_ || (probes >= kLongProbe && size_ * 8 > capacity_)) {
      Resize(capacity_ * 2);
    }
  }
  // Open `e` becomes dormant: last active at `last_ns`, `resume` != 0.
  void Park(Entry* e, common::v1::L7Protocol protocol, uint64_t last_ns, uint16_t resume) {
    if (e->state == State::kOpen) --open_;
    if (e->state != State::kDormant) ++dormant_;
    e->ns = last_ns;
    e->protocol = protocol;
    e->resume = resume;
    e->state = State::kDormant;
  }
  // Open or dormant `e` becomes closed at `closed_ns`.
  void Close(Entry* e, common::v1::L7Protocol protocol, uint64_t closed_ns) {
    if (e->state == State::kOpen) --open_;
    if (e->state == State::kDormant) --dormant_;
    e->ns = closed_ns;
    e->protocol = protocol;
    e->resume = 0;
    e->state = State::kClosed;
  }

  // Every dormant entry last active at or before `idle_up_to_ns` becomes closed at `closed_ns`.
  void CloseDormantUpTo(uint64_t idle_up_to_ns, uint64_t closed_ns) {
    if (dormant_ == 0) return;
    for (size_t i = 0; i < capacity_; ++i) {
      Entry& e = slots_[i];
      if (e.state == State::kDormant && e.ns <= idle_up_to_ns) Close(&e, e.protocol, closed_ns);
    }
  }

  // Drops every closed entry closed at or before `limit_ns` (open and dormant ones stay).
  void EraseClosedUpTo(uint64_t limit_ns) {
    auto keep_entry = [limit_ns](const Entry& e) {
      return e.state == State::kOpen || e.state == State::kDormant ||
             (e.state == State::kClosed && e.ns > limit_ns);
    };
    size_t keep = 0;
    for (size_t i = 0; i < capacity_; ++i) keep += keep_entry(slots_[i]) ? 1 : 0;
    if (keep == size_) return;
    size_t n = kMinSlots;
    while (n < 2 * keep) n *= 2;
    // Shrunk only when mostly empty: a table that grew for ids spanning more than it (long
    // probes) would otherwise shrink and grow again at every sweep.
    if (n < capacity_ && keep * 8 > capacity_) n = capacity_;
    Rebuild(n, keep_entry);
  }

 private:
  static constexpr size_t kMinSlots = 64;
  static constexpr size_t kLongProbe = 32;
  // Tables at least this large are allocated 2 MiB-aligned and offered to the kernel as huge
  // pages: a table of a million flows then faults in a dozen pages instead of thousands.
  static constexpr size_t kHugePageBytes = size_t{2} << 20;

  size_t Home(uint64_t flow_id) const {
    // Flow ids are sequence numbers (with a worker id on top): the low half is used as it is,
    // so connections opened one after another sit in neighbouring slots (lookups and closes
    // come roughly in id order and then hit cached lines instead of a random line each); the
    // high half is mixed in so that several workers' id ranges do not pile up in one run.
    const uint64_t high = (flow_id >> 32) * 0x9E3779B97F4A7C15ULL;
    return static_cast<size_t>(static_cast<uint32_t>(flow_id) + (high ^ (high >> 29))) & mask_;
  }

  void Allocate(size_t n) {
    size_t bytes = n * sizeof(Entry);
    void* p = nullptr;
    if (bytes >= kHugePageBytes) {
      bytes = (bytes + kHugePageBytes - 1) & ~(kHugePageBytes - 1);  // whole huge pages
      p = std::aligned_alloc(kHugePageBytes, bytes);
      if (p != nullptr) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: failure is harmless
    } else {
      p = std::malloc(bytes);
    }
    SONDE_CHECK(p != nullptr);
    slots_ = static_cast<Entry*>(p);
    for (size_t i = 0; i < n; ++i) slots_[i].state = State::kEmpty;
    capacity_ = n;
    mask_ = n - 1;
    size_ = 0;
  }
  static void Free(Entry* slots, size_t /*n*/) { std::free(slots); }

  void Resize(size_t n) {
    Rebuild(n, [](const Entry& e) { return e.state != State::kEmpty; });
  }
  template <typename Keep>
  void Rebuild(size_t n, Keep keep) {
    Entry* old = slots_;
    const size_t old_n = capacity_;
    Allocate(n);
    open_ = 0;
    dormant_ = 0;
    for (size_t j = 0; j < old_n; ++j) {
      const Entry& e = old[j];
      if (!keep(e)) continue;
      size_t i = Home(e.flow_id);
      while (slots_[i].state != State::kEmpty) i = (i + 1) & mask_;
      slots_[i] = e;
      ++size_;
      if (e.state == State::kOpen) ++open_;
      if (e.state == State::kDormant) ++dormant_;
    }
    Free(old, old_n);
  }

  Entry* slots_ = nullptr;
  size_t capacity_ = 0;
  size_t mask_ = 0;
  size_t size_ = 0;
  size_t open_ = 0;
  size_t dormant_ = 0;
};

}  // namespace sonde::agent::protocols
