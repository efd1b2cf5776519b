// ClosedProtocols: flow id -> L7 protocol of recently closed connections, so ProtocolOf still
// answers after OnClose (flow tracking asks right after, when it writes the L4 row). An open
// addressing table of 24-byte slots (linear probing, backward-shift erase): no allocation per
// closed connection, which a node-based map made one of the larger per-connection costs.
#pragma once

#include <cstdint>
#include <vector>

#include "sonde/common/v1/common.pb.h"

namespace sonde::agent::protocols {

class ClosedProtocols {
 public:
  ClosedProtocols() { slots_.resize(kMinSlots); }

  size_t size() const { return size_; }

  // Sets (or replaces) the entry of `flow_id`.
  void Put(uint64_t flow_id, common::v1::L7Protocol protocol, uint64_t closed_ns) {
    if ((size_ + 1) * 2 > slots_.size()) Resize(slots_.size() * 2);
    for (size_t i = Home(flow_id);; i = (i + 1) & mask()) {
      Slot& s = slots_[i];
      if (!s.used) {
        s = Slot{flow_id, closed_ns, protocol, true};
        ++size_;
        return;
      }
      if (s.flow_id == flow_id) {
        s.protocol = protocol;
        s.closed_ns = closed_ns;
        return;
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

  void Erase(uint64_t flow_id) {
    if (size_ == 0) return;
    size_t i = Home(flow_id);
    for (;; i = (i + 1) & mask()) {
      if (!slots_[i].used) return;
      if (slots_[i].flow_id == flow_id) break;
    }
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

  // Drops every entry closed at or before `limit_ns`.
  void EraseClosedUpTo(uint64_t limit_ns) {
    size_t keep = 0;
    for (const Slot& s : slots_) keep += s.used && s.closed_ns > limit_ns ? 1 : 0;
    if (keep == size_) return;
    size_t n = kMinSlots;
    while (n < 2 * keep) n *= 2;
    std::vector<Slot> old(n);
    old.swap(slots_);
    size_ = 0;
    for (const Slot& s : old) {
      if (s.used && s.closed_ns > limit_ns) Insert(s);
    }
  }

 private:
  static constexpr size_t kMinSlots = 64;
  struct Slot {
    uint64_t flow_id = 0;
    uint64_t closed_ns = 0;
    common::v1::L7Protocol protocol = common::v1::L7_PROTOCOL_UNKNOWN;
    bool used = false;
  };

  size_t mask() const { return slots_.size() - 1; }
  size_t Home(uint64_t flow_id) const {
    // Flow ids are sequence numbers (with a worker id on top): spread them over the table.
    uint64_t h = flow_id * 0x9E3779B97F4A7C15ULL;
    return static_cast<size_t>(h ^ (h >> 32)) & mask();
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
};

}  // namespace sonde::agent::protocols
