// SocketTracker: turns eBPF socket events into per-connection, per-direction in-order streams for
// a flow::StreamHandler. One connection per (pid, fd, generation), and for UDP also per peer (an
// unconnected socket talks to many): data is ordered by TCP sequence, gaps (ring buffer loss,
// payload truncation, sendfile bodies) are reported, and each chunk carries the thread id and
// syscall_trace_id. shutdown() flushes, close() and process exit end connections. A TCP
// connection the handler gives up on (StreamHandler::Abandoned) is reported through the ignore
// hook, so the kernel stops capturing it, and its data is dropped here until it closes.
// Single-threaded: call it from the EbpfSource::Run thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "agent/capture/event_source.h"
#include "agent/flow/stream_handler.h"
#include "agent/metadata/process_cache.h"
#include "agent/tracing/syscall_trace_id.h"
#include "common/metrics/registry.h"

namespace sonde::agent::capture {

class SocketTracker final : public EventSink {
 public:
  struct Options {
    uint64_t idle_timeout_ns = 300'000'000'000;  // connections without I/O are closed after this
    size_t max_connections = 65536;
    uint64_t reorder_window_ns = 100'000'000;    // out-of-order data waits at most this long
    size_t max_pending_chunks = 64;              // per direction
    size_t max_pending_bytes = 1 << 20;          // per direction
    bool forward_ticks = true;                   // OnIdle -> handler.OnTick
  };

  // `handler`, `processes` and `trace_ids` are not owned and must outlive the tracker.
  // `processes` and `trace_ids` may be null (no process metadata / no trace ids).
  SocketTracker(flow::StreamHandler& handler, metadata::ProcessCache* processes,
                tracing::SyscallTraceIds* trace_ids, metrics::Registry* metrics, Options options);
  SocketTracker(flow::StreamHandler& handler, metadata::ProcessCache* processes,
                tracing::SyscallTraceIds* trace_ids, metrics::Registry* metrics)
      : SocketTracker(handler, processes, trace_ids, metrics, Options{}) {}
  ~SocketTracker() override;

  void OnPacket(const PacketView&) override {}
  void OnSocketData(const SocketDataEvent& event) override;
  void OnSocketControl(const SocketControlEvent& event) override;
  void OnIdle(uint64_t now_ns) override;

  // Called once per TCP connection the handler has abandoned, with the kernel's key for it
  // (EbpfSource::IgnoreConnection). Without a hook abandoned connections are still dropped here.
  using IgnoreHook = std::function<void(uint32_t pid, int32_t fd, uint64_t generation)>;
  void SetIgnoreHook(IgnoreHook hook) { ignore_hook_ = std::move(hook); }

  // Closes every connection (agent shutdown).
  void CloseAll(uint64_t now_ns);
  size_t connections() const { return conns_.size(); }
  size_t pending_bytes() const;

 private:
  struct Pending {
    uint64_t timestamp_ns;
    uint32_t seq;
    uint32_t total_bytes;
    uint32_t tid;
    uint64_t trace_id;
    std::vector<uint8_t> data;
  };
  struct Direction {
    bool started = false;
    uint32_t next_seq = 0;       // sequence number expected next
    int64_t next_pos = 0;        // the same as a 64-bit stream position (no wrap-around)
    uint32_t gap_carry = 0;      // truncated bytes to report before the next chunk
    std::map<int64_t, Pending> pending;  // keyed by stream position
    size_t pending_bytes = 0;
  };
  struct Conn {
    uint64_t generation = 0;
    flow::ConnectionInfo info;
    bool server_side = false;
    bool tls = false;
    bool l7_decided = false;  // the handler recognised the protocol or gave up
    bool ignored = false;     // abandoned by the handler: data is dropped
    uint64_t last_ns = 0;
    Direction dirs[2];
  };
  // ((pid << 32) | fd, peer): peer is 0 for TCP and a hash of the remote end for UDP. Ordered,
  // so every connection of an fd or of a process is one range.
  using Key = std::pair<uint64_t, uint64_t>;

  Conn* Open(Key key, const net::FiveTuple& tuple, SocketRole role, uint32_t pid, std::string_view comm,
             uint64_t generation, uint64_t ts);
  void Close(Key key, uint64_t ts);
  // Closes every connection whose key lies in [first, last).
  void CloseRange(Key first, Key last, uint64_t ts);
  void Deliver(Conn& c, flow::StreamDirection dir, uint64_t ts, uint32_t seq, uint32_t gap, uint32_t tid,
               uint64_t trace_id, std::span<const uint8_t> data);
  void DrainPending(Conn& c, flow::StreamDirection dir, bool force_one);
  // After data reached the handler: has it decided on the connection, or given up on it?
  void CheckAbandoned(const Key& key, Conn& c);
  void Evict(uint64_t now_ns);

  flow::StreamHandler& handler_;
  metadata::ProcessCache* processes_;
  tracing::SyscallTraceIds* trace_ids_;
  Options options_;
  uint64_t next_flow_id_ = 1;
  std::map<Key, Conn> conns_;
  IgnoreHook ignore_hook_;

  metrics::Counter* gap_bytes_ = nullptr;
  metrics::Counter* duplicate_bytes_ = nullptr;
  metrics::Counter* evicted_ = nullptr;
  metrics::Counter* sendfile_bytes_ = nullptr;
  metrics::Counter* exits_ = nullptr;
  metrics::Counter* abandoned_ = nullptr;
  metrics::Counter* ignored_bytes_ = nullptr;
  metrics::Gauge* open_conns_ = nullptr;
};

}  // namespace sonde::agent::capture
