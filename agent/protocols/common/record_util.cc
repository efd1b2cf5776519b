// Shared record-filling helpers for stitchers.
#include "agent/protocols/common/record_util.h"

#include <algorithm>
#include <cstring>
#include <array>
#include <cctype>

namespace sonde::agent::protocols {
namespace {

constexpr std::array<bool, 256> kHexDigit = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[static_cast<size_t>(c)] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }
  return t;
}();

// One table load per byte and no early exit (trace ids are 16-32 bytes, nearly always valid):
// std::all_of over a predicate function called it out of line per byte.
bool IsHex(std::string_view s) {
  bool all = !s.empty();
  for (char c : s) all &= kHexDigit[static_cast<uint8_t>(c)];
  return all;
}

// Splits on `sep` into at most N parts; returns how many were found.
template <size_t N>
size_t Split(std::string_view s, char sep, std::array<std::string_view, N>* parts) {
  size_t n = 0;
  while (n < N) {
    size_t p = s.find(sep);
    (*parts)[n++] = s.substr(0, p);
    if (p == std::string_view::npos) break;
    s.remove_prefix(p + 1);
  }
  return n;
}

std::string Base64Decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = val(c);
    if (v < 0) return std::string(in);  // not base64: keep as is
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string_view TrimView(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsIdSegment(std::string_view seg) {
  if (seg.empty()) return false;
  bool all_digits = std::all_of(seg.begin(), seg.end(),
                                [](char c) { return c >= '0' && c <= '9'; });
  if (all_digits) return true;
  size_t digits = std::count_if(seg.begin(), seg.end(),
                                [](char c) { return c >= '0' && c <= '9'; });
  // UUID 8-4-4-4-12.
  if (seg.size() == 36 && seg[8] == '-' && seg[13] == '-' && seg[18] == '-' && seg[23] == '-') {
    return true;
  }
  if (seg.size() >= 16 && IsHex(seg) && digits > 0) return true;
  // Long opaque tokens mixing letters and digits.
  if (seg.size() >= 24 && digits > 0) return true;
  return false;
}

}  // namespace

void MarkTimeout(v1::L7RequestLog* rec) {
  rec->set_response_status(common::v1::RESPONSE_STATUS_TIMEOUT);
}

common::v1::ResponseStatus StatusFromHttpCode(int code) {
  if (code >= 100 && code < 400) return common::v1::RESPONSE_STATUS_OK;
  if (code >= 400 && code < 500) return common::v1::RESPONSE_STATUS_CLIENT_ERROR;
  if (code >= 500 && code < 600) return common::v1::RESPONSE_STATUS_SERVER_ERROR;
  return common::v1::RESPONSE_STATUS_UNKNOWN;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
  }
  return out;
}

bool ContainsIgnoreCase(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  if (needle.size() > hay.size()) return false;
  auto lower = [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
  };
  const char first = needle[0];
  const bool first_is_letter = first >= 'a' && first <= 'z';
  const size_t last = hay.size() - needle.size();
  for (size_t i = 0; i <= last; ++i) {
    if (!first_is_letter) {
      // memchr-speed scan to the next candidate when the first byte has no case.
      i = hay.find(first, i);
      if (i == std::string_view::npos || i > last) return false;
    } else if (lower(hay[i]) != first) {
      continue;
    }
    size_t k = 1;
    while (k < needle.size() && lower(hay[i + k]) == needle[k]) ++k;
    if (k == needle.size()) return true;
  }
  return false;
}

template <typename Rec>
bool ApplyTraceHeader(std::string_view name, std::string_view raw_value, Rec* rec) {
  // A view: only the parts kept are copied (into the record).
  const std::string_view value = TrimView(raw_value);
  if (name == "x-request-id") {
    if (rec->x_request_id().empty()) rec->set_x_request_id(std::string(value.substr(0, 256)));
    return true;
  }
  const bool have_trace = !rec->trace_id().empty();
  if (name == "traceparent") {
    std::array<std::string_view, 4> p;
    if (Split(value, '-', &p) == 4 && p[1].size() == 32 && IsHex(p[1]) && p[2].size() == 16 &&
        IsHex(p[2])) {
      if (!have_trace) {
        rec->set_trace_id(std::string(p[1]));
        rec->set_span_id(std::string(p[2]));
      }
      return true;
    }
    return false;
  }
  if (name == "b3") {
    std::array<std::string_view, 4> p;
    size_t n = Split(value, '-', &p);
    if (n >= 2 && IsHex(p[0]) && IsHex(p[1])) {
      if (!have_trace) {
        rec->set_trace_id(std::string(p[0]));
        rec->set_span_id(std::string(p[1]));
        if (n == 4) rec->set_parent_span_id(std::string(p[3]));
      }
      return true;
    }
    return false;
  }
  if (name == "x-b3-traceid") {
    if (!have_trace && IsHex(value)) rec->set_trace_id(std::string(value));
    return true;
  }
  if (name == "x-b3-spanid") {
    if (rec->span_id().empty() && IsHex(value)) rec->set_span_id(std::string(value));
    return true;
  }
  if (name == "x-b3-parentspanid") {
    if (rec->parent_span_id().empty() && IsHex(value)) rec->set_parent_span_id(std::string(value));
    return true;
  }
  if (name == "sw8") {
    // sample-traceId(b64)-segmentId(b64)-spanId-service(b64)-instance(b64)-endpoint(b64)-peer(b64)
    std::array<std::string_view, 8> p;
    if (Split(value, '-', &p) >= 4) {
      if (!have_trace) {
        rec->set_trace_id(Base64Decode(p[1]).substr(0, 128));
        rec->set_span_id(Base64Decode(p[2]).substr(0, 128) + "-" + std::string(p[3].substr(0, 16)));
      }
      return true;
    }
    return false;
  }
  if (name == "uber-trace-id") {
    // "%3A" / "%3a" (URL-encoded ':') decoded in one pass (string::replace in a loop trips
    // g++ 12's -Wrestrict at -O3).
    std::string v;
    v.reserve(value.size());
    for (size_t i = 0; i < value.size(); ++i) {
      if (value[i] == '%' && i + 2 < value.size() && value[i + 1] == '3' &&
          (value[i + 2] == 'A' || value[i + 2] == 'a')) {
        v.push_back(':');
        i += 2;
      } else {
        v.push_back(value[i]);
      }
    }
    std::array<std::string_view, 4> p;
    if (Split(std::string_view(v), ':', &p) == 4 && IsHex(p[0]) && IsHex(p[1])) {
      if (!have_trace) {
        rec->set_trace_id(std::string(p[0]));
        rec->set_span_id(std::string(p[1]));
        if (p[2] != "0") rec->set_parent_span_id(std::string(p[2]));
      }
      return true;
    }
    return false;
  }
  return false;
}

template bool ApplyTraceHeader(std::string_view, std::string_view, v1::L7RequestLog*);
template bool ApplyTraceHeader(std::string_view, std::string_view, TraceFields*);

std::string EndpointPattern(std::string_view path) {
  std::string out;
  EndpointPatternInto(path, &out);
  return out;
}

void EndpointPatternInto(std::string_view path, std::string* out) {
  constexpr size_t kMaxLen = 256;
  bool has_digit = false;
  for (size_t k = 0; k < path.size(); ++k) {
    if (path[k] == '?' || path[k] == '#') {
      path = path.substr(0, k);
      break;
    }
    has_digit |= path[k] >= '0' && path[k] <= '9';
  }
  // Absolute-form request targets (proxies): keep the path only.
  if (path.starts_with("http://") || path.starts_with("https://")) {
    size_t slash = path.find('/', path.find("//") + 2);
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
  }
  // Every identifier-like segment holds a digit or is 36 bytes long (a UUID's shape): a short
  // path without digits is its own pattern (most static paths: /, /index.html, /api/users).
  static_assert(kMaxLen >= 36);
  if (!has_digit && path.size() < 36) {
    out->assign(path);
    return;
  }
  // Built in a local buffer and assigned once; every append is clipped at kMaxLen, which keeps
  // the first kMaxLen bytes of the full pattern, as truncating at the end did.
  char buf[kMaxLen];
  size_t n = 0;
  auto append = [&](std::string_view s) {
    const size_t k = std::min(s.size(), kMaxLen - n);
    std::memcpy(buf + n, s.data(), k);
    n += k;
  };
  size_t i = 0;
  while (n < kMaxLen) {
    size_t slash = i;
    while (slash < path.size() && path[slash] != '/') ++slash;
    const std::string_view seg = path.substr(i, slash - i);
    append(IsIdSegment(seg) ? std::string_view("{id}") : seg);
    if (slash >= path.size()) break;
    append("/");
    i = slash + 1;
  }
  out->assign(buf, n);
}

}  // namespace sonde::agent::protocols
