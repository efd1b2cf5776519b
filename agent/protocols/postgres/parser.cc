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

InferResult Infer(flow::StreamDirection dir, std::string_view data, const flow::ConnectionInfo&) {
  if (data.size() < 5) return InferResult::kMaybe;
  if (dir == flow::StreamDirection::kRequest) {
    if (data[0] == '\0') {  // startup, SSLRequest, GSSENCRequest, CancelRequest
      if (data.size() < 8) return InferResult::kMaybe;
      const uint32_t len = Be32(data, 0), code = Be32(data, 4);
      if (len < 8 || len > 10000) return InferResult::kNo;
      return code == kProtocol30 || code == kSslCode || code == kGssCode || code == kCancelCode
                 ? InferResult::kYes
                 : InferResult::kNo;
    }
    if (data[0] != 'Q' && data[0] != 'P') return InferResult::kNo;
    // A query or parse message whose text ends at its NUL exactly where the length says.
    const uint32_t len = Be32(data, 1);
    if (len < 5 || len > (1u << 24)) return InferResult::kNo;
    if (data.size() < 1 + static_cast<size_t>(len)) return InferResult::kMaybe;
    if (data[len] != '\0') return InferResult::kNo;
    return InferResult::kYes;
  }
  // Server side: an authentication request ('R', length 8..) opens every session.
  if (data[0] != 'R') return InferResult::kNo;
  const uint32_t len = Be32(data, 1);
  if (len < 8 || len > 1024) return InferResult::kNo;
  if (data.size() < 9) return InferResult::kMaybe;
  const uint32_t code = Be32(data, 5);
  return code <= 12 ? InferResult::kYes : InferResult::kNo;
}

}  // namespace sonde::agent::protocols::postgres
