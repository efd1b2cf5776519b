// ClosedProtocols: flow id -> L7 protocol of recently closed connections, so ProtocolOf still
// answers after OnClose (flow tracking asks right after, when it writes the L4 row). An open
// addressing table of 24-byte slots (linear probing, backward-shift erase): no allocation per
// closed connection, which a node-based map made one of the larger per-connection costs.
// It also holds "dormant" connections: open ones whose parser holds nothing (a DNS flow after
// its answer), kept as the few bytes needed to resume them (`resume` != 0, opaque here) instead
// of a whole connection object; they never expire with EraseClosedUpTo.
#pragma once

#include <cstdint>
#include <vector>

#include "sonde/common/v1/common.pb.h"

namespace sonde::agent::protocols {

class ClosedProtocols {
 public:
  ClosedProtocols() { slots_.resize(kMinSlots); }

  size_t size() const { return size_; }

  size_t dormant() const { return dormant_; }

  // Sets (or replaces) the entry of `flow_id` as closed at `closed_ns`.
  void Put(uint64_t flow_id, common::v1::L7Protocol protocol, uint64_t closed_ns) {
    PutEntry(flow_id, protocol, closed_ns, 0);
  }
  // Sets (or replaces) the entry of `flow_id` as dormant, last active at `last_ns`; `resume`
  // (non-zero) is the caller's description of how to resume it.
  void PutDormant(uint64_t flow_id, common::v1::L7Protocol protocol, uint64_t last_ns,
                  uint16_t resume) {
    PutEntry(flow_id, protocol, last_ns, resume);
  }

  // The `resume` value of a dormant `flow_id` (its protocol and last activity in *protocol and
  // *last_ns), or 0 when the flow is absent or closed.
  uint16_t Dormant(uint64_t flow_id, common::v1::L7Protocol* protocol, uint64_t* last_ns) const {
    if (dormant_ == 0) return 0;
    for (size_t i = Home(flow_id);; i = (i + 1) & mask()) {
      const Slot& s = slots_[i];
      if (!s.used) return 0;
      if (s.flow_id == flow_id) {
        *protocol = s.protocol;
        *last_ns = s.ns;
        return s.resume;
      }
    }
  }

  // A dormant `flow_id` becomes closed at `closed_ns` (true); anything else is left as it is
  // (false).
  bool CloseDormant(uint64_t flow_id, uint64_t closed_ns) {
    if (dormant_ == 0) return false;
    for (size_t i = Home(flow_id);; i = (i + 1) & mask()) {
      Slot& s = slots_[i];
      if (!s.used) return false;
      if (s.flow_id == flow_id) {
        if (s.resume != 0) {
          s.resume = 0;
          s.ns = closed_ns;
          --dormant_;
          return true;
        }
        return false;
      }
    }
  }

  // Every dormant entry last active at or before `idle_up_to_ns` becomes closed at `closed_ns`.
  void CloseDormantUpTo(uint64_t idle_up_to_ns, uint64_t closed_ns) {
    if (dormant_ == 0) return;
    for (Slot& s : slots_) {
      if (s.used && s.resume != 0 && s.ns <= idle_up_to_ns) {
        s.resume = 0;
        s.ns = closed_ns;
        --dormant_;
      }
    }
  }

  // The protocol of `flow_id`, or nullptr when it is not here.
  const common::v1::L7Protocol* Find(uint64_t flow_id) const {
    for (size_t i = Home(flow_id);; i = (i + 1) & mask()) {
      const Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.flow_id == flow_id) return &s.protocol;
    }
  }

  // Removes the entry of `flow_id` (closed or dormant).

  void Erase(uint64_t flow_id) {
    if (size_ == 0) return;
    size_t i = Home(flow_id);
    for (;; i = (i + 1) & mask()) {
      if (!slots_[i].used) return;
      if (slots_[i].flow_id == flow_id) break;
    }
    if (slots_[i].resume != 0) --dormant_;
    // Backward-shift deletion keeps every probe sequence unbroken without tombstones.
    for (size_t j = (i + 1) & mask();; j = (j + 1) & mask()) {
      if (!slots_[j].used) break;
      const size_t home = Home(slots_[j].flow_id);
      if (((j - home) & mask()) >= ((j - i) & mask())) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{};
    --size_;
  }

  // Drops every closed entry closed at or before `limit_ns` (dormant ones stay).
  void EraseClosedUpTo(uint64_t limit_ns) {
    auto keep_slot = [limit_ns](const Slot& s) { return s.used && (s.resume != 0 || s.ns > limit_ns); };
    size_t keep = 0;
    for (const Slot& s : slots_) keep += keep_slot(s) ? 1 : 0;
    if (keep == size_) return;
    size_t n = kMinSlots;
    while (n < 2 * keep) n *= 2;
    // Shrunk only when mostly empty: a table that grew for ids spanning more than it (long
    // probes) would otherwise shrink and grow again at every sweep.
    if (n < slots_.size() && keep * 8 > slots_.size()) n = slots_.size();
    std::vector<Slot> old(n);
    old.swap(slots_);
    size_ = 0;
    for (const Slot& s : old) {
      if (keep_slot(s)) Insert(s);
    }
  }

 private:
  static constexpr size_t kMinSlots = 64;
  // An insert that probed this many slots doubles the table (ids then wrap half as often).
  static constexpr size_t kLongProbe = 32;
  struct Slot {
    uint64_t flow_id = 0;
    uint64_t ns = 0;  // closed: when it closed; dormant: its last activity
    common::v1::L7Protocol protocol = common::v1::L7_PROTOCOL_UNKNOWN;
    uint16_t resume = 0;  // 0: closed
    bool used = false;
  };

  void PutEntry(uint64_t flow_id, common::v1::L7Protocol protocol, uint64_t ns, uint16_t resume) {
    if ((size_ + 1) * 2 > slots_.size()) Resize(slots_.size() * 2);
    size_t probes = 0;
    for (size_t i = Home(flow_id);; i = (i + 1) & mask(), ++probes) {
      Slot& s = slots_[i];
      if (!s.used) {
        s = Slot{flow_id, ns, protocol, resume, true};
        ++size_;
        if (resume != 0) ++dormant_;
        if (probes >= kLongProbe) Resize(slots_.size() * 2);
        return;
      }
      if (s.flow_id == flow_id) {
        if (s.resume != 0) --dormant_;
        if (resume != 0) ++dormant_;
        s.protocol = protocol;
        s.ns = ns;
        s.resume = resume;
        return;
      }
    }
  }

  size_t mask() const { return slots_.size() - 1; }
  size_t Home(uint64_t flow_id) const {
    // Flow ids are sequence numbers (with a worker id on top): the low half is used as it is,
    // so connections opened one after another sit in neighbouring slots (lookups and closes
    // come roughly in id order and then hit cached lines instead of a random line each); the
    // high half is mixed in so that several workers' id ranges do not pile up in one run.
    // Retained ids spanning more than the table wrap onto older ones and make long runs:
    // PutEntry doubles the table when it meets one (see kLongProbe).
    const uint64_t high = (flow_id >> 32) * 0x9E3779B97F4A7C15ULL;
    return static_cast<size_t>(static_cast<uint32_t>(flow_id) + (high ^ (high >> 29))) & mask();
  }
  void Insert(const Slot& s) {
    size_t i = Home(s.flow_id);
    while (slots_[i].used) i = (i + 1) & mask();
    slots_[i] = s;
    ++size_;
  }
  void Resize(size_t n) {
    std::vector<Slot> old(n);
    old.swap(slots_);
    size_ = 0;
    for (const Slot& s : old) {
      if (s.used) Insert(s);
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
  size_t dormant_ = 0;
};

}  // namespace sonde::agent::protocols
