// HTTP/1.0 and 1.1: Traits for FrameParser (heads parsed as frames, bodies skipped in a streaming
// fashion so large bodies never need buffering), FIFO stitching (pipelining), and inference.
#pragma once

#include <deque>
#include <string_view>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/common/registry.h"
#include "agent/protocols/http1/types.h"

namespace sonde::agent::protocols::http1 {

struct Traits {
  using Frame = http1::Frame;
  using State = http1::State;
  static constexpr common::v1::L7Protocol kProtocol = common::v1::L7_PROTOCOL_HTTP1;

  static size_t FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                  State* state);
  static ParseState ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                               State* state);
  // The stream ended inside a head (connection closed, or a capture cut short): the start line
  // and complete header lines still make a frame, as the peer saw them.
  static ParseState ParseTruncatedFrame(MessageType type, std::string_view* buf, Frame* frame,
                                        State* state);
  static void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                     const StitchContext& ctx, RecordBuffer* out);
  // True between exchanges: no body being skipped, no request waiting for its response, so a
  // fresh parser would continue the same way.
  static bool Idle(const State& s) {
    for (const DirectionState& d : s.dir) {
      if (d.mode != BodyMode::kNone || d.remaining != 0 || d.chunk_data || d.trailers) return false;
    }
    return s.methods.empty();
  }
};

InferResult Infer(flow::StreamDirection dir, std::string_view data,
                  const flow::ConnectionInfo& conn);

// True when `s` starts with a known request method followed by a space.
bool StartsWithMethod(std::string_view s, bool* maybe = nullptr);

}  // namespace sonde::agent::protocols::http1
