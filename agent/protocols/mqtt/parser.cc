// MQTT framing: fixed header validation (type, flags, remaining length) and the few fields
// records need from CONNECT, PUBLISH, SUBSCRIBE and the acknowledgements.
#include "agent/protocols/mqtt/parser.h"

#include <algorithm>

namespace sonde::agent::protocols::mqtt {
namespace {

// Decodes the remaining-length varint at p. Returns bytes used, 0 if incomplete, -1 if invalid.
int RemainingLength(std::string_view b, size_t p, uint32_t* value) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    if (p + static_cast<size_t>(i) >= b.size()) return 0;
    const uint8_t c = static_cast<uint8_t>(b[p + i]);
    v |= static_cast<uint32_t>(c & 0x7f) << (7 * i);
    if (!(c & 0x80)) {
      *value = v;
      return i + 1;
    }
  }
  return -1;
}

bool ValidFlags(uint8_t type, uint8_t flags) {
  switch (static_cast<PacketType>(type)) {
    case PacketType::kPublish:
      return ((flags >> 1) & 3) != 3;
    case PacketType::kPubrel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      return flags == 2;
    default:
      return flags == 0;
  }
}

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool ok() const { return ok_; }
  uint32_t U8() { return Need(1) ? static_cast<uint8_t>(b_[p_++]) : 0; }
  uint32_t U16() {
    if (!Need(2)) return 0;
    const uint32_t v = static_cast<uint8_t>(b_[p_]) << 8 | static_cast<uint8_t>(b_[p_ + 1]);
    p_ += 2;
    return v;
  }
  std::string_view Str() {
    const uint32_t n = U16();
    if (!Need(n)) return {};
    std::string_view s = b_.substr(p_, n);
    p_ += n;
    return s;
  }
  void SkipProperties() {  // MQTT 5: varint length then properties
    uint32_t n = 0;
    const int used = RemainingLength(b_, p_, &n);
    if (used <= 0) {
      ok_ = false;
      return;
    }
    p_ += static_cast<size_t>(used);
    if (!Need(n)) return;
    p_ += n;
  }
  size_t left() const { return b_.size() - p_; }

 private:
  bool Need(size_t n) {
    if (!ok_ || b_.size() - p_ < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::string_view b_;
  size_t p_ = 0;
  bool ok_ = true;
};

std::string Capped(std::string_view s) { return std::string(s.substr(0, kMaxTextBytes)); }

// Fills the frame from the variable header and payload of one packet.
bool Decode(uint8_t flags, std::string_view body, Frame* f, State* state) {
  Reader r(body);
  const bool v5 = state->protocol_level >= 5;
  switch (f->type) {
    case PacketType::kConnect: {
      std::string_view name = r.Str();
      if (name != "MQTT" && name != "MQIsdp") return false;
      f->protocol_level = static_cast<uint8_t>(r.U8());
      r.U8();   // connect flags
      r.U16();  // keep alive
      if (!r.ok()) return false;
      // A level we do not know is still a CONNECT (the broker will refuse it); its later
      // fields may follow other rules, so stop here.
      if (f->protocol_level < 3 || f->protocol_level > 5) return true;
      if (f->protocol_level == 5) r.SkipProperties();
      f->client_id = Capped(r.Str());
      if (!r.ok()) return false;
      state->protocol_level = f->protocol_level;
      state->client_id = f->client_id;
      return true;
    }
    case PacketType::kConnack:
      r.U8();  // session present
      f->code = static_cast<int32_t>(r.U8());
      return r.ok();
    case PacketType::kPublish:
      f->qos = (flags >> 1) & 3;
      f->topic = Capped(r.Str());
      if (f->qos > 0) f->packet_id = static_cast<uint16_t>(r.U16());
      return r.ok();
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      f->packet_id = static_cast<uint16_t>(r.U16());
      if (r.left() > 0) f->code = static_cast<int32_t>(r.U8());  // MQTT 5 reason code
      if (f->code == 0) f->code = -1;
      return r.ok();
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      f->packet_id = static_cast<uint16_t>(r.U16());
      if (v5) r.SkipProperties();
      f->topic = Capped(r.Str());
      return r.ok();
    case PacketType::kSuback:
    case PacketType::kUnsuback: {
      f->packet_id = static_cast<uint16_t>(r.U16());
      if (v5) r.SkipProperties();
      // Codes >= 0x80 are failures; report the first one.
      for (size_t i = 0; i < 4096 && r.left() > 0; ++i) {
        const uint32_t c = r.U8();
        if (c >= 0x80) {
          f->code = static_cast<int32_t>(c);
          break;
        }
      }
      return r.ok();
    }
    default:
      return true;
  }
}

}  // namespace

size_t Traits::FindFrameBoundary(MessageType /*type*/, std::string_view buf, size_t start,
                                 State* state) {
  for (size_t p = start; p + 2 <= buf.size(); ++p) {
    const uint8_t b0 = static_cast<uint8_t>(buf[p]);
    const uint8_t type = b0 >> 4;
    if (type == 0 || !ValidFlags(type, b0 & 0xf)) continue;
    uint32_t len = 0;
    const int used = RemainingLength(buf, p + 1, &len);
    if (used < 0) continue;
    if (used == 0) return p;
    // A PINGREQ/PINGRESP/DISCONNECT has length 0; acks have 2 (or more in v5).
    if ((type == 12 || type == 13) && len != 0) continue;
    if (type >= 4 && type <= 7 && len < 2) continue;
    const size_t next = p + 1 + static_cast<size_t>(used) + len;
    if (next >= buf.size()) return p;
    const uint8_t nt = static_cast<uint8_t>(buf[next]) >> 4;
    if (nt != 0 && ValidFlags(nt, static_cast<uint8_t>(buf[next]) & 0xf)) return p;
  }
  return std::string_view::npos;
}

ParseState Traits::ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                              State* state) {
  if (buf->empty()) return ParseState::kNeedsMoreData;
  const uint8_t b0 = static_cast<uint8_t>((*buf)[0]);
  const uint8_t ptype = b0 >> 4;
  if (ptype == 0 || !ValidFlags(ptype, b0 & 0xf)) return ParseState::kInvalid;
  // Only clients send these; only brokers send those.
  const auto t = static_cast<PacketType>(ptype);
  const bool client_only = t == PacketType::kConnect || t == PacketType::kSubscribe ||
                           t == PacketType::kUnsubscribe || t == PacketType::kPingreq;
  const bool broker_only = t == PacketType::kConnack || t == PacketType::kSuback ||
                           t == PacketType::kUnsuback || t == PacketType::kPingresp;
  if ((type == MessageType::kRequest && broker_only) || (type == MessageType::kResponse && client_only)) {
    return ParseState::kInvalid;
  }
  uint32_t len = 0;
  const int used = RemainingLength(*buf, 1, &len);
  if (used < 0 || len > kMaxRemainingLength) return ParseState::kInvalid;
  if (used == 0) return ParseState::kNeedsMoreData;
  if ((t == PacketType::kPingreq || t == PacketType::kPingresp) && len != 0) return ParseState::kInvalid;
  const size_t total = 1 + static_cast<size_t>(used) + len;
  if (buf->size() < total) return ParseState::kNeedsMoreData;
  frame->type = t;
  if (!Decode(b0 & 0xf, buf->substr(1 + static_cast<size_t>(used), len), frame, state)) {
    return ParseState::kInvalid;
  }
  frame->from_client = type != MessageType::kResponse;
  frame->frame_bytes = total;
  buf->remove_prefix(total);
  return ParseState::kSuccess;
}

InferResult Infer(flow::StreamDirection dir, std::string_view data, const flow::ConnectionInfo&) {
  // A session opens with CONNECT from the client and CONNACK from the broker. A capture that
  // starts later is accepted from the client side when the bytes are a run of well-formed
  // SUBSCRIBE/UNSUBSCRIBE/PUBLISH packets with printable topics that fill the data exactly.
  if (data.size() < 2) return InferResult::kMaybe;
  const bool request = dir == flow::StreamDirection::kRequest;
  const uint8_t b0 = static_cast<uint8_t>(data[0]);
  const auto first = static_cast<PacketType>(b0 >> 4);
  if (!request) {
    if (b0 != 0x20) return InferResult::kNo;
    // CONNACK: remaining length 2 (3.1.1: flags, return code 0..5) or, in MQTT 5, 2 plus a
    // property block whose length fills the packet (reason codes 0 or 0x80..0x9f).
    const uint8_t rem = static_cast<uint8_t>(data[1]);
    if (rem < 2 || rem > 127) return InferResult::kNo;
    if (data.size() < 4) return InferResult::kMaybe;
    const uint8_t ack_flags = static_cast<uint8_t>(data[2]), code = static_cast<uint8_t>(data[3]);
    if (ack_flags > 1) return InferResult::kNo;
    if (rem == 2) {
      if (code > 5 && (code < 0x80 || code > 0x9f)) return InferResult::kNo;
    } else {
      if (code != 0 && (code < 0x80 || code > 0x9f)) return InferResult::kNo;
      if (data.size() < 5) return InferResult::kMaybe;
      if (static_cast<uint8_t>(data[4]) != rem - 3) return InferResult::kNo;
    }
  } else if (first != PacketType::kConnect && first != PacketType::kSubscribe &&
             first != PacketType::kUnsubscribe && first != PacketType::kPublish) {
    return InferResult::kNo;
  }
  State state;
  std::string_view buf = data;
  size_t frames = 0;
  for (int i = 0; i < 64 && !buf.empty(); ++i) {
    Frame frame;
    const ParseState s = Traits::ParseFrame(request ? MessageType::kRequest : MessageType::kResponse,
                                            &buf, &frame, &state);
    if (s == ParseState::kNeedsMoreData) return frames > 0 ? InferResult::kYes : InferResult::kMaybe;
    if (s != ParseState::kSuccess) return InferResult::kNo;
    for (char c : frame.topic) {
      if (static_cast<unsigned char>(c) < 0x20) return InferResult::kNo;
    }
    if (frame.type == PacketType::kConnect) return InferResult::kYes;  // protocol name checked
    ++frames;
  }
  return frames > 0 ? InferResult::kYes : InferResult::kMaybe;
}

}  // namespace sonde::agent::protocols::mqtt
