// EbpfSource: socket I/O observed by the syscall tracepoints and OpenSSL uprobes of
// agent/bpf/socket_trace.bpf.c, read from the BPF ring buffer. Owns the loaded BPF object.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/capture/event_source.h"
#include "common/base/status.h"
#include "common/metrics/registry.h"

namespace sonde::agent::capture {

struct EbpfSourceConfig {
  uint32_t payload_bytes = 1024;              // captured per event; clamped to [1, 16384]
  uint32_t ring_buffer_bytes = 16u << 20;     // rounded up to a power of two
  bool trace_tls = true;                      // OpenSSL SSL_read/SSL_write uprobes
  uint64_t tls_rescan_interval_ns = 5'000'000'000;  // look for new processes mapping libssl
  uint64_t idle_interval_ns = 100'000'000;    // cadence of EventSink::OnIdle while running
  uint32_t self_pid = 0;                      // events of this pid are dropped; 0 = getpid()
  metrics::Registry* metrics = nullptr;       // optional self-metrics (not owned)
};

class EbpfSource final : public EventSource {
 public:
  // Loads and attaches the programs. Fails with a one-line, operator-readable status when eBPF
  // cannot be used (not built, no BTF, no privilege, verifier/attach failure); the caller then
  // falls back to packet capture. Events are buffered in the kernel from here until Run().
  static StatusOr<std::unique_ptr<EbpfSource>> Create(const EbpfSourceConfig& config);
  ~EbpfSource() override;

  std::string_view name() const override { return "ebpf"; }
  // Delivers events to `sink` until `stop`. Timestamps are wall-clock (CLOCK_REALTIME) ns.
  // `sink` receives OnSocketData/OnSocketControl; OnIdle(now) runs every idle_interval_ns.
  Status Run(EventSink& sink, const std::atomic<bool>& stop) override;
  SourceStats stats() const override;

  // Marks a connection uninteresting: the kernel drops its events until it is closed.
  // Thread-safe (a BPF map update).
  Status IgnoreConnection(uint32_t pid, int32_t fd, uint64_t generation);
  // Kernel counters summed over CPUs, indexed by enum sonde_stat (agent/bpf/shared).
  std::vector<uint64_t> KernelCounters() const;
  // Scans /proc/*/maps for libssl and attaches uprobes to libraries not seen yet; returns the
  // number of libraries with probes. Run() calls it every tls_rescan_interval_ns.
  size_t RescanTls();

  struct Impl;

 private:
  explicit EbpfSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sonde::agent::capture
