// MySQL wire packets (3-byte length, sequence id, payload) as frames; see types.h.
#pragma once

#include <deque>
#include <string_view>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/common/registry.h"
#include "agent/protocols/mysql/types.h"
#include "sonde/agent/v1/records.pb.h"
#include "sonde/common/v1/common.pb.h"

namespace sonde::agent::protocols::mysql {

struct Traits {
  using Frame = mysql::Frame;
  using State = mysql::State;
  static constexpr ::sonde::common::v1::L7Protocol kProtocol =
      ::sonde::common::v1::L7_PROTOCOL_MYSQL;

  static size_t FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                  State* state);
  // Compressed protocol: strips the 7-byte compressed headers and inflates zlib payloads, so
  // ParseFrame sees plain packets. False (bytes used as they are) on a plain connection.
  static bool Unwrap(MessageType type, std::string_view bytes, bool gap, State* state,
                     std::string* out);
  static ParseState ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                               State* state);
  static void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                     const StitchContext& ctx, RecordBuffer* out);
};

// The name the protocol documentation gives a command byte ("COM_QUERY"), or "COM_UNKNOWN".
std::string_view CommandName(uint8_t command);

// Content inference for the registry: kYes only on a prefix that is clearly this protocol.
InferResult Infer(flow::StreamDirection dir, std::string_view data,
                  const flow::ConnectionInfo& conn);

}  // namespace sonde::agent::protocols::mysql
