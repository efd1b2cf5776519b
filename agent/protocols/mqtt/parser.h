// MQTT control packet Traits (fixed header plus the variable-header fields records need);
// both directions carry requests (see types.h).
#pragma once

#include <deque>
#include <string_view>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/common/registry.h"
#include "agent/protocols/mqtt/types.h"
#include "sonde/agent/v1/records.pb.h"
#include "sonde/common/v1/common.pb.h"

namespace sonde::agent::protocols::mqtt {

inline constexpr uint32_t kMaxRemainingLength = 268435455;  // the varint maximum

struct Traits {
  using Frame = mqtt::Frame;
  using State = mqtt::State;
  static constexpr ::sonde::common::v1::L7Protocol kProtocol =
      ::sonde::common::v1::L7_PROTOCOL_MQTT;

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

}  // namespace sonde::agent::protocols::mqtt
