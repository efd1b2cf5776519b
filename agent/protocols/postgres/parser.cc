// PostgreSQL framing: validates type bytes per direction so inference and resync are strict.
#include "agent/protocols/postgres/parser.h"

#include <algorithm>

namespace sonde::agent::protocols::postgres {
namespace {

constexpr uint32_t kProtocol30 = 196608;
constexpr uint32_t kSslCode = 80877103;
constexpr uint32_t kGssCode = 80877104;
constexpr uint32_t kCancelCode = 80877102;

uint32_t Be32(std::string_view b, size_t p) {
  return static_cast<uint32_t>(static_cast<uint8_t>(b[p])) << 24 |
         static_cast<uint32_t>(static_cast<uint8_t>(b[p + 1])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(b[p + 2])) << 8 | static_cast<uint8_t>(b[p + 3]);
}

bool IsRequestType(char c) {
  static constexpr std::string_view kTypes = "QPBDESHCXpFdcf";
  return kTypes.find(c) != std::string_view::npos;
}

bool IsResponseType(char c) {
  static constexpr std::string_view kTypes = "RSKZTDCEN123ntsIGHWdcAV";
  return kTypes.find(c) != std::string_view::npos;
}

}  // namespace

size_t Traits::FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                 State* /*state*/) {
  for (size_t p = start; p + 5 <= buf.size(); ++p) {
    const char t = buf[p];
    const uint32_t len = Be32(buf, p + 1);
    if (len < 4 || len > (1u << 24)) continue;
    if (type == MessageType::kResponse ? IsResponseType(t) : IsRequestType(t)) {
      // Prefer positions where the next message also starts with a valid header.
      const size_t next = p + 1 + len;
      if (next + 1 > buf.size()) return p;
      const char nt = buf[next];
      if (type == MessageType::kResponse ? IsResponseType(nt) : IsRequestType(nt)) return p;
    }
  }
  return std::string_view::npos;
}

ParseState Traits::ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                              State* state) {
  if (state->encrypted) {
    buf->remove_prefix(buf->size());
    return ParseState::kIgnored;
  }
  if (buf->empty()) return ParseState::kNeedsMoreData;
  const bool response = type == MessageType::kResponse;
  if (response && state->ssl_answer_pending) {
    const char c = (*buf)[0];
    if (c == 'S' || c == 'N' || c == 'G') {
      state->ssl_answer_pending = false;
      if (c != 'N') state->encrypted = true;
      frame->type = kSslAnswer;
      frame->payload.assign(1, c);
      frame->frame_bytes = 1;
      buf->remove_prefix(1);
      return ParseState::kSuccess;
    }
  }
  if (!response && (*buf)[0] == '\0') {
    // Untyped startup-phase message: int32 length, int32 code.
    if (buf->size() < 8) return ParseState::kNeedsMoreData;
    const uint32_t len = Be32(*buf, 0), code = Be32(*buf, 4);
    if (len < 8 || len > 10000) return ParseState::kInvalid;
    if (code == kProtocol30 || (code >> 16) == 3) {
      frame->type = kStartup;
    } else if (code == kSslCode || code == kGssCode) {
      frame->type = kSslRequest;
    } else if (code == kCancelCode) {
      frame->type = kCancelRequest;
    } else {
      return ParseState::kInvalid;
    }
    if (buf->size() < len) return ParseState::kNeedsMoreData;
    frame->payload.assign(buf->substr(4, std::min<size_t>(len - 4, kMaxPayloadKept)));
    frame->frame_bytes = len;
    if (frame->type == kSslRequest) state->ssl_answer_pending = true;
    buf->remove_prefix(len);
    return ParseState::kSuccess;
  }
  const char t = (*buf)[0];
  if (response ? !IsResponseType(t) : !IsRequestType(t)) return ParseState::kInvalid;
  if (buf->size() < 5) return ParseState::kNeedsMoreData;
  const uint32_t len = Be32(*buf, 1);
  if (len < 4 || len > kMaxMessageBytes) return ParseState::kInvalid;
  if (buf->size() - 1 < len) return ParseState::kNeedsMoreData;
  frame->type = t;
  frame->payload.assign(buf->substr(5, std::min<size_t>(len - 4, kMaxPayloadKept)));
  frame->frame_bytes = 1 + static_cast<size_t>(len);
  buf->remove_prefix(frame->frame_bytes);
  return ParseState::kSuccess;
}

}  // namespace sonde::agent::protocols::postgres

namespace sonde::agent::protocols::postgres {

namespace {

// Text the way clients send it: no NUL, no control bytes other than tab/newline/CR (UTF-8 ok).
bool IsQueryText(std::string_view t) {
  for (char c : t) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
    if (u == 0x7f) return false;
  }
  return true;
}

// A StartupMessage body (after length and version): printable "key\0value\0" pairs with a
// "user" key, closed by a final NUL at the end of the message.
bool IsStartupBody(std::string_view body) {
  if (body.empty() || body.back() != '\0') return false;
  body.remove_suffix(1);
  bool user = false;
  for (int pairs = 0; !body.empty() && pairs < 64; ++pairs) {
    const size_t k = body.find('\0');
    if (k == std::string_view::npos || k == 0) return false;
    const std::string_view key = body.substr(0, k);
    body.remove_prefix(k + 1);
    const size_t v = body.find('\0');
    if (v == std::string_view::npos) return false;
    if (!IsQueryText(key) || !IsQueryText(body.substr(0, v))) return false;
    user = user || key == "user";
    body.remove_prefix(v + 1);
  }
  return user && body.empty();
}

}  // namespace

InferResult Infer(flow::StreamDirection dir, std::string_view data, const flow::ConnectionInfo&) {
  if (data.size() < 5) return InferResult::kMaybe;
  if (dir == flow::StreamDirection::kRequest) {
    if (data[0] == '\0') {  // startup, SSLRequest, GSSENCRequest, CancelRequest
      if (data.size() < 8) return InferResult::kMaybe;
      const uint32_t len = Be32(data, 0), code = Be32(data, 4);
      if (code == kSslCode || code == kGssCode) {
        // Sent alone: the client waits for the one-byte answer.
        return len == 8 && data.size() == 8 ? InferResult::kYes : InferResult::kNo;
      }
      if (code == kCancelCode) {
        if (len != 16) return InferResult::kNo;
        return data.size() < 16 ? InferResult::kMaybe : InferResult::kYes;
      }
      if (code != kProtocol30 || len < 8 + 5 || len > 10000) return InferResult::kNo;
      if (data.size() < len) return InferResult::kMaybe;
      return IsStartupBody(data.substr(8, len - 8)) ? InferResult::kYes : InferResult::kNo;
    }
    if (data[0] != 'Q' && data[0] != 'P') return InferResult::kNo;
    // A query or parse message whose text ends at its NUL exactly where the length says.
    const uint32_t len = Be32(data, 1);
    if (len < 5 || len > (1u << 24)) return InferResult::kNo;
    if (data.size() < 1 + static_cast<size_t>(len)) return InferResult::kMaybe;
    if (data[len] != '\0') return InferResult::kNo;
    std::string_view body = data.substr(5, len - 4);  // ends with the NUL at data[len]
    if (data[0] == 'Q') {
      return IsQueryText(body.substr(0, body.size() - 1)) ? InferResult::kYes : InferResult::kNo;
    }
    // Parse: statement name NUL, query text NUL, then parameter types.
    const size_t name_end = body.find('\0');
    if (name_end == std::string_view::npos || !IsQueryText(body.substr(0, name_end))) {
      return InferResult::kNo;
    }
    const std::string_view rest = body.substr(name_end + 1);
    const size_t query_end = rest.find('\0');
    if (query_end == std::string_view::npos || query_end == 0 ||
        !IsQueryText(rest.substr(0, query_end))) {
      return InferResult::kNo;
    }
    return InferResult::kYes;
  }
  // Server side: an authentication request ('R') opens every session; its length follows from
  // the request code.
  if (data[0] != 'R') return InferResult::kNo;
  const uint32_t len = Be32(data, 1);
  if (len < 8 || len > 1024) return InferResult::kNo;
  if (data.size() < 9) return InferResult::kMaybe;
  const uint32_t code = Be32(data, 5);
  switch (code) {
    case 0: case 2: case 3: case 7: case 9:  // ok, kerberos, cleartext, gss, sspi
      return len == 8 ? InferResult::kYes : InferResult::kNo;
    case 5:  // md5 with a 4-byte salt
      return len == 12 ? InferResult::kYes : InferResult::kNo;
    case 8: case 10: case 11: case 12:  // gss continue, SASL, SASL continue, SASL final
      return len > 8 ? InferResult::kYes : InferResult::kNo;
    default:
      return InferResult::kNo;
  }
}

}  // namespace sonde::agent::protocols::postgres
