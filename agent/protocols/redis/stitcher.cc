// Redis stitching: FIFO pairing, subscribe confirmations counted per channel, pushes reported alone.
#include "agent/protocols/redis/stitcher.h"

#include "agent/protocols/common/record_util.h"
#include "agent/protocols/redis/parser.h"

namespace sonde::agent::protocols::redis {
namespace {

using ::sonde::common::v1::ResponseStatus;

// Errors caused by the request itself are client errors; the rest (LOADING, BUSY, OOM,
// READONLY, MASTERDOWN, ...) are the server's.
ResponseStatus ErrorStatus(const std::string& error) {
  std::string_view prefix = std::string_view(error).substr(0, error.find(' '));
  static constexpr std::string_view kClient[] = {"ERR",     "WRONGTYPE", "NOAUTH",   "WRONGPASS",
                                                 "NOPERM",  "NOSCRIPT",  "EXECABORT", "NOPROTO",
                                                 "NOGROUP", "MOVED",     "ASK",      "CROSSSLOT"};
  for (std::string_view c : kClient) {
    if (prefix == c) return ::sonde::common::v1::RESPONSE_STATUS_CLIENT_ERROR;
  }
  return ::sonde::common::v1::RESPONSE_STATUS_SERVER_ERROR;
}

void Emit(const Frame& req, const Frame* resp, ResponseStatus no_resp_status, uint64_t now_ns,
          RecordBuffer* out) {
  v1::L7RequestLog& r = out->Add();
  r.set_l7_protocol(Traits::kProtocol);
  r.set_request_type(req.command);
  r.set_request_resource(req.key);
  r.set_endpoint(req.command);
  r.set_request_length(static_cast<int64_t>(req.frame_bytes));
  r.set_req_tcp_seq(req.tcp_seq);
  if (resp != nullptr) {
    FillTiming(req.timestamp_ns, resp->timestamp_ns, &r);
    r.set_response_length(static_cast<int64_t>(resp->frame_bytes));
    r.set_resp_tcp_seq(resp->tcp_seq);
    if (resp->is_error) {
      r.set_response_status(ErrorStatus(resp->error));
      r.set_response_exception(resp->error);
    } else {
      r.set_response_status(::sonde::common::v1::RESPONSE_STATUS_OK);
      r.set_response_result(resp->result);
    }
  } else {
    FillTiming(req.timestamp_ns, now_ns, &r);
    r.set_response_length(-1);
    r.set_response_status(no_resp_status);
  }
}

void EmitPush(const Frame& push, RecordBuffer* out) {
  v1::L7RequestLog& r = out->Add();
  r.set_l7_protocol(Traits::kProtocol);
  r.set_request_type(push.command);
  r.set_request_resource(push.push_channel);
  r.set_endpoint(push.command);
  FillTiming(push.timestamp_ns, push.timestamp_ns, &r);
  r.set_request_length(-1);
  r.set_response_length(static_cast<int64_t>(push.frame_bytes));
  r.set_resp_tcp_seq(push.tcp_seq);
  r.set_response_status(::sonde::common::v1::RESPONSE_STATUS_OK);
}

bool IsSubscribe(std::string_view cmd) {  // a view: lengths are compared before the bytes
  return cmd == "SUBSCRIBE" || cmd == "PSUBSCRIBE" || cmd == "SSUBSCRIBE" ||
         cmd == "UNSUBSCRIBE" || cmd == "PUNSUBSCRIBE" || cmd == "SUNSUBSCRIBE";
}

}  // namespace

void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
            const StitchContext& ctx, RecordBuffer* out) {
  while (!responses->empty()) {
    Frame& resp = responses->front();
    if (resp.kind == ReplyKind::kPush) {
      EmitPush(resp, out);
      responses->pop_front();
      continue;
    }
    // A reply older than the oldest request answers something we never saw.
    if (requests->empty() || resp.timestamp_ns < requests->front().timestamp_ns) {
      if (resp.kind != ReplyKind::kConfirm) ++state->unpaired_responses, CountUnpairedResponses(ctx);
      responses->pop_front();
      continue;
    }
    Frame& req = requests->front();
    if (resp.kind == ReplyKind::kConfirm) {
      if (!IsSubscribe(req.command)) {  // extra confirmation of an argument-less UNSUBSCRIBE
        responses->pop_front();
        continue;
      }
      if (req.expected_confirms > 1) {
        --req.expected_confirms;
        responses->pop_front();
        continue;
      }
    }
    Emit(req, &resp, ::sonde::common::v1::RESPONSE_STATUS_OK, ctx.now_ns, out);
    requests->pop_front();
    responses->pop_front();
  }
  while (!requests->empty()) {
    const Frame& req = requests->front();
    // Unanswered before close or within the timeout: a timeout, as the other protocols report it.
    if (!IsTimedOut(req.timestamp_ns, ctx)) break;
    Emit(req, nullptr, ::sonde::common::v1::RESPONSE_STATUS_TIMEOUT, ctx.now_ns, out);
    requests->pop_front();
  }
}

void Traits::Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                    const StitchContext& ctx, RecordBuffer* out) {
  redis::Stitch(requests, responses, state, ctx, out);
}

}  // namespace sonde::agent::protocols::redis
