// AfPacketSource: live capture through TPACKET_V3 memory-mapped rings, one socket per matching
// interface (or one unbound socket for "any"), optional kernel BPF filter, PACKET_FANOUT so
// several workers can share an interface, and capture inside another network namespace.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/capture/event_source.h"

namespace sonde::agent::capture {

struct AfPacketConfig {
  // Comma-separated interface globs ("eth*,veth*"); "any" captures every interface through one
  // unbound socket. Globs are re-evaluated every rescan_interval_ms, so new interfaces are picked up.
  std::string interfaces = "any";
  // tcpdump syntax, compiled with libpcap; empty = everything. Sockets are cooked (SOCK_DGRAM:
  // packets start at the network header on every device type, Ethernet or not), so the filter is
  // compiled for DLT_LINUX_SLL and its link-header loads are rewritten to kernel ancillary loads;
  // filters on other link-layer fields (MAC addresses) are rejected.
  std::string bpf_filter;
  // Network namespace to capture in: "" (ours), a name under /run/netns, a path such as
  // /proc/PID/ns/net, or "all": every namespace on the host, including ones created later
  // (found by watching the inodes of /run/netns/* and /proc/*/ns/net at each rescan), each with
  // its own sockets; namespaces that disappear are released. Run() switches namespaces on its
  // own thread only.
  std::string netns;
  size_t max_namespaces = 256;       // "all": namespaces captured at once (bound)
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
  // Network namespaces currently captured: how many, and their inodes.
  size_t namespaces() const { return namespace_count_.load(std::memory_order_relaxed); }
  std::vector<uint64_t> netns_inodes() const;

 private:
  struct Ring;
  struct Namespace {
    uint64_t inode = 0;
    int fd = -1;                      // open ns file ("all" mode), -1 = the thread's current one
    std::string path;
  };
  Status OpenRing(const std::string& ifname, int ifindex, std::unique_ptr<Ring>* out);
  void Rescan();
  void RescanIn(const Namespace& ns);
  void ScanNamespaces();
  void Drain(Ring& ring, EventSink& sink);
  void ReadKernelStats(Ring& ring);

  AfPacketConfig config_;
  std::vector<std::string> globs_;
  bool any_ = false;
  bool all_netns_ = false;
  int home_ns_fd_ = -1;               // "all": the namespace to return to after each visit
  uint64_t current_inode_ = 0;        // namespace rings are being opened in
  std::vector<Namespace> namespaces_;
  std::vector<std::unique_ptr<Ring>> rings_;
  std::vector<uint8_t> filter_;  // compiled sock_filter program (raw bytes), empty = none
  std::atomic<uint64_t> events_{0}, bytes_{0}, dropped_{0}, malformed_{0};
  std::atomic<size_t> open_sockets_{0};
  std::atomic<size_t> namespace_count_{0};
  mutable std::mutex inodes_mu_;
  std::vector<uint64_t> inodes_;      // published copy of namespaces_' inodes
};

// True when `name` matches one of the comma-separated globs in `patterns`.
bool InterfaceMatches(const std::string& patterns, const std::string& name);

// Compiles a tcpdump filter for cooked (SOCK_DGRAM) packet sockets: libpcap's DLT_LINUX_SLL
// program with SLL-header loads mapped to SKF_AD_PROTOCOL / SKF_AD_PKTTYPE and every other
// offset shifted to the network header. Returns raw sock_filter instructions.
StatusOr<std::vector<uint8_t>> CompileCookedFilter(const std::string& filter);

}  // namespace sonde::agent::capture
