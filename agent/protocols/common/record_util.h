// Helpers stitchers share: filling timing/length/sequence fields of a record from its frames,
// timeouts, HTTP-style status mapping, trace-context headers and endpoint patterns.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "agent/protocols/common/parser.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols {

// True when a request sent at `request_ts_ns` should be reported as unanswered now: the
// connection is closed, or it is older than ctx.timeout_ns.
inline bool IsTimedOut(uint64_t request_ts_ns, const StitchContext& ctx) {
  if (ctx.connection_closed) return true;
  return ctx.now_ns > request_ts_ns && ctx.now_ns - request_ts_ns >= ctx.timeout_ns;
}

// Adds `n` to the context's unpaired-response counter when the caller asked for one.
inline void CountUnpairedResponses(const StitchContext& ctx, uint64_t n = 1) {
  if (ctx.unpaired_responses != nullptr) *ctx.unpaired_responses += n;
}

// Sets start/end time (microseconds), `time` (seconds of the end) and response_duration from a
// request start and a response end (an end before the start is taken as the start).
inline void FillTiming(uint64_t start_ns, uint64_t end_ns, v1::L7RequestLog* r) {
  if (end_ns < start_ns) end_ns = start_ns;
  r->set_start_time_us(start_ns / 1000);
  r->set_end_time_us(end_ns / 1000);
  r->set_time(static_cast<uint32_t>(end_ns / 1000000000ull));
  r->set_response_duration(end_ns / 1000 - start_ns / 1000);
}

// Stitching for protocols that pair a response with the oldest earlier request carrying the same
// id (Kafka correlation id, Dubbo request id). In order: requests that expect no response are
// emitted as complete; each response is paired (unmatched ones are counted in *unpaired and in
// the context); requests still unanswered after ctx.timeout_ns (or at close) become timeouts.
// emit(req, resp_or_null, timed_out) appends the record.
template <typename Frame, typename ExpectsResponse, typename SameId, typename Emit>
void StitchById(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, uint64_t* unpaired,
                const StitchContext& ctx, ExpectsResponse expects_response, SameId same_id,
                Emit emit) {
  for (auto it = requests->begin(); it != requests->end();) {
    if (!expects_response(*it)) {
      emit(*it, nullptr, false);
      it = requests->erase(it);
    } else {
      ++it;
    }
  }
  while (!responses->empty()) {
    const Frame& resp = responses->front();
    auto match = requests->end();
    for (auto it = requests->begin(); it != requests->end(); ++it) {
      if (same_id(*it, resp) && it->timestamp_ns <= resp.timestamp_ns) {
        match = it;
        break;
      }
    }
    if (match == requests->end()) {
      ++*unpaired;
      CountUnpairedResponses(ctx);
    } else {
      emit(*match, &resp, false);
      requests->erase(match);
    }
    responses->pop_front();
  }
  while (!requests->empty()) {
    const Frame& req = requests->front();
    if (!IsTimedOut(req.timestamp_ns, ctx)) break;
    emit(req, nullptr, true);
    requests->pop_front();
  }
}

// Fills start/end time, duration, lengths, TCP sequence numbers and eBPF syscall fields from a
// request frame and its response frame (nullptr: request only). Works for any frame type with
// timestamp_ns, tcp_seq and frame_bytes; tid and syscall_trace_id are used when present.
template <typename F>
void FillFromFrames(const F* req, const F* resp, v1::L7RequestLog* rec) {
  if (req != nullptr) {
    rec->set_start_time_us(req->timestamp_ns / 1000);
    rec->set_req_tcp_seq(req->tcp_seq);
    rec->set_request_length(static_cast<int64_t>(req->frame_bytes));
    if constexpr (requires { req->syscall_trace_id; req->tid; }) {
      rec->set_syscall_trace_id_request(req->syscall_trace_id);
      rec->set_syscall_thread_0(req->tid);
    }
  }
  if (resp != nullptr) {
    rec->set_end_time_us(resp->timestamp_ns / 1000);
    rec->set_resp_tcp_seq(resp->tcp_seq);
    rec->set_response_length(static_cast<int64_t>(resp->frame_bytes));
    if constexpr (requires { resp->syscall_trace_id; resp->tid; }) {
      rec->set_syscall_trace_id_response(resp->syscall_trace_id);
      rec->set_syscall_thread_1(resp->tid);
    }
  } else {
    rec->set_end_time_us(rec->start_time_us());
    rec->set_response_length(-1);
  }
  if (req == nullptr) {
    rec->set_start_time_us(rec->end_time_us());
    rec->set_request_length(-1);
  }
  rec->set_time(static_cast<uint32_t>(rec->start_time_us() / 1000000));
  rec->set_response_duration(rec->end_time_us() > rec->start_time_us()
                                 ? rec->end_time_us() - rec->start_time_us()
                                 : 0);
}

// Marks a request-only record as timed out (no response within the timeout or before close).
void MarkTimeout(v1::L7RequestLog* rec);

// 1xx-3xx ok, 4xx client error, 5xx server error, anything else unknown.
common::v1::ResponseStatus StatusFromHttpCode(int code);

// The trace-context fields of a record, kept by a parser until the record is built (a protobuf
// message per frame cost more than the frame). Same accessors as v1::L7RequestLog.
struct TraceFields {
  std::string x_request_id_, trace_id_, span_id_, parent_span_id_;
  const std::string& x_request_id() const { return x_request_id_; }
  const std::string& trace_id() const { return trace_id_; }
  const std::string& span_id() const { return span_id_; }
  const std::string& parent_span_id() const { return parent_span_id_; }
  void set_x_request_id(std::string v) { x_request_id_ = std::move(v); }
  void set_trace_id(std::string v) { trace_id_ = std::move(v); }
  void set_span_id(std::string v) { span_id_ = std::move(v); }
  void set_parent_span_id(std::string v) { parent_span_id_ = std::move(v); }
  bool empty() const {
    return x_request_id_.empty() && trace_id_.empty() && span_id_.empty() &&
           parent_span_id_.empty();
  }
};

// Applies one header (name lower-cased) to the record when it carries trace context or a request
// id: traceparent, b3, x-b3-traceid/-spanid/-parentspanid, sw8, uber-trace-id, x-request-id.
// The first trace context seen wins. Returns true when the header was used.
// Rec: v1::L7RequestLog or TraceFields.
template <typename Rec>
bool ApplyTraceHeader(std::string_view name_lower, std::string_view value, Rec* rec);

// The path without query string, with identifier-like segments (numbers, UUIDs, long hex or
// token strings) replaced by "{id}", so /users/42/orders -> /users/{id}/orders. Bounded length.
std::string EndpointPattern(std::string_view path);
// The same into *out (replacing its contents, reusing its capacity).
void EndpointPatternInto(std::string_view path, std::string* out);

// ASCII lower-case copy (other bytes unchanged).
std::string ToLower(std::string_view s);

// True when `hay`, ASCII lower-cased, contains `needle_lower` (which must be lower case). Same
// answer as ToLower(hay).find(needle_lower) != npos, without the copy.
bool ContainsIgnoreCase(std::string_view hay, std::string_view needle_lower);

// Reads `digits`, 1 to 18 ASCII decimal digits and nothing else (so no overflow), into *v; false
// otherwise. A plain loop for the short numbers of protocol heads (lengths, counts, codes): the
// same answers as std::from_chars gives for such a string, without its call per number.
inline bool ParseShortDecimal(std::string_view digits, uint64_t* v) {
  if (digits.empty() || digits.size() > 18) return false;
  uint64_t x = 0;
  for (char c : digits) {
    const unsigned d = static_cast<unsigned>(static_cast<unsigned char>(c)) - '0';
    if (d > 9) return false;
    x = x * 10 + d;
  }
  *v = x;
  return true;
}

}  // namespace sonde::agent::protocols
