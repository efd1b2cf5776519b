// Kafka request/response framing and the body fields records need (topics, error codes).
#pragma once

#include <deque>
#include <string_view>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/common/registry.h"
#include "agent/protocols/kafka/types.h"
#include "sonde/agent/v1/records.pb.h"
#include "sonde/common/v1/common.pb.h"

namespace sonde::agent::protocols::kafka {

struct Traits {
  using Frame = kafka::Frame;
  using State = kafka::State;
  static constexpr ::sonde::common::v1::L7Protocol kProtocol =
      ::sonde::common::v1::L7_PROTOCOL_KAFKA;

  static size_t FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                  State* state);
  static ParseState ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                               State* state);
  static void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                     const StitchContext& ctx, RecordBuffer* out);
};

// "Produce", "Fetch", ... or "" for keys we do not know.
std::string_view ApiName(int16_t api_key);
// The first version of an API using flexible (compact, tagged) encoding; INT16_MAX if none.
int16_t FirstFlexibleVersion(int16_t api_key);
// The error code of a response body (after the correlation id), or 0 when there is none we
// know how to find. `body` may be truncated.
int16_t ResponseErrorCode(int16_t api_key, int16_t api_version, std::string_view body);

// Content inference for the registry: kYes only on a prefix that is clearly this protocol.
InferResult Infer(flow::StreamDirection dir, std::string_view data,
                  const flow::ConnectionInfo& conn);

}  // namespace sonde::agent::protocols::kafka
