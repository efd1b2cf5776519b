// ClockedSink: forwards packets and idle ticks to another sink and remembers the newest time it
// saw and how many packets passed, so a replay's end-of-input flush happens at capture time
// (deterministic) rather than at wall time. Used by sonde-agent's packet pipelines, the corpus
// tests and the L7 bench.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

#include "agent/capture/event_source.h"

namespace sonde::agent::capture {

class ClockedSink final : public EventSink {
 public:
  explicit ClockedSink(EventSink* next) : next_(next) {}
  void OnPacket(const PacketView& p) override {
    last_ns_ = std::max(last_ns_, p.timestamp_ns);
    ++packets_;
    next_->OnPacket(p);
  }
  void OnPackets(std::span<const PacketView> ps) override {
    for (const PacketView& p : ps) last_ns_ = std::max(last_ns_, p.timestamp_ns);
    packets_ += ps.size();
    next_->OnPackets(ps);
  }
  void OnIdle(uint64_t now_ns) override {
    last_ns_ = std::max(last_ns_, now_ns);
    next_->OnIdle(now_ns);
  }
  // The newest packet or idle time seen, 0 before any.
  uint64_t last_ns() const { return last_ns_; }
  uint64_t packets() const { return packets_; }

 private:
  EventSink* next_;
  uint64_t last_ns_ = 0;
  uint64_t packets_ = 0;
};

}  // namespace sonde::agent::capture
