// PostgreSQL stitching. Each Query, Sync or startup gets exactly one ReadyForQuery (or a fatal
// error), which makes batches pair in order even when a client pipelines them.
#include "agent/protocols/postgres/stitcher.h"

#include <algorithm>
#include <cctype>

#include "agent/protocols/common/record_util.h"
#include "agent/protocols/postgres/parser.h"

namespace sonde::agent::protocols::postgres {
namespace {

using ::sonde::common::v1::ResponseStatus;
constexpr size_t kMaxTextBytes = 1024;

std::string Capped(std::string_view s) { return std::string(s.substr(0, kMaxTextBytes)); }

// Splits NUL-terminated strings of a payload.
std::string_view CStr(std::string_view b, size_t* pos) {
  if (*pos >= b.size()) return {};
  size_t e = b.find('\0', *pos);
  if (e == std::string_view::npos) e = b.size();
  std::string_view s = b.substr(*pos, e - *pos);
  *pos = e + 1;
  return s;
}

bool EndsBatch(char t) {
  return t == 'Q' || t == 'S' || t == kStartup || t == kSslRequest || t == kCancelRequest ||
         t == 'X' || t == 'F';
}

// ASCII classes (what the C locale the agent runs in gives, without a libc call per byte).
bool IsSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string FirstKeyword(std::string_view sql) {
  size_t b = 0;
  while (b < sql.size() && (IsSpace(sql[b]) || sql[b] == '(')) ++b;
  size_t e = b;
  while (e < sql.size() && e - b < 32 && IsAlpha(sql[e])) ++e;
  std::string k(sql.substr(b, e - b));
  for (char& c : k) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return k;
}

// SQLSTATE classes that blame the server (resources, operator, system, internal, rollback).
ResponseStatus ErrorStatus(std::string_view sqlstate) {
  std::string_view cls = sqlstate.substr(0, 2);
  if (cls == "08" || cls == "40" || cls == "53" || cls == "55" || cls == "57" || cls == "58" ||
      cls == "XX") {
    return ::sonde::common::v1::RESPONSE_STATUS_SERVER_ERROR;
  }
  return ::sonde::common::v1::RESPONSE_STATUS_CLIENT_ERROR;
}

// Describes the request batch [begin, end] and updates named statements.
void DescribeBatch(const FrameQueue<Frame>& reqs, size_t end, State* s, v1::L7RequestLog* r) {
  int rank = 0;  // Execute > Bind > Parse > Describe > Close > Sync
  std::string_view type = "Sync";
  std::string text;
  auto take = [&](int k, std::string_view name) {
    if (k > rank) {
      rank = k;
      type = name;
    }
  };
  int64_t bytes = 0;
  for (size_t i = 0; i <= end; ++i) {
    const Frame& f = reqs[i];
    bytes += static_cast<int64_t>(f.frame_bytes);
    size_t pos = 0;
    switch (f.type) {
      case 'Q':
        type = "Query";
        rank = 10;
        text.assign(CStr(f.payload, &pos).substr(0, kMaxTextBytes));
        break;
      case 'P': {
        // Views into the payload; strings only for what is kept.
        const std::string_view name = CStr(f.payload, &pos);
        const std::string_view query = CStr(f.payload, &pos).substr(0, kMaxTextBytes);
        if (auto it = s->statements.find(name); it != s->statements.end()) {
          it->second.assign(query);
        } else if (s->statements.size() < kMaxStatements) {
          s->statements.emplace(std::string(name), std::string(query));
        }
        text.assign(query);
        take(3, "Parse");
        break;
      }
      case 'B': {
        CStr(f.payload, &pos);  // portal
        const std::string_view stmt = CStr(f.payload, &pos);
        if (auto it = s->statements.find(stmt); it != s->statements.end()) text = it->second;
        take(4, "Bind");
        break;
      }
      case 'E':
        take(5, "Execute");
        break;
      case 'D':
        take(2, "Describe");
        break;
      case 'C':
        if (f.payload.size() > 1 && f.payload[0] == 'S') {
          pos = 1;
          if (auto it = s->statements.find(CStr(f.payload, &pos)); it != s->statements.end()) {
            s->statements.erase(it);
          }
        }
        take(1, "Close");
        break;
      case 'F':
        type = "FunctionCall";
        rank = 10;
        break;
      case kStartup: {
        type = "Startup";
        rank = 10;
        const uint32_t code = f.payload.size() >= 4
                                  ? static_cast<uint32_t>(static_cast<uint8_t>(f.payload[0])) << 8 |
                                        static_cast<uint8_t>(f.payload[1])
                                  : 3;
        s->version = std::to_string(code) + ".0";
        pos = 4;
        for (int k = 0; k < 64 && pos < f.payload.size(); ++k) {
          std::string_view key = CStr(f.payload, &pos);
          if (key.empty()) break;
          std::string_view value = CStr(f.payload, &pos);
          if (key == "user") s->user = Capped(value);
          if (key == "database") s->database = Capped(value);
        }
        if (s->database.empty()) s->database = s->user;  // the server's default
        text = s->user;
        break;
      }
      default:
        break;
    }
  }
  r->set_request_type(std::string(type));
  r->set_endpoint(type == "Startup" || text.empty() ? std::string(type) : FirstKeyword(text));
  r->set_request_resource(std::move(text));
  r->set_request_length(bytes);
}

}  // namespace

void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
            const StitchContext& ctx, RecordBuffer* out) {
  for (int guard = 0; guard < 1000000 && !requests->empty(); ++guard) {
    // Password/SASL answers and COPY data belong to the exchange before them (startup, COPY
    // query), which completes later at its ReadyForQuery; they must not start the next batch.
    const char lead = requests->front().type;
    if (lead == 'p' || lead == 'd' || lead == 'c' || lead == 'f') {
      requests->pop_front();
      continue;
    }
    // The batch: requests up to the first message that gets its own ReadyForQuery.
    size_t end = 0;
    while (end < requests->size() && !EndsBatch((*requests)[end].type)) ++end;
    const Frame& first = requests->front();
    const bool timed_out = IsTimedOut(first.timestamp_ns, ctx);
    if (end == requests->size()) {
      if (!timed_out) break;
      --end;  // e.g. Parse/Bind/Execute/Flush never followed by Sync
    }
    const char end_type = (*requests)[end].type;
    if (end_type == 'X' || end_type == kCancelRequest) {  // no response comes
      for (size_t i = 0; i <= end; ++i) requests->pop_front();
      continue;
    }
    // Drop responses older than the batch (their requests were not captured).
    while (!responses->empty() && responses->front().timestamp_ns < first.timestamp_ns) {
      ++state->unpaired_responses, CountUnpairedResponses(ctx);
      responses->pop_front();
    }
    // The responses: up to ReadyForQuery (a fatal startup error has none).
    size_t rend = 0;
    bool complete = false;
    for (; rend < responses->size(); ++rend) {
      const Frame& f = (*responses)[rend];
      if (end_type == kSslRequest ? f.type == kSslAnswer : f.type == 'Z') {
        complete = true;
        break;
      }
      if (end_type == kStartup && f.type == 'E' && f.payload.find("SFATAL") != std::string::npos) {
        complete = true;
        break;
      }
    }
    if (!complete && !timed_out) break;
    if (end_type == kSslRequest) {  // not a request of its own; the startup follows
      for (size_t i = 0; i <= end; ++i) requests->pop_front();
      if (complete) responses->pop_front();
      continue;
    }
    v1::L7RequestLog& r = out->Add();
    r.set_l7_protocol(Traits::kProtocol);
    DescribeBatch(*requests, end, state, &r);
    r.set_version(state->version);
    r.set_request_domain(state->database);
    r.set_req_tcp_seq(first.tcp_seq);
    const size_t nresp = complete ? rend + 1 : responses->size();
    int64_t resp_bytes = 0;
    uint64_t rows = 0;
    std::string tag, sqlstate, message;
    for (size_t i = 0; i < nresp; ++i) {
      const Frame& f = (*responses)[i];
      resp_bytes += static_cast<int64_t>(f.frame_bytes);
      size_t pos = 0;
      if (f.type == 'D') ++rows;
      if (f.type == 'C') tag = Capped(CStr(f.payload, &pos));
      if (f.type == 'E' && sqlstate.empty()) {
        for (int k = 0; k < 64 && pos < f.payload.size(); ++k) {
          const char field = f.payload[pos++];
          if (field == '\0') break;
          std::string_view v = CStr(f.payload, &pos);
          if (field == 'C') sqlstate = std::string(v.substr(0, 5));
          if (field == 'M') message = Capped(v);
        }
        if (sqlstate.empty()) sqlstate = "XX000";
      }
    }
    if (nresp > 0) {
      FillTiming(first.timestamp_ns, (*responses)[nresp - 1].timestamp_ns, &r);
      r.set_resp_tcp_seq(responses->front().tcp_seq);
      r.set_response_length(resp_bytes);
    } else {
      FillTiming(first.timestamp_ns, ctx.now_ns, &r);
      r.set_response_length(-1);
    }
    if (!sqlstate.empty()) {
      r.set_response_status(ErrorStatus(sqlstate));
      r.set_response_exception(message);
      r.set_response_result("SQLSTATE " + sqlstate);
      if (std::all_of(sqlstate.begin(), sqlstate.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
        r.set_response_code(std::stoi(sqlstate));
      }
    } else if (!complete) {
      r.set_response_status(::sonde::common::v1::RESPONSE_STATUS_TIMEOUT);
    } else {
      r.set_response_status(::sonde::common::v1::RESPONSE_STATUS_OK);
      r.set_response_result(tag);
    }
    for (size_t i = 0; i <= end; ++i) requests->pop_front();
    for (size_t i = 0; i < nresp; ++i) responses->pop_front();
  }
  // Anything the server says with no request left (notifications, parameter changes) is dropped.
  if (requests->empty()) {
    while (!responses->empty()) {
      const char t = responses->front().type;
      if (t != 'A' && t != 'N' && t != 'S') ++state->unpaired_responses, CountUnpairedResponses(ctx);
      responses->pop_front();
    }
  }
}

void Traits::Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                    const StitchContext& ctx, RecordBuffer* out) {
  postgres::Stitch(requests, responses, state, ctx, out);
}

}  // namespace sonde::agent::protocols::postgres
