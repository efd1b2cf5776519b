// The parser contract every protocol implements (three verbs, Pixie-style), and the frame and
// record types they exchange. A protocol folder provides a Traits struct:
//
//   struct Traits {
//     using Frame = ...;        // one parsed message; must have `uint64_t timestamp_ns`,
//                               // `uint32_t tcp_seq` and `size_t frame_bytes` members
//     using State = ...;        // per-connection state shared by both directions (may be empty)
//     static constexpr common::v1::L7Protocol kProtocol = ...;
//
//     // Where the next frame of `type` could start at or after `start`, or npos. Used to
//     // resynchronise after a gap or garbage. Must not read outside `buf`.
//     static size_t FindFrameBoundary(MessageType type, std::string_view buf, size_t start, State* state);
//
//     // Parses one frame at the front of *buf. On kSuccess removes the frame's bytes from the
//     // front of *buf and fills *frame; on any other result leaves *buf unchanged.
//     static ParseState ParseFrame(MessageType type, std::string_view* buf, Frame* frame, State* state);
//
//     // Pairs requests with responses, moving completed pairs out as records. Unpaired requests
//     // older than ctx.timeout_ns become timeout records; unpaired responses are dropped and
//     // counted. Frames left in the queues are kept for the next call.
//     static void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
//                        const StitchContext& ctx, RecordBuffer* out);
//   };
//
// Parsers read untrusted bytes: they never read out of bounds, never allocate without bound,
// always make progress, and never throw or assert on input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/protocols/common/frame_queue.h"
#include "agent/protocols/common/record_buffer.h"

namespace sonde::agent::protocols {

enum class ParseState : uint8_t {
  kNeedsMoreData,  // the frame is incomplete; nothing consumed
  kInvalid,        // not a valid frame here; nothing consumed (caller resynchronises)
  kIgnored,        // a valid frame we do not report (consumed, like kSuccess, but no frame)
  kSuccess,        // one frame parsed and consumed
};

// Requests flow client to server; responses server to client. Some protocols (DNS over UDP,
// MQTT) can tell from content; kUnknown lets the parser decide.
enum class MessageType : uint8_t { kRequest = 0, kResponse = 1, kUnknown = 2 };

struct StitchContext {
  uint64_t now_ns = 0;
  uint64_t timeout_ns = 0;  // unanswered requests older than this become timeouts
  bool connection_closed = false;
  // Optional (may be null): Stitch adds the number of responses it dropped unpaired.
  uint64_t* unpaired_responses = nullptr;
};

}  // namespace sonde::agent::protocols
