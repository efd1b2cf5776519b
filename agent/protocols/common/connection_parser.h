// The type-erased per-connection parser the analyzer drives; FrameParser<Traits> implements it
// for every protocol, so the registry can hold one factory per protocol.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "agent/flow/stream_handler.h"
#include "agent/protocols/common/parser.h"
#include "common/metrics/registry.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols {

struct ParserOptions {
  size_t max_buffer_bytes = 512 * 1024;    // per direction; overflow drops the buffer and resyncs
  size_t max_pending_frames = 1024;        // per direction; oldest dropped beyond this
  uint32_t max_consecutive_failures = 16;  // invalid frames in a row before giving up
  uint64_t request_timeout_ns = 30'000'000'000ULL;
};

// Self-metrics of one protocol, owned by the metrics registry. All pointers are non-null.
struct ParserCounters {
  metrics::Counter* invalid_frames = nullptr;      // ParseFrame returned kInvalid
  metrics::Counter* truncated_datagrams = nullptr; // a datagram ended mid-frame
  metrics::Counter* truncated_frames = nullptr;    // a stream ended mid-frame; salvaged
  metrics::Counter* gaps = nullptr;                // capture gaps: buffer dropped, resync
  metrics::Counter* buffer_overflows = nullptr;    // buffer bound hit: buffer dropped, resync
  metrics::Counter* resync_skipped_bytes = nullptr;
  metrics::Counter* frames_dropped = nullptr;      // pending-frame bound hit
  metrics::Counter* unpaired_responses = nullptr;
  metrics::Counter* gave_up = nullptr;             // connections abandoned after repeated failures

  static ParserCounters Create(metrics::Registry* registry, std::string_view protocol_name);
};

class ConnectionParser {
 public:
  virtual ~ConnectionParser() = default;
  // Feeds one in-order chunk of one direction; parses every complete frame in it.
  virtual void OnData(flow::StreamDirection dir, const flow::StreamChunk& chunk) = 0;
  // Pairs parsed frames into records appended to *out (connection fields left empty).
  virtual void Stitch(const StitchContext& ctx, RecordBuffer* out) = 0;
  // True after repeated parse failures: the caller stops feeding this connection.
  virtual bool gave_up() const = 0;
  // True while parsed frames wait for their peer (so timeouts need a Stitch on ticks).
  virtual bool has_pending() const = 0;
  // True when the parser holds nothing a later chunk needs (no pending frames, no buffered
  // bytes, no failure streak) and its protocol keeps no state between messages: the caller may
  // Reset it and use a fresh one for the connection's next chunk. Protocols opt in.
  virtual bool idle() const { return false; }
  // Back to the state of a new parser (same options and counters), keeping allocated memory
  // where that is cheap: the analyzer reuses parsers of closed connections for new ones.
  virtual void Reset() = 0;
};

}  // namespace sonde::agent::protocols
