// A toy line protocol for testing the common machinery: requests "Q <id> <path>\n", responses
// "A <id> <code>\n"; FIFO pairing. Not registered in the real table.
#pragma once

#include <charconv>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "agent/protocols/common/frame_meta.h"
#include "agent/protocols/common/parser.h"
#include "agent/protocols/common/record_util.h"
#include "agent/protocols/common/registry.h"

namespace sonde::agent::protocols::testing {

struct LineTraits {
  struct Frame : FrameMeta {
    std::string id;
    std::string arg;
  };
  struct State {};
  static constexpr common::v1::L7Protocol kProtocol = common::v1::L7_PROTOCOL_REDIS;

  static size_t FindFrameBoundary(MessageType type, std::string_view buf, size_t start, State*) {
    const char want = type == MessageType::kRequest ? 'Q' : 'A';
    for (size_t i = start; i + 1 < buf.size(); ++i) {
      if ((i == 0 || buf[i - 1] == '\n') && buf[i] == want && buf[i + 1] == ' ') return i;
    }
    return std::string_view::npos;
  }

  static ParseState ParseFrame(MessageType type, std::string_view* buf, Frame* f, State*) {
    const char want = type == MessageType::kRequest ? 'Q' : 'A';
    if (buf->size() < 2) return ParseState::kNeedsMoreData;
    if ((*buf)[0] != want || (*buf)[1] != ' ') return ParseState::kInvalid;
    size_t nl = buf->find('\n');
    if (nl == std::string_view::npos) {
      return buf->size() > 256 ? ParseState::kInvalid : ParseState::kNeedsMoreData;
    }
    std::string_view line = buf->substr(2, nl - 2);
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return ParseState::kInvalid;
    f->id = std::string(line.substr(0, sp));
    f->arg = std::string(line.substr(sp + 1));
    buf->remove_prefix(nl + 1);
    return ParseState::kSuccess;
  }

  static void Stitch(FrameQueue<Frame>* reqs, FrameQueue<Frame>* resps, State*,
                     const StitchContext& ctx, RecordBuffer* out) {
    while (!reqs->empty() && !resps->empty()) {
      v1::L7RequestLog r;
      FillFromFrames(&reqs->front(), &resps->front(), &r);
      r.set_request_type("Q");
      r.set_request_resource(reqs->front().arg);
      r.set_endpoint(EndpointPattern(reqs->front().arg));
      int code = 0;
      std::from_chars(resps->front().arg.data(), resps->front().arg.data() + resps->front().arg.size(), code);
      r.set_response_code(code);
      r.set_response_status(StatusFromHttpCode(code));
      out->push_back(std::move(r));
      reqs->pop_front();
      resps->pop_front();
    }
    while (!reqs->empty() && IsTimedOut(reqs->front().timestamp_ns, ctx)) {
      v1::L7RequestLog r;
      FillFromFrames<Frame>(&reqs->front(), nullptr, &r);
      r.set_request_type("Q");
      r.set_request_resource(reqs->front().arg);
      MarkTimeout(&r);
      out->push_back(std::move(r));
      reqs->pop_front();
    }
    if (!resps->empty()) {
      CountUnpairedResponses(ctx, resps->size());
      resps->clear();
    }
  }

  static InferResult Infer(flow::StreamDirection dir, std::string_view data,
                           const flow::ConnectionInfo&) {
    if (data.size() < 2) return InferResult::kMaybe;
    const char want = dir == flow::StreamDirection::kRequest ? 'Q' : 'A';
    return data[0] == want && data[1] == ' ' ? InferResult::kYes : InferResult::kNo;
  }
};

inline constexpr ProtocolSpec kLineSpec = {common::v1::L7_PROTOCOL_REDIS, "LINE",
                                           &LineTraits::Infer, &MakeFrameParser<LineTraits>,
                                           Transport::kTcp, {7777}};

}  // namespace sonde::agent::protocols::testing
