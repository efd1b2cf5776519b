// PostgreSQL message framing (type byte + int32 length, or untyped startup-phase messages).
#pragma once

#include <deque>
#include <string_view>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/common/registry.h"
#include "agent/protocols/postgres/types.h"
#include "sonde/agent/v1/records.pb.h"
#include "sonde/common/v1/common.pb.h"

namespace sonde::agent::protocols::postgres {

inline constexpr uint32_t kMaxMessageBytes = 1u << 30;

struct Traits {
  using Frame = postgres::Frame;
  using State = postgres::State;
  static constexpr ::sonde::common::v1::L7Protocol kProtocol =
      ::sonde::common::v1::L7_PROTOCOL_POSTGRESQL;

  static size_t FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                  State* state);
  static ParseState ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                               State* state);
  static void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                     const StitchContext& ctx, RecordBuffer* out);
};

// Content inference for the registry: kYes only on a prefix that is clearly this protocol.
InferResult Infer(flow::StreamDirection dir, std::string_view data,
                  const flow::ConnectionInfo& conn);

}  // namespace sonde::agent::protocols::postgres
