// AfPacketSource: live capture through TPACKET_V3 memory-mapped rings, one socket per matching
// interface (or one unbound socket for "any"), optional kernel BPF filter, PACKET_FANOUT so
// several workers can share an interface, and capture inside another network namespace.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent/capture/event_source.h"

namespace sonde::agent::capture {

struct AfPacketConfig {
  // Comma-separated interface globs ("eth*,veth*"); "any" captures every interface through one
  // unbound socket. Globs are re-evaluated every rescan_interval_ms, so new interfaces are picked up.
  std::string interfaces = "any";
  std::string bpf_filter;            // tcpdump syntax, compiled with libpcap; empty = everything
  // Network namespace to capture in: "" (ours), a name under /run/netns, or a path such as
  // /proc/PID/ns/net. Run() enters it on its own thread before opening sockets.
  std::string netns;
  uint16_t fanout_group = 0;         // > 0: join fanout group (fanout_group + ifindex), flow hash
  uint32_t block_size = 1u << 20;    // ring geometry
  uint32_t block_count = 16;
  uint32_t frame_size = 2048;
  uint32_t block_timeout_ms = 20;    // kernel hands over a partly filled block after this long
  uint32_t poll_timeout_ms = 100;    // OnIdle cadence when there is no traffic
  uint32_t rescan_interval_ms = 1000;
};

class AfPacketSource : public EventSource {
 public:
  explicit AfPacketSource(AfPacketConfig config);
  ~AfPacketSource() override;

  std::string_view name() const override { return "afpacket"; }
  // Runs until `stop`. Errors: namespace cannot be entered, or no socket could be opened at all
  // (permission, bad filter). Call on a dedicated thread: it may switch that thread's netns.
  Status Run(EventSink& sink, const std::atomic<bool>& stop) override;
  SourceStats stats() const override;

  // Interfaces currently captured (for status pages and tests).
  size_t open_sockets() const { return open_sockets_.load(std::memory_order_relaxed); }

 private:
  struct Ring;
  Status OpenRing(const std::string& ifname, int ifindex, std::unique_ptr<Ring>* out);
  void Rescan();
  void Drain(Ring& ring, EventSink& sink);
  void ReadKernelStats(Ring& ring);

  AfPacketConfig config_;
  std::vector<std::string> globs_;
  bool any_ = false;
  uint64_t netns_inode_ = 0;
  std::vector<std::unique_ptr<Ring>> rings_;
  std::vector<uint8_t> filter_;  // compiled sock_filter program (raw bytes), empty = none
  std::atomic<uint64_t> events_{0}, bytes_{0}, dropped_{0}, malformed_{0};
  std::atomic<size_t> open_sockets_{0};
};

// True when `name` matches one of the comma-separated globs in `patterns`.
bool InterfaceMatches(const std::string& patterns, const std::string& name);

}  // namespace sonde::agent::capture
