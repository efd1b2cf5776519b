// HTTP/1.x frames (one request or response head, with what we learned of its body) and the
// per-connection state that tracks bodies and request methods across calls.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "agent/protocols/common/frame_meta.h"
#include "agent/protocols/common/frame_queue.h"
#include "agent/protocols/common/record_util.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols::http1 {

struct Frame : FrameMeta {
  // User-provided, so value-initialisation (FrameQueue::emplace_back() constructs Frame()) runs
  // only the member initialisers below instead of first zeroing the whole object (a rep stos
  // per parsed frame). Every member has an initialiser.
  Frame() noexcept {}
  bool is_request = true;
  std::string method;    // requests
  std::string target;    // requests: request-target as sent
  std::string version;   // "1.0" / "1.1"
  int status = 0;        // responses
  std::string reason;    // responses
  std::string host;
  std::string user_agent;
  int64_t header_bytes = 0;
  int64_t body_bytes = -1;  // -1: unknown (chunked streamed or close-delimited)
  // x_request_id / trace_id / span_id / parent_span_id from headers.
  TraceFields trace;
};

enum class BodyMode : uint8_t { kNone, kLength, kChunked, kUntilClose, kOpaque };

struct DirectionState {
  BodyMode mode = BodyMode::kNone;
  uint64_t remaining = 0;      // kLength: body bytes still to skip; kChunked: bytes of this chunk
  bool chunk_data = false;     // kChunked: inside chunk data (then its CRLF)
  bool trailers = false;       // kChunked: after the last chunk, reading trailers
};

// What a response's body framing needs to know of its request's method.
enum class PendingMethod : uint8_t { kOther, kHead, kConnect };

struct State {
  DirectionState dir[2];            // 0 requests, 1 responses
  // Requests whose final response is pending, by the one thing their response's framing needs
  // from their method (not the method itself: no string copied per exchange).
  FrameQueue<PendingMethod> methods;

  void Reset() {
    dir[0] = dir[1] = DirectionState{};
    methods.clear();
  }
};

}  // namespace sonde::agent::protocols::http1
