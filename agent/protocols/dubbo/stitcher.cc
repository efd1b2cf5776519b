// Dubbo stitching by request id, with the response status mapped to our status classes.
#include "agent/protocols/dubbo/stitcher.h"

#include "agent/protocols/common/record_util.h"
#include "agent/protocols/dubbo/parser.h"

namespace sonde::agent::protocols::dubbo {
namespace {

using ::sonde::common::v1::ResponseStatus;

// 20 OK; 30 client timeout, 40 bad request, 60 service not found, 90 client error are the
// caller's; 31 server timeout, 50 bad response, 70 service error, 80 server error and
// 100 thread pool exhausted are the provider's.
ResponseStatus StatusOf(const Frame& resp) {
  switch (resp.status) {
    case 20:
      return resp.has_exception ? ::sonde::common::v1::RESPONSE_STATUS_SERVER_ERROR
                                : ::sonde::common::v1::RESPONSE_STATUS_OK;
    case 30: case 40: case 60: case 90:
      return ::sonde::common::v1::RESPONSE_STATUS_CLIENT_ERROR;
    case 31: case 50: case 70: case 80: case 100:
      return ::sonde::common::v1::RESPONSE_STATUS_SERVER_ERROR;
    default:
      return ::sonde::common::v1::RESPONSE_STATUS_UNKNOWN;
  }
}

void Emit(const Frame& req, const Frame* resp, bool timed_out, uint64_t now_ns,
          RecordBuffer* out) {
  v1::L7RequestLog& r = out->Add();
  r.set_l7_protocol(Traits::kProtocol);
  r.set_version(req.dubbo_version);
  r.set_request_type(req.method);
  std::string resource = req.service;
  if (!req.service_version.empty() && req.service_version != "0.0.0") {
    resource += ":" + req.service_version;
  }
  r.set_request_resource(resource);
  r.set_endpoint(req.service.empty() ? req.method : req.service + "/" + req.method);
  r.set_request_id(req.request_id);
  r.set_request_length(static_cast<int64_t>(req.frame_bytes));
  r.set_req_tcp_seq(req.tcp_seq);
  if (resp != nullptr) {
    FillTiming(req.timestamp_ns, resp->timestamp_ns, &r);
    r.set_response_length(static_cast<int64_t>(resp->frame_bytes));
    r.set_resp_tcp_seq(resp->tcp_seq);
    r.set_response_code(resp->status);
    r.set_response_status(StatusOf(*resp));
    if (!resp->error.empty()) r.set_response_exception(resp->error);
    if (resp->has_exception) r.set_response_exception("exception result");
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
      [](const Frame& req) { return req.two_way; },
      [](const Frame& req, const Frame& resp) { return req.request_id == resp.request_id; },
      [&](const Frame& req, const Frame* resp, bool timed_out) {
        Emit(req, resp, timed_out, ctx.now_ns, out);
      });
}

void Traits::Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                    const StitchContext& ctx, RecordBuffer* out) {
  dubbo::Stitch(requests, responses, state, ctx, out);
}

}  // namespace sonde::agent::protocols::dubbo
