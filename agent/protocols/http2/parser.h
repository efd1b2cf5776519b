// HTTP/2 (h2c prior knowledge and HTTP/1.1 Upgrade) and gRPC: Traits for FrameParser with HPACK
// via libnghttp2 (dynamic table when the connection start was seen, self-contained fields only
// otherwise), per-stream stitching, and inference.
#pragma once

#include <deque>
#include <string_view>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/common/registry.h"
#include "agent/protocols/http2/types.h"

namespace sonde::agent::protocols::http2 {

inline constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct Traits {
  using Frame = http2::Frame;
  using State = http2::State;
  static constexpr common::v1::L7Protocol kProtocol = common::v1::L7_PROTOCOL_HTTP2;

  static size_t FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                  State* state);
  static ParseState ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                               State* state);
  static void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                     const StitchContext& ctx, RecordBuffer* out);
};

InferResult Infer(flow::StreamDirection dir, std::string_view data,
                  const flow::ConnectionInfo& conn);

// Decodes one HPACK header block. Without a synced dynamic table (or after a decoding error)
// only self-contained fields are decoded and *degraded is set. Never reads outside `block`.
void DecodeHeaderBlock(DirectionState* d, std::string_view block, std::vector<Header>* out,
                       bool* degraded);

}  // namespace sonde::agent::protocols::http2
