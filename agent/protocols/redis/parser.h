// Redis RESP2/RESP3 parser Traits: requests are arrays of bulk strings (or inline commands),
// responses any RESP value; pub/sub pushes are told apart from replies for the stitcher.
#pragma once

#include <deque>
#include <string_view>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/common/registry.h"
#include "agent/protocols/redis/types.h"
#include "sonde/agent/v1/records.pb.h"
#include "sonde/common/v1/common.pb.h"

namespace sonde::agent::protocols::redis {

// Limits on untrusted input: deeper nesting, longer strings or larger aggregates are invalid.
inline constexpr int kMaxDepth = 16;
inline constexpr int64_t kMaxBulkBytes = 512LL * 1024 * 1024;
inline constexpr int64_t kMaxAggregate = 16 * 1024 * 1024;
inline constexpr size_t kMaxLineBytes = 64 * 1024;
inline constexpr size_t kMaxFieldBytes = 256;  // stored command/key/error/result text

struct Traits {
  using Frame = redis::Frame;
  using State = redis::State;
  static constexpr ::sonde::common::v1::L7Protocol kProtocol =
      ::sonde::common::v1::L7_PROTOCOL_REDIS;
  // Nothing carries over from one exchange to the next (pushes and subscribe confirmations are
  // told apart by their own content; State only counts unpaired responses), so an idle
  // connection's parser may be reset and pooled: the analyzer then parks the connection while
  // many are open, instead of keeping a parser and its queues per idle client.
  static constexpr bool kStatelessBetweenMessages = true;

  static size_t FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                  State* state);
  static ParseState ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                               State* state);
  // The stream ended inside a reply: a bulk string whose length line arrived is still a reply
  // (the capture or connection cut its payload short). Requests are not salvaged.
  static ParseState ParseTruncatedFrame(MessageType type, std::string_view* buf, Frame* frame,
                                        State* state);
  static void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                     const StitchContext& ctx, RecordBuffer* out);
};

// Content inference for the registry: kYes only on a prefix that is clearly this protocol.
InferResult Infer(flow::StreamDirection dir, std::string_view data,
                  const flow::ConnectionInfo& conn);

}  // namespace sonde::agent::protocols::redis
