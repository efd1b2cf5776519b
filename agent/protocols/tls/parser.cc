// TLS record framing, hello parsing, handshake stitching and inference.
#include "agent/protocols/tls/parser.h"

#include <cstdio>

#include "agent/protocols/common/record_util.h"

namespace sonde::agent::protocols::tls {
namespace {

constexpr size_t kRecordHeaderBytes = 5;
constexpr size_t kMaxRecordBytes = 16384 + 2048;

uint16_t Be16(std::string_view s, size_t off) {
  return static_cast<uint16_t>(static_cast<uint8_t>(s[off]) << 8 | static_cast<uint8_t>(s[off + 1]));
}

// A bounds-checked cursor over a byte string.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool Skip(size_t n) {
    if (n > s_.size() - pos_) return false;
    pos_ += n;
    return true;
  }
  bool U8(uint8_t* v) {
    if (pos_ + 1 > s_.size()) return false;
    *v = static_cast<uint8_t>(s_[pos_++]);
    return true;
  }
  bool U16(uint16_t* v) {
    if (pos_ + 2 > s_.size()) return false;
    *v = Be16(s_, pos_);
    pos_ += 2;
    return true;
  }
  bool Bytes(size_t n, std::string_view* out) {
    if (n > s_.size() - pos_) return false;
    *out = s_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool Vec8(std::string_view* out) {
    uint8_t n = 0;
    return U8(&n) && Bytes(n, out);
  }
  bool Vec16(std::string_view* out) {
    uint16_t n = 0;
    return U16(&n) && Bytes(n, out);
  }
  bool empty() const { return pos_ >= s_.size(); }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

bool ValidRecordHeader(std::string_view b) {
  const uint8_t type = static_cast<uint8_t>(b[0]);
  return type >= 20 && type <= 23 && b[1] == 3 && static_cast<uint8_t>(b[2]) <= 4 &&
         Be16(b, 3) <= kMaxRecordBytes && Be16(b, 3) > 0;
}

std::string AlpnList(std::string_view data) {
  Reader r(data);
  std::string_view list;
  if (!r.Vec16(&list)) return "";
  Reader l(list);
  std::string out;
  std::string_view proto;
  while (!l.empty() && l.Vec8(&proto)) {
    if (!out.empty()) out += ",";
    out.append(proto.substr(0, 64));
    if (out.size() > 256) break;
  }
  return out;
}

void ParseExtensions(std::string_view exts, bool client, Frame* f) {
  Reader r(exts);
  for (int i = 0; i < 128 && !r.empty(); ++i) {
    uint16_t type = 0;
    std::string_view data;
    if (!r.U16(&type) || !r.Vec16(&data)) return;
    if (type == 0 && client) {  // server_name
      Reader s(data);
      std::string_view list, name;
      uint8_t name_type = 0;
      if (s.Vec16(&list)) {
        Reader l(list);
        if (l.U8(&name_type) && name_type == 0 && l.Vec16(&name)) f->sni = std::string(name.substr(0, 255));
      }
    } else if (type == 16) {  // ALPN
      f->alpn = AlpnList(data);
    } else if (type == 43) {  // supported_versions
      Reader v(data);
      if (client) {
        std::string_view list;
        uint16_t ver = 0;
        if (v.Vec8(&list)) {
          Reader l(list);
          while (!l.empty() && l.U16(&ver)) {
            if ((ver & 0x0f0f) != 0x0a0a && ver > f->version && ver <= 0x0304) f->version = ver;
          }
        }
      } else {
        uint16_t ver = 0;
        if (v.U16(&ver)) f->version = ver;
      }
    }
  }
}

}  // namespace

std::string VersionName(uint16_t v) {
  switch (v) {
    case 0x0300: return "SSL 3.0";
    case 0x0301: return "TLS 1.0";
    case 0x0302: return "TLS 1.1";
    case 0x0303: return "TLS 1.2";
    case 0x0304: return "TLS 1.3";
    default: {
      char buf[16];
      std::snprintf(buf, sizeof(buf), "0x%04x", v);
      return buf;
    }
  }
}

bool ParseClientHello(std::string_view body, Frame* f) {
  Reader r(body);
  std::string_view skip;
  uint16_t legacy = 0;
  if (!r.U16(&legacy) || !r.Skip(32) || !r.Vec8(&skip) || !r.Vec16(&skip) || !r.Vec8(&skip)) {
    return false;
  }
  f->kind = Kind::kClientHello;
  f->version = legacy;
  std::string_view exts;
  if (r.Vec16(&exts)) ParseExtensions(exts, true, f);
  return true;
}

bool ParseServerHello(std::string_view body, Frame* f) {
  Reader r(body);
  std::string_view skip;
  uint16_t legacy = 0;
  uint8_t compression = 0;
  if (!r.U16(&legacy) || !r.Skip(32) || !r.Vec8(&skip) || !r.U16(&f->cipher) ||
      !r.U8(&compression)) {
    return false;
  }
  f->kind = Kind::kServerHello;
  f->version = legacy;
  std::string_view exts;
  if (r.Vec16(&exts)) ParseExtensions(exts, false, f);
  return true;
}

size_t Traits::FindFrameBoundary(MessageType, std::string_view buf, size_t start, State*) {
  for (size_t i = start; i + kRecordHeaderBytes <= buf.size(); ++i) {
    if (ValidRecordHeader(buf.substr(i))) return i;
  }
  return std::string_view::npos;
}

ParseState Traits::ParseFrame(MessageType type, std::string_view* buf, Frame* f, State*) {
  if (buf->size() < kRecordHeaderBytes) return ParseState::kNeedsMoreData;
  if (!ValidRecordHeader(*buf)) return ParseState::kInvalid;
  const size_t len = Be16(*buf, 3);
  // Hellos are small; other records are skipped as they stream by without buffering them whole.
  const uint8_t content = static_cast<uint8_t>((*buf)[0]);
  if (content != 22 && content != 21) {
    if (buf->size() < kRecordHeaderBytes + len) {
      return ParseState::kNeedsMoreData;
    }
    buf->remove_prefix(kRecordHeaderBytes + len);
    return ParseState::kIgnored;
  }
  if (buf->size() < kRecordHeaderBytes + len) return ParseState::kNeedsMoreData;
  std::string_view rec = buf->substr(kRecordHeaderBytes, len);
  bool reported = false;
  if (content == 21 && len == 2) {
    f->kind = Kind::kAlert;
    f->alert_level = static_cast<uint8_t>(rec[0]);
    f->alert_description = static_cast<uint8_t>(rec[1]);
    reported = f->alert_level == 2;  // fatal alerts end handshakes; warnings are noise
  } else if (content == 22 && len >= 4) {
    const uint8_t hs = static_cast<uint8_t>(rec[0]);
    const size_t hs_len = static_cast<size_t>(static_cast<uint8_t>(rec[1])) << 16 | Be16(rec, 2);
    std::string_view body = rec.substr(4, std::min(hs_len, rec.size() - 4));
    if (hs == 1 && type != MessageType::kResponse) reported = ParseClientHello(body, f);
    if (hs == 2 && type != MessageType::kRequest) reported = ParseServerHello(body, f);
  }
  buf->remove_prefix(kRecordHeaderBytes + len);
  return reported ? ParseState::kSuccess : ParseState::kIgnored;
}

void Traits::Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State*,
                    const StitchContext& ctx, RecordBuffer* out) {
  while (!requests->empty() && !responses->empty()) {
    const Frame& hello = requests->front();
    const Frame& answer = responses->front();
    if (answer.timestamp_ns < hello.timestamp_ns) {
      CountUnpairedResponses(ctx);
      responses->pop_front();
      continue;
    }
    v1::L7RequestLog& rec = out->Add();
    FillFromFrames(&hello, &answer, &rec);
    rec.set_is_encrypted(1);
    rec.set_request_type("ClientHello");
    rec.set_request_domain(hello.sni);
    rec.set_request_resource(hello.sni);
    rec.set_endpoint(hello.sni);
    if (answer.kind == Kind::kServerHello) {
      rec.set_version(VersionName(answer.version));
      rec.set_response_status(common::v1::RESPONSE_STATUS_OK);
      char cipher[8];
      std::snprintf(cipher, sizeof(cipher), "0x%04x", answer.cipher);
      // TLS 1.3 encrypts the server's ALPN choice: then report the client's offer.
      rec.set_response_result(
          "alpn=" + (!answer.alpn.empty() ? answer.alpn
                                          : (hello.alpn.empty() ? std::string("-")
                                                                : "offered:" + hello.alpn)) +
          " cipher=" + cipher);
    } else {
      rec.set_version(VersionName(hello.version));
      rec.set_response_code(answer.alert_description);
      rec.set_response_status(common::v1::RESPONSE_STATUS_SERVER_ERROR);
      rec.set_response_exception("alert " + std::to_string(answer.alert_description));
    }
    requests->pop_front();
    responses->pop_front();
  }
  if (requests->empty() && !responses->empty()) {
    CountUnpairedResponses(ctx, responses->size());
    responses->clear();
  }
  while (!requests->empty() && IsTimedOut(requests->front().timestamp_ns, ctx)) {
    v1::L7RequestLog& rec = out->Add();
    FillFromFrames<Frame>(&requests->front(), nullptr, &rec);
    rec.set_is_encrypted(1);
    rec.set_request_type("ClientHello");
    rec.set_request_domain(requests->front().sni);
    rec.set_request_resource(requests->front().sni);
    rec.set_endpoint(requests->front().sni);
    rec.set_version(VersionName(requests->front().version));
    MarkTimeout(&rec);
    requests->pop_front();
  }
}

InferResult Infer(flow::StreamDirection dir, std::string_view data, const flow::ConnectionInfo&) {
  if (data.size() < 6) {
    if (!data.empty() && data[0] != 22) return InferResult::kNo;
    if (data.size() >= 2 && data[1] != 3) return InferResult::kNo;
    return InferResult::kMaybe;
  }
  if (!ValidRecordHeader(data) || data[0] != 22) return InferResult::kNo;
  const uint8_t hs = static_cast<uint8_t>(data[5]);
  if (hs != (dir == flow::StreamDirection::kRequest ? 1 : 2)) return InferResult::kNo;
  // The hello's own length fits in the (possibly fragmented) handshake, and its legacy
  // version is 3.x (x <= 4).
  if (data.size() < 11) return InferResult::kMaybe;
  const uint32_t hello_len = static_cast<uint32_t>(static_cast<uint8_t>(data[6])) << 16 |
                             Be16(data, 7);
  if (hello_len < 38 || hello_len > (1u << 16)) return InferResult::kNo;  // version+random+...
  if (data[9] != 3 || static_cast<uint8_t>(data[10]) > 4) return InferResult::kNo;
  return InferResult::kYes;
}

}  // namespace sonde::agent::protocols::tls
