// HTTP/2 framing, HPACK decoding, upgrade handling, per-stream stitching and inference.
#include "agent/protocols/http2/parser.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <charconv>

#include "agent/protocols/common/record_util.h"

namespace sonde::agent::protocols::http2 {

void InflaterDeleter::operator()(nghttp2_hd_inflater* p) const { nghttp2_hd_inflate_del(p); }

namespace {

constexpr size_t kFrameHeaderBytes = 9;
constexpr uint32_t kMaxFrameBytes = 1u << 20;
constexpr size_t kMaxHeaders = 64;
constexpr size_t kMaxHeaderValueBytes = 1024;
constexpr size_t kMaxBlockBytes = 256 * 1024;
constexpr size_t kMaxStreams = 1024;
constexpr uint8_t kEndStream = 0x1, kEndHeaders = 0x4, kPadded = 0x8, kPriority = 0x20;

struct RawHeader {
  uint32_t length;
  uint8_t type;
  uint8_t flags;
  uint32_t stream_id;
  bool reserved_bit;
};

RawHeader ReadHeader(std::string_view b) {
  auto u = [&](size_t i) { return static_cast<uint8_t>(b[i]); };
  return {static_cast<uint32_t>(u(0) << 16 | u(1) << 8 | u(2)), u(3), u(4),
          static_cast<uint32_t>((u(5) & 0x7f) << 24 | u(6) << 16 | u(7) << 8 | u(8)),
          (u(5) & 0x80) != 0};
}

// Whether a frame header is plausible (used for resync and inference).
bool Plausible(const RawHeader& h) {
  if (h.length > 16384 * 4 || h.type > 9) return false;
  switch (static_cast<FrameType>(h.type)) {
    case FrameType::kSettings:
      return h.stream_id == 0 && h.length % 6 == 0 && (h.flags & ~1) == 0;
    case FrameType::kPing:
      return h.stream_id == 0 && h.length == 8 && (h.flags & ~1) == 0;
    case FrameType::kGoaway:
      return h.stream_id == 0 && h.length >= 8;
    case FrameType::kWindowUpdate:
      return h.length == 4;
    case FrameType::kRstStream:
      return h.stream_id != 0 && h.length == 4 && h.flags == 0;
    case FrameType::kPriority:
      return h.stream_id != 0 && h.length == 5;
    case FrameType::kData:
      return h.stream_id != 0 && (h.flags & ~(kEndStream | kPadded)) == 0;
    case FrameType::kHeaders:
      return h.stream_id != 0 && (h.flags & ~(kEndStream | kEndHeaders | kPadded | kPriority)) == 0;
    case FrameType::kPushPromise:
      return h.stream_id != 0 && (h.flags & ~(kEndHeaders | kPadded)) == 0;
    case FrameType::kContinuation:
      return h.stream_id != 0 && (h.flags & ~kEndHeaders) == 0;
  }
  return false;
}

nghttp2_hd_inflater* NewInflater() {
  nghttp2_hd_inflater* p = nullptr;
  if (nghttp2_hd_inflate_new(&p) != 0) return nullptr;
  return p;
}

// Decodes `block` with `inf`; false on an HPACK error (the inflater is then unusable).
bool Inflate(nghttp2_hd_inflater* inf, std::string_view block, std::vector<Header>* out) {
  auto* in = reinterpret_cast<const uint8_t*>(block.data());
  size_t inlen = block.size();
  // Room for a typical header list up front (growing one element at a time moved every header
  // string several times per block).
  if (out->capacity() == 0) out->reserve(16);
  for (int guard = 0; guard < 4096; ++guard) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t rv = nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, inlen, 1);
    if (rv < 0) return false;
    in += rv;
    inlen -= static_cast<size_t>(rv);
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) && out->size() < kMaxHeaders) {
      Header& h = out->emplace_back();  // filled in place: no temporary to move from
      h.name.assign(reinterpret_cast<const char*>(nv.name), nv.namelen);
      h.value.assign(reinterpret_cast<const char*>(nv.value),
                     std::min<size_t>(nv.valuelen, kMaxHeaderValueBytes));
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inf);
      return true;
    }
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && inlen == 0) return true;
  }
  return false;
}

// HPACK integer with an N-bit prefix at b[*pos]; false when truncated or too large.
bool ReadInt(std::string_view b, size_t* pos, int prefix_bits, uint32_t* v) {
  if (*pos >= b.size()) return false;
  const uint32_t max = (1u << prefix_bits) - 1;
  *v = static_cast<uint8_t>(b[*pos]) & max;
  ++*pos;
  if (*v < max) return true;
  for (int shift = 0; shift < 28; shift += 7) {
    if (*pos >= b.size()) return false;
    uint8_t c = static_cast<uint8_t>(b[(*pos)++]);
    *v += static_cast<uint32_t>(c & 0x7f) << shift;
    if ((c & 0x80) == 0) return true;
  }
  return false;
}

bool SkipString(std::string_view b, size_t* pos) {
  uint32_t len = 0;
  if (!ReadInt(b, pos, 7, &len) || len > b.size() - *pos) return false;
  *pos += len;
  return true;
}

// Degraded decoding: splits the block into field representations and decodes, each with a fresh
// inflater, only those that do not reference the (unknown) dynamic table.
void DecodeSelfContained(std::string_view block, std::vector<Header>* out) {
  size_t pos = 0;
  for (int guard = 0; pos < block.size() && guard < 1024; ++guard) {
    const size_t start = pos;
    const uint8_t c = static_cast<uint8_t>(block[pos]);
    uint32_t index = 0;
    bool self_contained = false;
    if (c & 0x80) {  // indexed field
      if (!ReadInt(block, &pos, 7, &index)) return;
      self_contained = index >= 1 && index <= 61;
    } else if ((c & 0xe0) == 0x20) {  // dynamic table size update
      if (!ReadInt(block, &pos, 5, &index)) return;
      continue;
    } else {  // literal: 6-bit (incremental) or 4-bit (without / never indexed) name index
      const int bits = (c & 0x40) ? 6 : 4;
      if (!ReadInt(block, &pos, bits, &index)) return;
      if (index == 0 && !SkipString(block, &pos)) return;
      if (!SkipString(block, &pos)) return;
      self_contained = index <= 61;
    }
    if (!self_contained) continue;
    InflaterPtr inf(NewInflater());
    if (inf == nullptr) return;
    Inflate(inf.get(), block.substr(start, pos - start), out);
  }
}

std::string_view Find(const std::vector<Header>& hs, std::string_view name) {
  for (const Header& h : hs) {
    if (h.name == name) return h.value;
  }
  return {};
}

bool StartsWithUpperWord(std::string_view b) {
  size_t i = 0;
  while (i < b.size() && i < 16 && b[i] >= 'A' && b[i] <= 'Z') ++i;
  return i > 0 && i < b.size() && b[i] == ' ';
}

// HTTP/1.1 Upgrade: h2c request -> a HEADERS frame on stream 1.
ParseState ParseUpgradeRequest(std::string_view* buf, Frame* f) {
  size_t end = buf->find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return buf->size() > 16384 ? ParseState::kInvalid : ParseState::kNeedsMoreData;
  }
  std::string_view head = buf->substr(0, end);
  size_t nl = head.find("\r\n");
  std::string_view line = head.substr(0, nl);
  size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 <= sp1) return ParseState::kInvalid;
  f->type = FrameType::kHeaders;
  f->stream_id = 1;
  f->end_stream = true;
  f->headers.push_back({":method", std::string(line.substr(0, sp1))});
  f->headers.push_back({":path", std::string(line.substr(sp1 + 1, sp2 - sp1 - 1).substr(0, 1024))});
  size_t pos = nl == std::string_view::npos ? head.size() : nl + 2;
  while (pos < head.size() && f->headers.size() < kMaxHeaders) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string_view::npos) e = head.size();
    std::string_view h = head.substr(pos, e - pos);
    pos = e + 2;
    size_t colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name = ToLower(h.substr(0, colon));
    std::string_view value = h.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (name == "host") name = ":authority";
    f->headers.push_back({std::move(name), std::string(value.substr(0, kMaxHeaderValueBytes))});
  }
  f->payload_bytes = static_cast<uint32_t>(end + 4);
  buf->remove_prefix(end + 4);
  return ParseState::kSuccess;
}

common::v1::ResponseStatus GrpcStatus(int code) {
  switch (code) {
    case 0:
      return common::v1::RESPONSE_STATUS_OK;
    case 1: case 3: case 5: case 6: case 7: case 9: case 11: case 16:
      return common::v1::RESPONSE_STATUS_CLIENT_ERROR;
    default:
      return common::v1::RESPONSE_STATUS_SERVER_ERROR;
  }
}

int ToInt(std::string_view s, int fallback) {
  int v = fallback;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() ? v : fallback;
}

void BuildRecord(uint32_t id, const Stream& s, bool timed_out, v1::L7RequestLog* rec) {
  const bool grpc = Find(s.req_headers, "content-type").starts_with("application/grpc") ||
                    Find(s.resp_headers, "content-type").starts_with("application/grpc");
  rec->set_l7_protocol(grpc ? common::v1::L7_PROTOCOL_GRPC : common::v1::L7_PROTOCOL_HTTP2);
  rec->set_version("2");
  rec->set_request_id(id);
  rec->set_request_type(std::string(Find(s.req_headers, ":method")));
  std::string_view authority = Find(s.req_headers, ":authority");
  if (authority.empty()) authority = Find(s.req_headers, "host");
  rec->set_request_domain(std::string(authority));
  std::string_view path = Find(s.req_headers, ":path");
  rec->set_request_resource(std::string(path));
  rec->set_endpoint(grpc ? std::string(path.substr(0, path.find('?'))) : EndpointPattern(path));
  rec->set_user_agent(std::string(Find(s.req_headers, "user-agent")));
  for (const Header& h : s.req_headers) ApplyTraceHeader(h.name, h.value, rec);
  const uint64_t start = s.have_request ? s.start_ns : s.first_resp_ns;
  const uint64_t end = s.have_response ? s.end_ns : start;
  rec->set_start_time_us(start / 1000);
  rec->set_end_time_us(end / 1000);
  rec->set_time(static_cast<uint32_t>(start / 1000000000));
  rec->set_response_duration(end > start ? (end - start) / 1000 : 0);
  rec->set_req_tcp_seq(s.req_seq);
  rec->set_resp_tcp_seq(s.resp_seq);
  rec->set_request_length(s.have_request ? s.req_bytes : -1);
  rec->set_response_length(s.have_response ? s.resp_bytes : -1);
  rec->set_syscall_thread_0(s.req_tid);
  rec->set_syscall_thread_1(s.resp_tid);
  rec->set_syscall_trace_id_request(s.req_trace);
  rec->set_syscall_trace_id_response(s.resp_trace);
  if (timed_out || !s.have_response) {
    MarkTimeout(rec);
    return;
  }
  const int status = ToInt(Find(s.resp_headers, ":status"), 0);
  std::string_view grpc_status = Find(s.trailers, "grpc-status");
  if (grpc_status.empty()) grpc_status = Find(s.resp_headers, "grpc-status");
  std::string_view grpc_message = Find(s.trailers, "grpc-message");
  if (grpc_message.empty()) grpc_message = Find(s.resp_headers, "grpc-message");
  if (grpc && !grpc_status.empty() && (status == 200 || status == 0)) {
    const int code = ToInt(grpc_status, 2);
    rec->set_response_code(code);
    rec->set_response_status(GrpcStatus(code));
    rec->set_response_exception(std::string(grpc_message));
  } else if (status != 0) {
    rec->set_response_code(status);
    rec->set_response_status(StatusFromHttpCode(status));
  } else if (s.reset) {
    rec->set_response_status(common::v1::RESPONSE_STATUS_SERVER_ERROR);
    rec->set_response_exception("RST_STREAM " + std::to_string(s.reset_code));
  } else {
    rec->set_response_status(common::v1::RESPONSE_STATUS_UNKNOWN);
  }
  if (s.reset && rec->response_exception().empty()) {
    rec->set_response_exception("RST_STREAM " + std::to_string(s.reset_code));
  }
}

uint16_t Be16(std::string_view b, size_t i) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[i]) << 8 | static_cast<uint8_t>(b[i + 1]));
}

uint32_t Be32At(std::string_view b, size_t i) {
  return static_cast<uint32_t>(Be16(b, i)) << 16 | Be16(b, i + 2);
}

// Stricter per-frame checks for inference without the connection preface: binary payloads of
// other protocols (e.g. RowBinary bodies) often look like a chain of loosely plausible frames.
// `max_len` is SETTINGS_MAX_FRAME_SIZE (16384 unless a SETTINGS frame raised it).
bool InferPlausible(flow::StreamDirection dir, const RawHeader& h, std::string_view payload,
                    uint32_t max_len) {
  if (h.reserved_bit || h.length > max_len || !Plausible(h)) return false;
  const bool client_stream = (h.stream_id & 1) == 1;
  const bool request = dir == flow::StreamDirection::kRequest;
  switch (static_cast<FrameType>(h.type)) {
    case FrameType::kData:
      // Even (server-pushed) streams are not accepted: push is rare and disabled by most
      // clients, and mid-stream we would not have seen the PUSH_PROMISE anyway.
      if (!client_stream) return false;
      // The pad length must leave room in the frame.
      if ((h.flags & kPadded) != 0 &&
          (h.length == 0 || static_cast<uint8_t>(payload[0]) >= h.length)) {
        return false;
      }
      // An empty DATA frame without END_STREAM carries nothing; peers do not send them.
      return h.length > 0 || (h.flags & kEndStream) != 0;
    case FrameType::kHeaders:
      return client_stream && h.length > 0;
    case FrameType::kContinuation:
      return h.length > 0;
    case FrameType::kPriority:
      return h.flags == 0;
    case FrameType::kRstStream:
      return Be32At(payload, 0) <= 0xd;  // a defined error code
    case FrameType::kPushPromise:
      return !request && client_stream;
    case FrameType::kSettings:
      // An ACK carries no payload; unknown setting ids are legal (and ignored by peers).
      return (h.flags & 1) == 0 || h.length == 0;
    case FrameType::kPing:
      return true;
    case FrameType::kGoaway:
      return h.flags == 0 && (static_cast<uint8_t>(payload[0]) & 0x80) == 0 &&
             Be32At(payload, 4) <= 0xd;
    case FrameType::kWindowUpdate: {
      const uint32_t inc = Be32At(payload, 0);
      return h.flags == 0 && (inc & 0x80000000u) == 0 && inc != 0;
    }
  }
  return false;
}

// A HEADERS frame (END_HEADERS, no padding/priority) whose block a fresh HPACK decoder accepts,
// yielding at least one header, every name lowercase printable.
bool HeadersDecodeFresh(const RawHeader& h, std::string_view payload) {
  if ((h.flags & (kPadded | kPriority)) != 0 || (h.flags & kEndHeaders) == 0) return false;
  nghttp2_hd_inflater* inf = NewInflater();
  if (inf == nullptr) return false;
  std::vector<Header> headers;
  const bool ok = Inflate(inf, payload, &headers);
  nghttp2_hd_inflate_del(inf);
  if (!ok || headers.empty()) return false;
  for (const Header& hd : headers) {
    if (hd.name.empty()) return false;
    for (char c : hd.name) {
      const auto u = static_cast<unsigned char>(c);
      if ((c >= 'A' && c <= 'Z') || u <= 0x20 || u >= 0x7f) return false;
    }
  }
  return true;
}

// Inference without the preface: two consecutive complete well-formed frames, or a first frame
// that is hard to hit by chance (a HEADERS block that decodes, a non-empty SETTINGS).
InferResult InferFrames(flow::StreamDirection dir, std::string_view data) {
  uint32_t max_len = 16384;
  size_t pos = 0;
  int complete = 0;
  bool strong = false;
  int non_data = 0;                 // DATA-only chains are too easy to hit in zero-heavy data
  uint32_t ended_stream = 0;        // a stream that carried END_STREAM in the previous frame
  uint32_t open_block = 0;          // stream whose header block awaits CONTINUATION
  for (int n = 0; n < 16 && pos < data.size(); ++n) {
    if (data.size() - pos < kFrameHeaderBytes) break;
    const RawHeader h = ReadHeader(data.substr(pos));
    if (data.size() - pos - kFrameHeaderBytes < h.length) {
      // Truncated frame: its header alone must be plausible.
      if (h.reserved_bit || h.length > max_len || !Plausible(h)) {
        return complete >= 2 && non_data > 0 ? InferResult::kYes : InferResult::kNo;
      }
      break;
    }
    const std::string_view payload = data.substr(pos + kFrameHeaderBytes, h.length);
    const bool data_frame = h.type == static_cast<uint8_t>(FrameType::kData);
    // Nothing follows END_STREAM on the same stream from the same sender.
    const bool after_end = ended_stream != 0 && h.stream_id == ended_stream &&
                           (data_frame || h.type == static_cast<uint8_t>(FrameType::kHeaders));
    // A header block without END_HEADERS continues in CONTINUATION frames of the same stream,
    // and only there.
    const bool continuation = h.type == static_cast<uint8_t>(FrameType::kContinuation);
    const bool bad_sequence = (open_block != 0) != continuation ||
                              (continuation && h.stream_id != open_block);
    if (after_end || bad_sequence || !InferPlausible(dir, h, payload, max_len)) {
      return complete >= 2 && non_data > 0 ? InferResult::kYes : InferResult::kNo;
    }
    if (!data_frame) ++non_data;
    const bool opens_block = h.type == static_cast<uint8_t>(FrameType::kHeaders) ||
                             h.type == static_cast<uint8_t>(FrameType::kPushPromise) || continuation;
    open_block = opens_block && (h.flags & kEndHeaders) == 0 ? h.stream_id : 0;
    ended_stream = ((data_frame || h.type == static_cast<uint8_t>(FrameType::kHeaders)) &&
                    (h.flags & kEndStream) != 0)
                       ? h.stream_id
                       : 0;
    if (h.type == static_cast<uint8_t>(FrameType::kSettings) && (h.flags & 1) == 0) {
      // A first SETTINGS frame whose ids are all defined ones is strong evidence.
      bool known_ids = h.length > 0;
      for (size_t i = 0; i + 6 <= payload.size(); i += 6) {
        const uint16_t id = Be16(payload, i);
        const uint32_t v = Be32At(payload, i + 2);
        known_ids = known_ids && id != 0 && id != 7 && id <= 9;
        if (id == 5 && v >= 16384 && v <= 16777215) max_len = v;
      }
      strong = strong || (complete == 0 && known_ids);
    }
    if (complete == 0 && h.type == static_cast<uint8_t>(FrameType::kHeaders) &&
        HeadersDecodeFresh(h, payload)) {
      strong = true;
    }
    ++complete;
    pos += kFrameHeaderBytes + h.length;
  }
  return (complete >= 2 && non_data > 0) || strong ? InferResult::kYes : InferResult::kMaybe;
}

}  // namespace

void DecodeHeaderBlock(DirectionState* d, std::string_view block, std::vector<Header>* out,
                       bool* degraded) {
  *degraded = false;
  if (d->hpack_synced) {
    if (d->inflater == nullptr) d->inflater.reset(NewInflater());
    if (d->inflater != nullptr && Inflate(d->inflater.get(), block, out)) return;
    d->hpack_synced = false;  // the dynamic table is now unknown for good
    d->inflater.reset();
    out->clear();
  }
  *degraded = true;
  DecodeSelfContained(block, out);
}

size_t Traits::FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                 State* state) {
  DirectionState& d = state->dir[type == MessageType::kResponse ? 1 : 0];
  d.pending_active = false;
  d.pending_block.clear();
  for (size_t i = start; i + kFrameHeaderBytes <= buf.size(); ++i) {
    if (buf.substr(i).starts_with(kPreface.substr(0, std::min(kPreface.size(), buf.size() - i)))) {
      return i;
    }
    RawHeader h = ReadHeader(buf.substr(i));
    if (h.reserved_bit || !Plausible(h)) continue;
    // Prefer a header whose successor is also plausible (or that ends the buffer).
    size_t next = i + kFrameHeaderBytes + h.length;
    if (next + kFrameHeaderBytes <= buf.size()) {
      RawHeader n = ReadHeader(buf.substr(next));
      if (n.reserved_bit || !Plausible(n)) continue;
    }
    return i;
  }
  return std::string_view::npos;
}

ParseState Traits::ParseFrame(MessageType type, std::string_view* buf, Frame* f, State* state) {
  const bool is_request = type != MessageType::kResponse;
  DirectionState& d = state->dir[is_request ? 0 : 1];
  std::string_view b = *buf;
  if (is_request && b.size() > 0 && b[0] == 'P' &&
      kPreface.starts_with(b.substr(0, std::min(b.size(), kPreface.size())))) {
    if (b.size() < kPreface.size()) return ParseState::kNeedsMoreData;
    d.started = true;
    d.hpack_synced = true;
    d.inflater.reset(NewInflater());
    buf->remove_prefix(kPreface.size());
    return ParseState::kIgnored;
  }
  if (!d.started && is_request && StartsWithUpperWord(b)) {
    ParseState s = ParseUpgradeRequest(buf, f);
    if (s == ParseState::kSuccess) state->upgrade_seen = true;
    return s;
  }
  if (!d.started && !is_request && b.starts_with("HTTP/1.")) {
    if (b.size() < 12) return ParseState::kNeedsMoreData;
    if (b.starts_with("HTTP/1.1 101")) {
      size_t end = b.find("\r\n\r\n");
      if (end == std::string_view::npos) return ParseState::kNeedsMoreData;
      buf->remove_prefix(end + 4);
      return ParseState::kIgnored;
    }
  }
  if (b.size() < kFrameHeaderBytes) return ParseState::kNeedsMoreData;
  RawHeader h = ReadHeader(b);
  if (h.length > kMaxFrameBytes || (h.type <= 9 && !Plausible(h) && h.length <= 16384 * 4)) {
    return ParseState::kInvalid;
  }
  if (h.length > 16384 * 4 && h.type != 0) return ParseState::kInvalid;
  if (b.size() < kFrameHeaderBytes + h.length) return ParseState::kNeedsMoreData;
  std::string_view payload = b.substr(kFrameHeaderBytes, h.length);
  const size_t used = kFrameHeaderBytes + h.length;
  if (!d.started) {
    d.started = true;
    // A non-ACK SETTINGS first from the server is the connection start (HPACK in sync).
    if (!is_request && h.type == static_cast<uint8_t>(FrameType::kSettings) && !(h.flags & 1)) {
      d.hpack_synced = true;
      d.inflater.reset(NewInflater());
    }
  }
  auto strip_padding = [&](std::string_view p, uint8_t flags, bool priority) -> std::string_view {
    if (flags & kPadded) {
      if (p.empty()) return {};
      size_t pad = static_cast<uint8_t>(p[0]);
      p.remove_prefix(1);
      if (pad > p.size()) return {};
      p.remove_suffix(pad);
    }
    if (priority && (flags & kPriority)) {
      if (p.size() < 5) return {};
      p.remove_prefix(5);
    }
    return p;
  };
  auto finish_block = [&](uint32_t stream, bool end_stream, bool is_push) -> ParseState {
    std::vector<Header> headers;
    bool degraded = false;
    DecodeHeaderBlock(&d, d.pending_block, &headers, &degraded);
    d.pending_block.clear();
    d.pending_active = false;
    buf->remove_prefix(used);
    if (is_push) return ParseState::kIgnored;  // decoded only to keep HPACK in sync
    f->type = FrameType::kHeaders;
    f->stream_id = stream;
    f->end_stream = end_stream;
    f->headers = std::move(headers);
    f->headers_degraded = degraded;
    f->payload_bytes = h.length;
    return ParseState::kSuccess;
  };
  switch (static_cast<FrameType>(h.type)) {
    case FrameType::kData:
      f->type = FrameType::kData;
      f->stream_id = h.stream_id;
      f->end_stream = (h.flags & kEndStream) != 0;
      f->payload_bytes = h.length;
      buf->remove_prefix(used);
      return ParseState::kSuccess;
    case FrameType::kHeaders:
    case FrameType::kPushPromise: {
      const bool push = h.type == static_cast<uint8_t>(FrameType::kPushPromise);
      std::string_view block = strip_padding(payload, h.flags, !push);
      if (push) block = block.size() >= 4 ? block.substr(4) : std::string_view();
      d.pending_block.assign(block);
      d.pending_stream = h.stream_id;
      d.pending_end_stream = (h.flags & kEndStream) != 0;
      d.pending_is_push = push;
      d.pending_active = true;
      if (h.flags & kEndHeaders) return finish_block(h.stream_id, d.pending_end_stream, push);
      buf->remove_prefix(used);
      return ParseState::kIgnored;
    }
    case FrameType::kContinuation:
      if (!d.pending_active || d.pending_stream != h.stream_id ||
          d.pending_block.size() + payload.size() > kMaxBlockBytes) {
        d.pending_active = false;
        d.pending_block.clear();
        buf->remove_prefix(used);
        return ParseState::kIgnored;  // orphan continuation (picked up mid-block)
      }
      d.pending_block.append(payload);
      if (h.flags & kEndHeaders) {
        return finish_block(d.pending_stream, d.pending_end_stream, d.pending_is_push);
      }
      buf->remove_prefix(used);
      return ParseState::kIgnored;
    case FrameType::kRstStream:
      f->type = FrameType::kRstStream;
      f->stream_id = h.stream_id;
      f->error_code = static_cast<uint32_t>(static_cast<uint8_t>(payload[0])) << 24 |
                      static_cast<uint8_t>(payload[1]) << 16 |
                      static_cast<uint8_t>(payload[2]) << 8 | static_cast<uint8_t>(payload[3]);
      f->payload_bytes = h.length;
      buf->remove_prefix(used);
      return ParseState::kSuccess;
    default:
      buf->remove_prefix(used);  // SETTINGS, PING, PRIORITY, WINDOW_UPDATE, GOAWAY, unknown
      return ParseState::kIgnored;
  }
}

void Traits::Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                    const StitchContext& ctx, RecordBuffer* out) {
  auto& streams = state->streams;
  auto stream_for = [&](uint32_t id) -> Stream* {
    auto it = streams.find(id);
    if (it != streams.end()) return &it->second;
    if (streams.size() >= kMaxStreams) {
      auto oldest = streams.begin();
      v1::L7RequestLog& rec = out->Add();
      BuildRecord(oldest->first, oldest->second, true, &rec);
      streams.erase(oldest);
    }
    return &streams[id];
  };
  auto complete = [&](uint32_t id) {
    auto it = streams.find(id);
    if (it == streams.end()) return;
    if (!it->second.have_request && !it->second.have_response) {
      streams.erase(it);
      return;
    }
    if (!it->second.have_request) CountUnpairedResponses(ctx);
    v1::L7RequestLog& rec = out->Add();
    BuildRecord(id, it->second, false, &rec);
    streams.erase(it);
  };
  for (Frame& f : *requests) {
    Stream* s = stream_for(f.stream_id);
    const int64_t bytes = static_cast<int64_t>(f.frame_bytes);
    if (!s->have_request) {
      s->have_request = true;
      s->start_ns = f.timestamp_ns;
      s->req_seq = f.tcp_seq;
      s->req_tid = f.tid;
      s->req_trace = f.syscall_trace_id;
    }
    s->req_bytes += bytes;
    if (f.type == FrameType::kHeaders && s->req_headers.empty()) s->req_headers = std::move(f.headers);
    s->degraded |= f.headers_degraded;
    if (f.end_stream) s->request_done = true;
    if (f.type == FrameType::kRstStream) {
      s->reset = true;
      s->reset_code = f.error_code;
      s->end_ns = f.timestamp_ns;
      complete(f.stream_id);
    }
  }
  requests->clear();
  for (Frame& f : *responses) {
    Stream* s = stream_for(f.stream_id);
    if (!s->have_response) {
      s->have_response = true;
      s->first_resp_ns = f.timestamp_ns;
      s->resp_seq = f.tcp_seq;
      s->resp_tid = f.tid;
      s->resp_trace = f.syscall_trace_id;
    }
    s->end_ns = f.timestamp_ns;
    s->resp_bytes += static_cast<int64_t>(f.frame_bytes);
    if (f.type == FrameType::kHeaders) {
      if (s->resp_headers.empty()) {
        s->resp_headers = std::move(f.headers);
      } else {
        s->trailers = std::move(f.headers);
      }
    }
    s->degraded |= f.headers_degraded;
    if (f.type == FrameType::kRstStream) {
      s->reset = true;
      s->reset_code = f.error_code;
      complete(f.stream_id);
      continue;
    }
    // A 1xx informational HEADERS block is followed by the final one.
    if (f.end_stream) {
      s->response_done = true;
      complete(f.stream_id);
    }
  }
  responses->clear();
  for (auto it = streams.begin(); it != streams.end();) {
    const Stream& s = it->second;
    const uint64_t ts = s.have_request ? s.start_ns : s.first_resp_ns;
    if (IsTimedOut(ts, ctx)) {
      if (s.have_request || s.have_response) {
        v1::L7RequestLog& rec = out->Add();
        // A response that started but never ended still tells the status.
        BuildRecord(it->first, s, !s.have_response, &rec);
      }
      it = streams.erase(it);
    } else {
      ++it;
    }
  }
}

InferResult Infer(flow::StreamDirection dir, std::string_view data, const flow::ConnectionInfo&) {
  if (data.empty()) return InferResult::kMaybe;
  if (dir == flow::StreamDirection::kRequest) {
    const size_t n = std::min(data.size(), kPreface.size());
    if (data.substr(0, n) == kPreface.substr(0, n)) {
      return n == kPreface.size() ? InferResult::kYes : InferResult::kMaybe;
    }
    if (StartsWithUpperWord(data)) {
      size_t end = data.find("\r\n\r\n");
      if (ContainsIgnoreCase(data.substr(0, end), "\r\nupgrade: h2c")) return InferResult::kYes;
      return end == std::string_view::npos && data.size() < 4096 ? InferResult::kMaybe
                                                                 : InferResult::kNo;
    }
  }
  // No preface (joined mid-stream): demand a plausible frame sequence, strictly checked.
  return InferFrames(dir, data);
}

}  // namespace sonde::agent::protocols::http2
