// MySQL packet framing. Interpretation (commands, result sets) is left to the stitcher.
#include "agent/protocols/mysql/parser.h"

#include <algorithm>

#include <zlib.h>

namespace sonde::agent::protocols::mysql {
namespace {

constexpr uint32_t kClientSsl = 0x800;
constexpr uint8_t kMaxCommand = 0x1f;

uint32_t Le24(std::string_view b, size_t p) {
  return static_cast<uint8_t>(b[p]) | static_cast<uint8_t>(b[p + 1]) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(b[p + 2])) << 16;
}

constexpr size_t kCompressedHeaderBytes = 7;

// True when `b` (the first bytes seen on a connection) is exactly one compressed-protocol packet:
// 3-byte compressed length covering the rest, sequence, 3-byte uncompressed length, and either
// plain packets filling the payload exactly (uncompressed length 0) or a zlib stream. A plain
// packet alone cannot pass: its length would cover all but 4 bytes, not 7.
bool LooksCompressed(std::string_view b) {
  if (b.size() < kCompressedHeaderBytes + 4) return false;
  const uint32_t comp = Le24(b, 0);
  if (comp != b.size() - kCompressedHeaderBytes) return false;
  const uint32_t uncomp = Le24(b, 4);
  if (uncomp != 0) {
    return static_cast<uint8_t>(b[7]) == 0x78 && uncomp >= comp / 2 && uncomp < (1u << 24);
  }
  size_t p = kCompressedHeaderBytes;
  for (int n = 0; n < 64 && p + 4 <= b.size(); ++n) {
    const size_t len = Le24(b, p);
    if (len == 0) return false;
    p += 4 + len;
  }
  return p == b.size();
}

}  // namespace

bool Traits::Unwrap(MessageType type, std::string_view bytes, bool gap, State* state,
                    std::string* out) {
  if (state->compressed == 0 || (state->compressed < 0 && bytes.empty())) return false;
  if (state->compressed < 0) {
    state->compressed = LooksCompressed(bytes) ? 1 : 0;
    if (state->compressed == 0) return false;
  }
  std::string& z = state->zbuf[type == MessageType::kResponse ? 1 : 0];
  if (gap) z.clear();  // the framing is lost; the next chunk should start a packet
  z.append(bytes);
  size_t p = 0;
  for (int n = 0; n < 4096 && p + kCompressedHeaderBytes <= z.size(); ++n) {
    const size_t comp = Le24(z, p);
    const size_t uncomp = Le24(z, p + 4);
    if (p + kCompressedHeaderBytes + comp > z.size()) break;
    std::string_view payload(z.data() + p + kCompressedHeaderBytes, comp);
    if (uncomp == 0) {
      out->append(payload);
    } else {
      const size_t at = out->size();
      out->resize(at + uncomp);
      uLongf got = static_cast<uLongf>(uncomp);
      if (uncompress(reinterpret_cast<Bytef*>(out->data() + at), &got,
                     reinterpret_cast<const Bytef*>(payload.data()),
                     static_cast<uLong>(payload.size())) != Z_OK ||
          got != uncomp) {
        out->resize(at);
        ++state->bad_compressed_packets;
      }
    }
    p += kCompressedHeaderBytes + comp;
  }
  z.erase(0, p);
  if (z.size() > kMaxCompressedBuffer) z.clear();  // bounded: resynchronise on later packets
  return true;
}

std::string_view CommandName(uint8_t command) {
  static constexpr std::string_view kNames[] = {
      "COM_SLEEP",          "COM_QUIT",          "COM_INIT_DB",         "COM_QUERY",
      "COM_FIELD_LIST",     "COM_CREATE_DB",     "COM_DROP_DB",         "COM_REFRESH",
      "COM_SHUTDOWN",       "COM_STATISTICS",    "COM_PROCESS_INFO",    "COM_CONNECT",
      "COM_PROCESS_KILL",   "COM_DEBUG",         "COM_PING",            "COM_TIME",
      "COM_DELAYED_INSERT", "COM_CHANGE_USER",   "COM_BINLOG_DUMP",     "COM_TABLE_DUMP",
      "COM_CONNECT_OUT",    "COM_REGISTER_SLAVE", "COM_STMT_PREPARE",   "COM_STMT_EXECUTE",
      "COM_STMT_SEND_LONG_DATA", "COM_STMT_CLOSE", "COM_STMT_RESET",    "COM_SET_OPTION",
      "COM_STMT_FETCH",     "COM_DAEMON",        "COM_BINLOG_DUMP_GTID", "COM_RESET_CONNECTION"};
  return command <= kMaxCommand ? kNames[command] : std::string_view("COM_UNKNOWN");
}

size_t Traits::FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                 State* /*state*/) {
  for (size_t p = start; p + 5 <= buf.size(); ++p) {
    const uint32_t len = Le24(buf, p);
    const uint8_t seq = static_cast<uint8_t>(buf[p + 3]);
    const uint8_t first = static_cast<uint8_t>(buf[p + 4]);
    if (len == 0 || len > (1u << 20)) continue;
    if (type == MessageType::kRequest) {
      if (seq == 0 && first >= 0x01 && first <= kMaxCommand) return p;
    } else if (seq == 1 && (first == 0x00 || first == 0xff || (first >= 1 && first <= 0xfa))) {
      return p;
    }
  }
  return std::string_view::npos;
}

ParseState Traits::ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                              State* state) {
  if (state->encrypted) {  // TLS after SSLRequest: opaque to us
    buf->remove_prefix(buf->size());
    return ParseState::kIgnored;
  }
  if (buf->size() < 4) return ParseState::kNeedsMoreData;
  const uint32_t len = Le24(*buf, 0);
  const uint8_t seq = static_cast<uint8_t>((*buf)[3]);
  if (len == 0 && !(type == MessageType::kRequest && seq != 0)) return ParseState::kInvalid;
  if (type == MessageType::kRequest && seq == 0) {
    if (buf->size() < 5) return ParseState::kNeedsMoreData;
    if (static_cast<uint8_t>((*buf)[4]) > kMaxCommand) return ParseState::kInvalid;
  }
  if (buf->size() < 4 + static_cast<size_t>(len)) return ParseState::kNeedsMoreData;
  const size_t keep = type == MessageType::kResponse ? kMaxResponsePayloadKept
                                                     : kMaxRequestPayloadKept;
  frame->seq_id = seq;
  frame->payload_length = len;
  frame->payload.assign(buf->substr(4, std::min<size_t>(len, keep)));
  frame->frame_bytes = 4 + static_cast<size_t>(len);
  // SSLRequest: a 32-byte handshake response with CLIENT_SSL; TLS follows in both directions.
  if (type == MessageType::kRequest && seq == 1 && len == 32) {
    const uint32_t caps = static_cast<uint8_t>(frame->payload[0]) |
                          static_cast<uint8_t>(frame->payload[1]) << 8;
    if (caps & kClientSsl) state->encrypted = true;
  }
  buf->remove_prefix(frame->frame_bytes);
  return ParseState::kSuccess;
}

}  // namespace sonde::agent::protocols::mysql

namespace sonde::agent::protocols::mysql {

InferResult Infer(flow::StreamDirection dir, std::string_view data, const flow::ConnectionInfo& conn) {
  if (data.size() < 5) return InferResult::kMaybe;
  // A compressed-protocol packet whose plain payload is itself a recognisable command.
  if (dir == flow::StreamDirection::kRequest && LooksCompressed(data) && Le24(data, 4) == 0) {
    return Infer(dir, data.substr(kCompressedHeaderBytes), conn);
  }
  const uint32_t len = Le24(data, 0);
  const uint8_t seq = static_cast<uint8_t>(data[3]);
  const uint8_t first = static_cast<uint8_t>(data[4]);
  if (len == 0 || len > (1u << 24) - 1) return InferResult::kNo;
  const bool complete_alone = data.size() == 4 + static_cast<size_t>(len);
  if (dir == flow::StreamDirection::kResponse) {
    // The server greeting: protocol 10, a NUL-terminated version starting with a digit.
    if (seq != 0 || first != 0x0a) return InferResult::kNo;
    if (data.size() < 6) return InferResult::kMaybe;
    if (data[5] < '0' || data[5] > '9') return InferResult::kNo;
    const size_t nul = data.find('\0', 5);
    if (nul == std::string_view::npos) return data.size() < 64 ? InferResult::kMaybe : InferResult::kNo;
    return nul - 5 < 64 ? InferResult::kYes : InferResult::kNo;
  }
  if (seq == 0) {
    // A command that fills the first write exactly (clients write one packet at a time).
    if (first == 0 || first > kMaxCommand) return InferResult::kNo;
    if (data.size() < 4 + static_cast<size_t>(len)) return InferResult::kMaybe;
    if (!complete_alone) return InferResult::kNo;
    switch (first) {
      case 0x0b: case 0x0f: case 0x10: case 0x13: case 0x14:  // server-internal commands
        return InferResult::kNo;
      case 0x01: case 0x09: case 0x0a: case 0x0d: case 0x0e: case 0x1f:  // no arguments
        if (len != 1) return InferResult::kNo;
        break;
      case 0x02: case 0x05: case 0x06:  // init/create/drop db: a non-empty printable name
        if (len < 2) return InferResult::kNo;
        for (size_t i = 5; i < data.size(); ++i) {
          const unsigned char c = static_cast<unsigned char>(data[i]);
          if (c < 0x20 || c == 0x7f) return InferResult::kNo;
        }
        break;
      default:
        break;
    }
    if (first == static_cast<uint8_t>(Command::kQuery) || first == static_cast<uint8_t>(Command::kStmtPrepare)) {
      // MySQL 8 with CLIENT_QUERY_ATTRIBUTES and no attributes prefixes the text with 00 01.
      const size_t text = data.size() >= 7 && data[5] == 0 && data[6] == 1 ? 7 : 5;
      if (data.size() <= text) return InferResult::kNo;  // no statement text
      for (size_t i = text; i < data.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(data[i]);
        if (c < 0x09 || (c > 0x0d && c < 0x20)) return InferResult::kNo;  // SQL is text
      }
    }
    return InferResult::kYes;
  }
  if (seq == 1 && len >= 32) {  // handshake response (capture started after the greeting)
    if (data.size() < 4 + 32) return InferResult::kMaybe;
    // capability flags, max packet size, charset, 23 zero bytes, then the NUL-terminated user.
    for (size_t i = 4 + 9; i < 4 + 32; ++i) {
      if (data[i] != 0) return InferResult::kNo;
    }
    if ((static_cast<uint8_t>(data[5]) & 0x02) == 0) return InferResult::kNo;  // PROTOCOL_41
    if (Le24(data, 8) == 0 && data[11] == 0) return InferResult::kNo;        // max packet size
    if (data[12] == 0) return InferResult::kNo;                              // a collation id
    const size_t end = std::min(data.size(), 4 + static_cast<size_t>(len));
    for (size_t i = 4 + 32; i < end; ++i) {
      const unsigned char c = static_cast<unsigned char>(data[i]);
      if (c == 0) return i > 4 + 32 ? InferResult::kYes : InferResult::kNo;  // non-empty user
      if (c < 0x20 || c == 0x7f) return InferResult::kNo;
    }
    return end < 4 + static_cast<size_t>(len) ? InferResult::kMaybe : InferResult::kNo;
  }
  return InferResult::kNo;
}

}  // namespace sonde::agent::protocols::mysql
