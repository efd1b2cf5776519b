// Dubbo framing. Only the leading Hessian2 or Kryo strings of a request body are decoded
// (version, service, service version, method); arguments and attachments are skipped with the body.
#include "agent/protocols/dubbo/parser.h"

#include <algorithm>

namespace sonde::agent::protocols::dubbo {
namespace {

constexpr uint8_t kFlagRequest = 0x80;
constexpr uint8_t kFlagTwoWay = 0x40;
constexpr uint8_t kFlagEvent = 0x20;

uint64_t Be(std::string_view b, size_t p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | static_cast<uint8_t>(b[p + i]);
  return v;
}

// Reads one Hessian2 string (possibly chunked) at *p; lengths count UTF-16 units, so the
// bytes of each character are walked. Returns false when this is not a string or is cut short.
bool ReadString(std::string_view b, size_t* p, std::string* out) {
  out->clear();
  for (int chunk = 0; chunk < 64; ++chunk) {
    if (*p >= b.size()) return false;
    const uint8_t tag = static_cast<uint8_t>(b[*p]);
    size_t n = 0;
    bool final = true;
    if (tag <= 0x1f) {
      n = tag;
      *p += 1;
    } else if (tag >= 0x30 && tag <= 0x33) {
      if (*p + 2 > b.size()) return false;
      n = static_cast<size_t>(tag - 0x30) << 8 | static_cast<uint8_t>(b[*p + 1]);
      *p += 2;
    } else if (tag == 'S' || tag == 'R') {
      if (*p + 3 > b.size()) return false;
      n = static_cast<size_t>(Be(b, *p + 1, 2));
      final = tag == 'S';
      *p += 3;
    } else if (tag == 'N') {
      *p += 1;
      return true;
    } else {
      return false;
    }
    for (size_t i = 0; i < n; ++i) {
      if (*p >= b.size()) return false;
      const uint8_t lead = static_cast<uint8_t>(b[*p]);
      const size_t len = lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
      if (*p + len > b.size()) return false;
      if (out->size() + len <= kMaxTextBytes) out->append(b.substr(*p, len));
      *p += len;
    }
    if (final) return true;
  }
  return false;
}

// Reads one Kryo string at *p (Kryo Output.writeString): either ASCII with the high bit set on
// the last byte, or a flagged varint "characters + 1" (0x80 null, 0x81 empty) followed by the
// characters, each 1-3 bytes. Returns false when cut short or malformed.
bool ReadKryoString(std::string_view b, size_t* p, std::string* out) {
  out->clear();
  if (*p >= b.size()) return false;
  const uint8_t first = static_cast<uint8_t>(b[*p]);
  if ((first & 0x80) == 0) {  // ASCII
    for (size_t i = *p; i < b.size(); ++i) {
      const uint8_t c = static_cast<uint8_t>(b[i]);
      if (out->size() < kMaxTextBytes) out->push_back(static_cast<char>(c & 0x7f));
      if (c & 0x80) {
        *p = i + 1;
        return true;
      }
    }
    return false;
  }
  // Flagged varint: 6 value bits in the first byte (bit 6 = more), then 7 per byte.
  uint64_t n = first & 0x3f;
  size_t i = *p + 1;
  if (first & 0x40) {
    for (int shift = 6;; shift += 7) {
      if (i >= b.size() || shift > 27) return false;
      const uint8_t c = static_cast<uint8_t>(b[i++]);
      n |= static_cast<uint64_t>(c & 0x7f) << shift;
      if ((c & 0x80) == 0) break;
    }
  }
  const uint64_t chars = n == 0 ? 0 : n - 1;  // 0 is null, 1 empty
  if (chars > kMaxBodyBytes) return false;
  for (uint64_t k = 0; k < chars; ++k) {
    if (i >= b.size()) return false;
    const uint8_t lead = static_cast<uint8_t>(b[i]);
    const size_t len = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xe ? 3 : 0;
    if (len == 0 || i + len > b.size()) return false;
    if (out->size() + len <= kMaxTextBytes) out->append(b.substr(i, len));
    i += len;
  }
  *p = i;
  return true;
}

// A Hessian2 int (compact one-byte form, or 'I' + 4 bytes); -1 if neither.
int ReadSmallInt(std::string_view b, size_t p) {
  if (p >= b.size()) return -1;
  const uint8_t c = static_cast<uint8_t>(b[p]);
  if (c >= 0x80 && c <= 0xbf) return static_cast<int>(c) - 0x90;
  if (c == 'I' && p + 5 <= b.size()) return static_cast<int>(Be(b, p + 1, 4));
  return -1;
}

}  // namespace

size_t Traits::FindFrameBoundary(MessageType /*type*/, std::string_view buf, size_t start,
                                 State* /*state*/) {
  for (size_t p = start; p + 2 <= buf.size(); ++p) {
    if (static_cast<uint8_t>(buf[p]) == 0xda && static_cast<uint8_t>(buf[p + 1]) == 0xbb) return p;
  }
  return std::string_view::npos;
}

ParseState Traits::ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                              State* /*state*/) {
  if (buf->empty()) return ParseState::kNeedsMoreData;
  if (static_cast<uint8_t>((*buf)[0]) != 0xda) return ParseState::kInvalid;
  if (buf->size() < 2) return ParseState::kNeedsMoreData;
  if (static_cast<uint8_t>((*buf)[1]) != 0xbb) return ParseState::kInvalid;
  if (buf->size() < kHeaderBytes) return ParseState::kNeedsMoreData;
  const uint8_t flags = static_cast<uint8_t>((*buf)[2]);
  const uint32_t body_len = static_cast<uint32_t>(Be(*buf, 12, 4));
  if (body_len > kMaxBodyBytes) return ParseState::kInvalid;
  const bool is_request = flags & kFlagRequest;
  // Requests travel client to server; a response from the client side is not Dubbo.
  if (type == MessageType::kRequest && !is_request) return ParseState::kInvalid;
  if (type == MessageType::kResponse && is_request) return ParseState::kInvalid;
  const size_t total = kHeaderBytes + body_len;
  if (buf->size() < total) return ParseState::kNeedsMoreData;
  if (flags & kFlagEvent) {  // heartbeats
    buf->remove_prefix(total);
    return ParseState::kIgnored;
  }
  frame->is_request = is_request;
  frame->two_way = flags & kFlagTwoWay;
  frame->serialization = flags & 0x1f;
  frame->status = static_cast<uint8_t>((*buf)[3]);
  frame->request_id = Be(*buf, 4, 8);
  std::string_view body = buf->substr(kHeaderBytes, body_len);
  if (frame->serialization == kHessian2) {
    size_t p = 0;
    if (is_request) {
      // dubbo version, service path, service version, method name (then types and arguments).
      if (ReadString(body, &p, &frame->dubbo_version) && ReadString(body, &p, &frame->service) &&
          ReadString(body, &p, &frame->service_version)) {
        ReadString(body, &p, &frame->method);
      }
    } else if (frame->status == 20) {
      const int kind = ReadSmallInt(body, 0);
      frame->has_exception = kind == 0 || kind == 3;
    } else {
      ReadString(body, &p, &frame->error);
    }
  } else if (frame->serialization == kKryo && is_request) {
    // Same leading fields as Hessian2, as Kryo strings.
    size_t p = 0;
    if (ReadKryoString(body, &p, &frame->dubbo_version) &&
        ReadKryoString(body, &p, &frame->service) &&
        ReadKryoString(body, &p, &frame->service_version)) {
      ReadKryoString(body, &p, &frame->method);
    }
  }
  frame->frame_bytes = total;
  buf->remove_prefix(total);
  return ParseState::kSuccess;
}

InferResult Infer(flow::StreamDirection dir, std::string_view data, const flow::ConnectionInfo&) {
  if (data.size() < 2) return InferResult::kMaybe;
  if (static_cast<uint8_t>(data[0]) != 0xda || static_cast<uint8_t>(data[1]) != 0xbb) {
    return InferResult::kNo;
  }
  if (data.size() < kHeaderBytes) return InferResult::kMaybe;
  const bool is_request = static_cast<uint8_t>(data[2]) & kFlagRequest;
  if (is_request != (dir == flow::StreamDirection::kRequest)) return InferResult::kNo;
  // Requests carry status 0; responses one of the defined status codes.
  const uint8_t status = static_cast<uint8_t>(data[3]);
  if (is_request ? status != 0
                 : status != 20 && status != 30 && status != 31 && status != 40 && status != 50 &&
                       status != 60 && status != 70 && status != 80 && status != 90 &&
                       status != 100) {
    return InferResult::kNo;
  }
  return Be(data, 12, 4) <= kMaxBodyBytes ? InferResult::kYes : InferResult::kNo;
}

}  // namespace sonde::agent::protocols::dubbo
