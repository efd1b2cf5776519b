// Kafka stitching by correlation id, with error codes read using the request's api and version.
#include "agent/protocols/kafka/stitcher.h"

#include "agent/protocols/common/record_util.h"
#include "agent/protocols/kafka/parser.h"

namespace sonde::agent::protocols::kafka {
namespace {

using ::sonde::common::v1::ResponseStatus;

// Error codes that describe the broker's condition rather than the request.
ResponseStatus ErrorStatus(int16_t code) {
  switch (code) {
    case -1: case 5: case 6: case 7: case 8: case 9: case 13: case 14: case 15: case 16:
    case 19: case 20: case 56:
      return ::sonde::common::v1::RESPONSE_STATUS_SERVER_ERROR;
    default:
      return ::sonde::common::v1::RESPONSE_STATUS_CLIENT_ERROR;
  }
}

void Emit(const Frame& req, const Frame* resp, bool timed_out, uint64_t now_ns,
          RecordBuffer* out) {
  v1::L7RequestLog& r = out->Add();
  r.set_l7_protocol(Traits::kProtocol);
  r.set_version(std::to_string(req.api_version));
  std::string_view name = ApiName(req.api_key);
  r.set_request_type(name.empty() ? "ApiKey" + std::to_string(req.api_key) : std::string(name));
  r.set_request_domain(req.client_id);
  r.set_request_resource(req.topic);
  r.set_endpoint(req.topic.empty() ? r.request_type() : req.topic);
  r.set_request_id(static_cast<uint32_t>(req.correlation_id));
  r.set_request_length(static_cast<int64_t>(req.frame_bytes));
  r.set_req_tcp_seq(req.tcp_seq);
  if (resp != nullptr) {
    FillTiming(req.timestamp_ns, resp->timestamp_ns, &r);
    r.set_response_length(static_cast<int64_t>(resp->frame_bytes));
    r.set_resp_tcp_seq(resp->tcp_seq);
    std::string_view body = resp->payload.size() > 4 ? std::string_view(resp->payload).substr(4) : "";
    const int16_t code = ResponseErrorCode(req.api_key, req.api_version, body);
    r.set_response_code(code);
    r.set_response_status(code == 0 ? ::sonde::common::v1::RESPONSE_STATUS_OK : ErrorStatus(code));
  } else {
    FillTiming(req.timestamp_ns, timed_out ? now_ns : req.timestamp_ns, &r);
    r.set_response_length(-1);
    r.set_response_status(timed_out ? ::sonde::common::v1::RESPONSE_STATUS_TIMEOUT
                                    : ::sonde::common::v1::RESPONSE_STATUS_OK);
  }
}

}  // namespace

void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
            const StitchContext& ctx, RecordBuffer* out) {
  StitchById(
      requests, responses, &state->unpaired_responses, ctx,
      [](const Frame& req) { return req.expects_response; },
      [](const Frame& req, const Frame& resp) { return req.correlation_id == resp.correlation_id; },
      [&](const Frame& req, const Frame* resp, bool timed_out) {
        Emit(req, resp, timed_out, ctx.now_ns, out);
      });
}

void Traits::Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                    const StitchContext& ctx, RecordBuffer* out) {
  kafka::Stitch(requests, responses, state, ctx, out);
}

}  // namespace sonde::agent::protocols::kafka
