// HTTP/1.x framing, body skipping, FIFO stitching and inference.
#include "agent/protocols/http1/parser.h"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "agent/protocols/common/record_util.h"

namespace sonde::agent::protocols::http1 {
namespace {

constexpr std::array<std::string_view, 20> kMethods = {
    "GET",  "POST",     "PUT",       "DELETE", "HEAD", "OPTIONS", "PATCH",
    "CONNECT", "TRACE", "PROPFIND",  "PROPPATCH", "MKCOL", "COPY", "MOVE",
    "LOCK", "UNLOCK",   "REPORT",    "SEARCH", "PURGE", "MERGE"};
static_assert([] {
  for (std::string_view m : kMethods) {
    if (m.empty() || m[0] < 'C' || m[0] > 'U') return false;  // StartsWithMethod relies on it
  }
  return true;
}());
constexpr size_t kMaxHeadBytes = 32 * 1024;
constexpr size_t kMaxLineBytes = 8 * 1024;
constexpr size_t kMaxFieldBytes = 2048;
constexpr size_t kMaxPendingMethods = 256;
constexpr std::string_view kRespPrefix = "HTTP/1.";

size_t DirIndex(MessageType t) { return t == MessageType::kResponse ? 1 : 0; }

std::string_view TrimWs(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

// 0x20 in each byte of `w` that is a lower-case letter, 0 in the others. Every byte of `w`
// must be below 0x80 (no carry crosses a byte).
template <typename Word>
Word LowerLetterMask(Word w) {
  constexpr Word kOnes = static_cast<Word>(0x0101010101010101ULL);
  const Word at_least_a = w + kOnes * (0x80 - 'a');
  const Word above_z = w + kOnes * (0x80 - 'z' - 1);
  return static_cast<Word>(((at_least_a & ~above_z) & (kOnes * 0x80)) >> 2);
}

// One word of `a` against the same word of lower-case `b`: letters of `b` match either case
// (x | 0x20 is a lower-case letter only for that letter's two cases), other bytes exactly.
template <typename Word>
bool IEqualsWord(const char* a, const char* b) {
  Word x, y;
  std::memcpy(&x, a, sizeof(Word));
  std::memcpy(&y, b, sizeof(Word));
  return (x | LowerLetterMask(y)) == y;
}

// `b` must be lower-case ASCII. Same answers as comparing AsciiLower(a[i]) with b[i] byte by
// byte, a word at a time (the last word overlaps the one before it).
bool IEquals(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) {
      if (!IEqualsWord<uint64_t>(a.data() + i, b.data() + i)) return false;
    }
    return IEqualsWord<uint64_t>(a.data() + n - 8, b.data() + n - 8);
  }
  if (n >= 4) {
    return IEqualsWord<uint32_t>(a.data(), b.data()) &&
           IEqualsWord<uint32_t>(a.data() + n - 4, b.data() + n - 4);
  }
  for (size_t i = 0; i < n; ++i) {
    if (AsciiLower(a[i]) != b[i]) return false;
  }
  return true;
}

// Header names that may carry trace context or a request id (see ApplyTraceHeader).
bool MaybeTraceHeader(std::string_view name) {
  if (name.size() < 2 || name.size() > 17) return false;
  switch (AsciiLower(name[0])) {
    case 'x': return IEquals(name, "x-request-id") || IEquals(name, "x-b3-traceid") ||
                     IEquals(name, "x-b3-spanid") || IEquals(name, "x-b3-parentspanid");
    case 't': return IEquals(name, "traceparent");
    case 'b': return IEquals(name, "b3");
    case 's': return IEquals(name, "sw8");
    case 'u': return IEquals(name, "uber-trace-id");
    default: return false;
  }
}

// `needle` must be lower case and not empty. Only positions whose first byte matches are compared.
bool IContains(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  const char first = needle[0];
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    if (AsciiLower(hay[i]) == first && IEquals(hay.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

bool IsResponseStart(std::string_view s, bool* maybe) {
  if (s.size() < kRespPrefix.size() + 1) {
    if (maybe != nullptr && kRespPrefix.starts_with(s.substr(0, kRespPrefix.size()))) *maybe = true;
    return false;
  }
  return s.starts_with(kRespPrefix) && (s[7] == '0' || s[7] == '1');
}

bool ParseUint(std::string_view s, uint64_t* v, int base = 10) {
  s = TrimWs(s);
  if (s.empty() || s.size() > 18) return false;
  if (base == 10) return ParseShortDecimal(s, v);  // digits only, as from_chars reads them
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v, base);
  return ec == std::errc() && p == s.data() + s.size();
}

enum class ChunkResult { kNeedMore, kDone, kInvalid };

// Skips chunked-body bytes from `data`, advancing *ds; *used receives the bytes consumed.
ChunkResult SkipChunked(DirectionState* ds, std::string_view data, size_t* used) {
  size_t pos = 0;
  // Each iteration consumes bytes or returns, so this is bounded by data.size().
  while (pos < data.size()) {
    std::string_view rest = data.substr(pos);
    if (ds->chunk_data) {
      if (ds->remaining > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(ds->remaining, rest.size()));
        pos += n;
        ds->remaining -= n;
        continue;
      }
      if (rest[0] == '\n') {
        pos += 1;
      } else if (rest[0] == '\r') {
        if (rest.size() < 2) break;
        if (rest[1] != '\n') return ChunkResult::kInvalid;
        pos += 2;
      } else {
        return ChunkResult::kInvalid;
      }
      ds->chunk_data = false;
      continue;
    }
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) {
      if (rest.size() > kMaxLineBytes) return ChunkResult::kInvalid;
      break;
    }
    std::string_view line = TrimWs(rest.substr(0, nl));
    pos += nl + 1;
    if (ds->trailers) {
      if (line.empty()) {
        ds->trailers = false;
        ds->mode = BodyMode::kNone;
        *used = pos;
        return ChunkResult::kDone;
      }
      continue;
    }
    size_t semi = line.find(';');
    uint64_t size = 0;
    if (!ParseUint(line.substr(0, semi), &size, 16) || size > (1ULL << 40)) {
      return ChunkResult::kInvalid;
    }
    if (size == 0) {
      ds->trailers = true;
    } else {
      ds->remaining = size;
      ds->chunk_data = true;
    }
  }
  *used = pos;
  return ChunkResult::kNeedMore;
}

ParseState ContinueBody(DirectionState* ds, std::string_view* buf) {
  switch (ds->mode) {
    case BodyMode::kOpaque:
    case BodyMode::kUntilClose:
      buf->remove_prefix(buf->size());
      return ParseState::kIgnored;
    case BodyMode::kLength: {
      size_t n = static_cast<size_t>(std::min<uint64_t>(ds->remaining, buf->size()));
      ds->remaining -= n;
      if (ds->remaining == 0) ds->mode = BodyMode::kNone;
      buf->remove_prefix(n);
      return ParseState::kIgnored;
    }
    case BodyMode::kChunked: {
      size_t used = 0;
      ChunkResult r = SkipChunked(ds, *buf, &used);
      if (r == ChunkResult::kInvalid) {
        *ds = DirectionState{};
        return ParseState::kInvalid;
      }
      if (used == 0) return ParseState::kNeedsMoreData;
      buf->remove_prefix(used);
      return ParseState::kIgnored;
    }
    case BodyMode::kNone:
      break;
  }
  return ParseState::kNeedsMoreData;  // not reached
}

struct Head {
  uint64_t content_length = 0;
  bool has_length = false;
  bool chunked = false;
  // Connection: is not read: an upgrade shows in the 101 status, and a close-delimited body in
  // the missing length.
};

bool IsWs(char c) { return c == ' ' || c == '\t'; }

// The first ':' or ' ' in [p, e), or e. Sixteen bytes at a time (SSE2, in every x86-64) while
// that many are left, else eight (the lowest byte flagged by the zero-byte test is exact; bytes
// are loaded little-endian).
const char* FindColonOrSpace(const char* p, const char* e) {
#if defined(__SSE2__)
  const __m128i colon = _mm_set1_epi8(':'), space = _mm_set1_epi8(' ');
  while (e - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, colon), _mm_cmpeq_epi8(v, space)));
    if (m != 0) return p + __builtin_ctz(static_cast<unsigned>(m));
    p += 16;
  }
#endif
  static_assert(std::endian::native == std::endian::little);
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHighs = 0x8080808080808080ULL;
  while (e - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    const uint64_t c = w ^ (kOnes * ':'), s = w ^ (kOnes * ' ');
    const uint64_t z = ((c - kOnes) & ~c & kHighs) | ((s - kOnes) & ~s & kHighs);
    if (z != 0) return p + (__builtin_ctzll(z) >> 3);
    p += 8;
  }
  while (p < e && *p != ':' && *p != ' ') ++p;
  return p;
}

// The first '\n' of b at or after `from`, or npos: b.find('\n', from) inline. Header lines are
// a few dozen bytes, where the call into memchr (one per line) cost more than the search.
size_t FindNewline(std::string_view b, size_t from) {
  if (from >= b.size()) return std::string_view::npos;
  const char* const begin = b.data();
  const char* p = begin + from;
  const char* const e = begin + b.size();
#if defined(__SSE2__)
  const __m128i nl = _mm_set1_epi8('\n');
  while (e - p >= 16) {
    const int m = _mm_movemask_epi8(
        _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), nl));
    if (m != 0) return static_cast<size_t>(p - begin) + __builtin_ctz(static_cast<unsigned>(m));
    p += 16;
  }
#endif
  for (; p < e; ++p) {
    if (*p == '\n') return static_cast<size_t>(p - begin);
  }
  return std::string_view::npos;
}

// Parses one header line [b, e) (its '\n' excluded). False when it is malformed. Trimmed like
// TrimWs: spaces and tabs in front, spaces, tabs and CR behind; then the name up to the colon,
// compared only against the known names of its length. `*count` counts non-empty lines.
bool ParseHeaderLine(const char* b, const char* e, Frame* f, Head* h, int* count) {
  while (b < e && IsWs(*b)) ++b;
  while (e > b && (IsWs(e[-1]) || e[-1] == '\r')) --e;
  if (b == e) return true;
  if (++*count > 256) return false;
  // The name ends at the first colon; no colon, an empty name or a space in it is malformed.
  const char* colon = FindColonOrSpace(b, e);
  if (colon == e || *colon == ' ' || colon == b) return false;
  const std::string_view name(b, static_cast<size_t>(colon - b));
  const char* vb = colon + 1;
  while (vb < e && IsWs(*vb)) ++vb;
  const std::string_view value(vb, static_cast<size_t>(e - vb));  // e already trimmed
  // No per-header allocation: names are compared case-insensitively in place.
  // The first letter rules out most other names of the same length without a call (IEquals
  // matches a letter of the known name in either case, and only so).
  const char first = AsciiLower(name[0]);
  switch (name.size()) {
    case 14:
      if (first == 'c' && IEquals(name, "content-length")) {
        if (!ParseUint(value, &h->content_length)) return false;
        h->has_length = true;
        return true;
      }
      break;
    case 17:
      if (first == 't' && IEquals(name, "transfer-encoding")) {
        h->chunked = IContains(value, "chunked");
        return true;
      }
      break;
    case 4:
      if (first == 'h' && IEquals(name, "host")) {
        f->host.assign(value.substr(0, kMaxFieldBytes));
        return true;
      }
      break;
    case 10:
      if (first == 'u' && IEquals(name, "user-agent")) {
        f->user_agent.assign(value.substr(0, kMaxFieldBytes));
        return true;
      }
      break;
    default:
      break;
  }
  if (MaybeTraceHeader(name)) {
    char lower[17];  // MaybeTraceHeader bounds the name to 17 bytes
    for (size_t i = 0; i < name.size(); ++i) lower[i] = AsciiLower(name[i]);
    ApplyTraceHeader(std::string_view(lower, name.size()), value, &f->trace);
  }
  return true;
}

// Parses the header lines after the start line. False on malformed input.
bool ParseHeaders(std::string_view lines, Frame* f, Head* h) {
  const char* p = lines.data();
  const char* const end = p + lines.size();
  int count = 0;
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    const char* e = nl != nullptr ? nl : end;
    if (!ParseHeaderLine(p, e, f, h, &count)) return false;
    p = nl != nullptr ? nl + 1 : end;
  }
  return true;
}

// One pass over a head that is complete in `b`: finds its end (the index after the first empty
// line, "\n" or "\r\n", whose preceding '\n' lies within kMaxHeadBytes) while parsing the
// header lines on the way, so each line is scanned once. Returns the end, or npos
// when the head is not complete within kMaxHeadBytes (the caller then takes the general path,
// with a fresh frame). *ok is false when a header line was malformed.
size_t ScanHead(std::string_view b, Frame* f, Head* h, bool* ok, size_t* start_line_end) {
  const size_t limit = std::min(b.size(), kMaxHeadBytes);
  size_t prev = FindNewline(b, 0);  // end of the start line
  *start_line_end = prev;
  int count = 0;
  *ok = true;
  while (prev != std::string_view::npos && prev < limit) {
    const size_t line = prev + 1;
    if (line < b.size() && b[line] == '\n') return prev + 2;
    if (line + 1 < b.size() && b[line] == '\r' && b[line + 1] == '\n') return prev + 3;
    const size_t nl = FindNewline(b, line);
    if (nl == std::string_view::npos) return std::string_view::npos;
    if (*ok) *ok = ParseHeaderLine(b.data() + line, b.data() + nl, f, h, &count);
    prev = nl;
  }
  return std::string_view::npos;
}

// `truncated`: the stream ended inside this head; its complete lines are all there will be.
ParseState ParseHead(bool is_request, std::string_view* buf, Frame* f, State* state,
                     bool truncated = false) {
  std::string_view b = *buf;
  bool maybe = false;
  if (is_request ? !StartsWithMethod(b, &maybe) : !IsResponseStart(b, &maybe)) {
    return maybe && !truncated ? ParseState::kNeedsMoreData : ParseState::kInvalid;
  }
  Head h;
  bool headers_ok = true;
  size_t start_line_end = std::string_view::npos;  // its newline, when the head is complete
  size_t end = ScanHead(b, f, &h, &headers_ok, &start_line_end);
  const bool scanned = end != std::string_view::npos;
  if (!scanned) {  // the general path parses the headers itself
    *f = Frame{};
    h = Head{};
  }
  if (end == std::string_view::npos && truncated) {
    const size_t last_nl = b.substr(0, kMaxHeadBytes).rfind('\n');
    if (last_nl == std::string_view::npos) return ParseState::kInvalid;
    end = last_nl + 1;
    const size_t first_nl = b.find('\n');
    if (is_request && b.substr(0, first_nl).find(" HTTP/1.") == std::string_view::npos) {
      return ParseState::kInvalid;
    }
  }
  if (end == std::string_view::npos) {
    size_t first_nl = b.find('\n');
    if (first_nl == std::string_view::npos && b.size() > kMaxLineBytes) return ParseState::kInvalid;
    if (first_nl != std::string_view::npos && is_request &&
        b.substr(0, first_nl).find(" HTTP/1.") == std::string_view::npos) {
      return ParseState::kInvalid;
    }
    return b.size() >= kMaxHeadBytes ? ParseState::kInvalid : ParseState::kNeedsMoreData;
  }
  std::string_view head = b.substr(0, end);
  // A complete head ends after its start line, so ScanHead's first newline is the head's.
  const size_t nl = scanned ? start_line_end : head.find('\n');
  std::string_view start_line = TrimWs(head.substr(0, nl));
  f->is_request = is_request;
  if (is_request) {
    size_t sp1 = start_line.find(' ');
    size_t sp2 = start_line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 <= sp1) return ParseState::kInvalid;
    std::string_view proto = start_line.substr(sp2 + 1);
    if (!proto.starts_with("HTTP/1.") || proto.size() != 8) return ParseState::kInvalid;
    f->method.assign(start_line.substr(0, sp1));
    f->target.assign(TrimWs(start_line.substr(sp1 + 1, sp2 - sp1 - 1)).substr(0, kMaxFieldBytes));
    f->version.assign(proto.substr(5));
  } else {
    if (start_line.size() < 12 || start_line[8] != ' ') return ParseState::kInvalid;
    uint64_t code = 0;
    if (!ParseUint(start_line.substr(9, 3), &code) || code < 100 || code > 999) {
      return ParseState::kInvalid;
    }
    f->version.assign(start_line.substr(5, 3));
    f->status = static_cast<int>(code);
    if (start_line.size() > 13) f->reason.assign(start_line.substr(13, 256));
  }
  if (scanned ? !headers_ok : !ParseHeaders(head.substr(nl + 1), f, &h)) return ParseState::kInvalid;
  f->header_bytes = static_cast<int64_t>(end);

  DirectionState& ds = state->dir[is_request ? 0 : 1];
  ds = DirectionState{};
  if (is_request) {
    if (state->methods.size() >= kMaxPendingMethods) state->methods.pop_front();
    state->methods.push_back(f->method == "HEAD"      ? PendingMethod::kHead
                             : f->method == "CONNECT" ? PendingMethod::kConnect
                                                      : PendingMethod::kOther);
    if (h.chunked) {
      ds.mode = BodyMode::kChunked;
    } else if (h.has_length && h.content_length > 0) {
      ds.mode = BodyMode::kLength;
      ds.remaining = h.content_length;
    }
  } else {
    if (f->status < 200) {
      if (f->status == 101) {
        state->dir[0].mode = BodyMode::kOpaque;
        ds.mode = BodyMode::kOpaque;
        state->methods.clear();
      }
      buf->remove_prefix(end);
      return ParseState::kIgnored;  // 100 Continue and friends: the final response follows
    }
    PendingMethod method = PendingMethod::kOther;
    if (!state->methods.empty()) {
      method = state->methods.front();
      state->methods.pop_front();
    }
    if (method == PendingMethod::kConnect && f->status < 300) {
      state->dir[0].mode = BodyMode::kOpaque;
      ds.mode = BodyMode::kOpaque;
    } else if (method == PendingMethod::kHead || f->status == 204 || f->status == 304) {
      // no body
    } else if (h.chunked) {
      ds.mode = BodyMode::kChunked;
    } else if (h.has_length) {
      if (h.content_length > 0) {
        ds.mode = BodyMode::kLength;
        ds.remaining = h.content_length;
      }
    } else {
      ds.mode = BodyMode::kUntilClose;
    }
  }
  // Take whatever body is already here, so small messages are complete in one frame.
  size_t used = end;
  std::string_view body = b.substr(end);
  switch (ds.mode) {
    case BodyMode::kNone:
      f->body_bytes = 0;
      break;
    case BodyMode::kLength: {
      f->body_bytes = static_cast<int64_t>(ds.remaining);
      size_t n = static_cast<size_t>(std::min<uint64_t>(ds.remaining, body.size()));
      used += n;
      ds.remaining -= n;
      if (ds.remaining == 0) ds.mode = BodyMode::kNone;
      break;
    }
    case BodyMode::kChunked: {
      size_t n = 0;
      ChunkResult r = SkipChunked(&ds, body, &n);
      if (r == ChunkResult::kInvalid) {
        ds = DirectionState{};  // resume at the next head
      } else {
        used += n;
        if (r == ChunkResult::kDone) f->body_bytes = static_cast<int64_t>(n);
      }
      break;
    }
    case BodyMode::kUntilClose:
    case BodyMode::kOpaque:
      used = b.size();
      break;
  }
  buf->remove_prefix(used);
  return ParseState::kSuccess;
}

// Moves the frames' strings into the record (the frames are dropped right after).
void BuildRecord(Frame& req, Frame* resp, v1::L7RequestLog* rec) {
  FillFromFrames<Frame>(&req, resp, rec);
  EndpointPatternInto(req.target, rec->mutable_endpoint());
  rec->set_version(std::move(req.version));
  rec->set_request_type(std::move(req.method));
  if (!req.host.empty()) rec->set_request_domain(std::move(req.host));
  rec->set_request_resource(std::move(req.target));
  if (!req.user_agent.empty()) rec->set_user_agent(std::move(req.user_agent));
  // Empty strings are not set: in proto3 that is the same record, without an allocation.
  TraceFields& rt = req.trace;
  if (!rt.x_request_id_.empty()) rec->set_x_request_id(std::move(rt.x_request_id_));
  if (!rt.trace_id_.empty()) rec->set_trace_id(std::move(rt.trace_id_));
  if (!rt.span_id_.empty()) rec->set_span_id(std::move(rt.span_id_));
  if (!rt.parent_span_id_.empty()) rec->set_parent_span_id(std::move(rt.parent_span_id_));
  if (req.body_bytes >= 0) rec->set_request_length(req.header_bytes + req.body_bytes);
  if (resp != nullptr) {
    rec->set_response_code(resp->status);
    rec->set_response_status(StatusFromHttpCode(resp->status));
    if (resp->status >= 400) rec->set_response_exception(std::move(resp->reason));
    if (resp->body_bytes >= 0) rec->set_response_length(resp->header_bytes + resp->body_bytes);
    TraceFields& st = resp->trace;
    if (!st.empty()) {
      if (rec->x_request_id().empty() && !st.x_request_id_.empty()) {
        rec->set_x_request_id(std::move(st.x_request_id_));
      }
      if (rec->trace_id().empty()) {
        // The response's trace context replaces the request's span id too (even with none).
        if (!st.trace_id_.empty()) rec->set_trace_id(std::move(st.trace_id_));
        if (!st.span_id_.empty()) {
          rec->set_span_id(std::move(st.span_id_));
        } else {
          rec->clear_span_id();
        }
      }
    }
  }
}

}  // namespace

bool StartsWithMethod(std::string_view s, bool* maybe) {
  // Every method starts with a letter from 'C' to 'U': anything else (binary protocols being
  // inferred) is no method nor the start of one, without trying all twenty.
  if (s.empty() || s[0] < 'C' || s[0] > 'U') return false;
  for (std::string_view m : kMethods) {
    if (s.size() > m.size()) {
      // First byte and the space after the method first: most methods are ruled out without
      // a memcmp call.
      if (s[0] == m[0] && s[m.size()] == ' ' && s.starts_with(m)) return true;
    } else if (maybe != nullptr && !s.empty() && m.starts_with(s)) {
      *maybe = true;
    } else if (maybe != nullptr && s.size() == m.size() && s == m) {
      *maybe = true;
    }
  }
  return false;
}

size_t Traits::FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                 State* state) {
  const size_t d = DirIndex(type);
  DirectionState& ds = state->dir[d];
  if (ds.mode == BodyMode::kOpaque || ds.mode == BodyMode::kUntilClose) return start;
  ds = DirectionState{};  // whatever body we were in is lost
  const bool is_request = type != MessageType::kResponse;
  // After a gap the next head can start anywhere (e.g. right after a lost body's tail).
  for (size_t i = start; i < buf.size(); ++i) {
    const char c = buf[i];
    if (is_request) {
      if (c < 'A' || c > 'Z' || (i > start && buf[i - 1] >= 'A' && buf[i - 1] <= 'Z')) continue;
      bool maybe = false;
      std::string_view s = buf.substr(i);
      if (StartsWithMethod(s, &maybe)) {
        size_t nl = s.find('\n');
        if (nl == std::string_view::npos ||
            s.substr(0, nl).find(" HTTP/1.") != std::string_view::npos) {
          return i;
        }
      } else if (maybe) {
        return i;  // a head may start here; wait for more bytes
      }
    } else {
      if (c != 'H') continue;
      bool maybe = false;
      if (IsResponseStart(buf.substr(i), &maybe) || maybe) return i;
    }
  }
  return std::string_view::npos;
}

ParseState Traits::ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                              State* state) {
  bool is_request = type != MessageType::kResponse;
  if (type == MessageType::kUnknown) is_request = !buf->starts_with("HTTP/");
  DirectionState& ds = state->dir[is_request ? 0 : 1];
  if (ds.mode != BodyMode::kNone) return ContinueBody(&ds, buf);
  return ParseHead(is_request, buf, frame, state);
}

ParseState Traits::ParseTruncatedFrame(MessageType type, std::string_view* buf, Frame* frame,
                                       State* state) {
  bool is_request = type != MessageType::kResponse;
  if (type == MessageType::kUnknown) is_request = !buf->starts_with("HTTP/");
  // Inside a body there is no head to salvage.
  if (state->dir[is_request ? 0 : 1].mode != BodyMode::kNone) return ParseState::kInvalid;
  return ParseHead(is_request, buf, frame, state, /*truncated=*/true);
}

void Traits::Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State*,
                    const StitchContext& ctx, RecordBuffer* out) {
  while (!responses->empty()) {
    if (requests->empty() && !IsTimedOut(responses->front().timestamp_ns, ctx)) {
      // The request head may still be arriving (or be cut short, then salvaged at close):
      // the response waits for it until the request timeout.
      break;
    }
    if (requests->empty() || responses->front().timestamp_ns < requests->front().timestamp_ns) {
      // A response to a request we never saw (capture started mid-exchange, or a gap).
      CountUnpairedResponses(ctx);
      responses->pop_front();
      continue;
    }
    BuildRecord(requests->front(), &responses->front(), &out->Add());
    requests->pop_front();
    responses->pop_front();
  }
  while (!requests->empty() && IsTimedOut(requests->front().timestamp_ns, ctx)) {
    v1::L7RequestLog& rec = out->Add();
    BuildRecord(requests->front(), nullptr, &rec);
    MarkTimeout(&rec);
    requests->pop_front();
  }
}

InferResult Infer(flow::StreamDirection dir, std::string_view data, const flow::ConnectionInfo&) {
  bool maybe = false;
  if (dir == flow::StreamDirection::kRequest) {
    if (!StartsWithMethod(data, &maybe)) return maybe ? InferResult::kMaybe : InferResult::kNo;
    size_t nl = data.find('\n');
    std::string_view line = data.substr(0, nl);
    if (line.find(" HTTP/1.") != std::string_view::npos) return InferResult::kYes;
    if (nl == std::string_view::npos && data.size() < 2048) return InferResult::kMaybe;
    return InferResult::kNo;
  }
  if (IsResponseStart(data, &maybe)) return InferResult::kYes;
  return maybe ? InferResult::kMaybe : InferResult::kNo;
}

}  // namespace sonde::agent::protocols::http1
