// HTTP/2 frames as the parser hands them to the stitcher, and per-connection state: HPACK
// decoders per direction, pending header blocks, and open streams.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/protocols/common/frame_meta.h"

struct nghttp2_hd_inflater;

namespace sonde::agent::protocols::http2 {

enum class FrameType : uint8_t {
  kData = 0,
  kHeaders = 1,
  kPriority = 2,
  kRstStream = 3,
  kSettings = 4,
  kPushPromise = 5,
  kPing = 6,
  kGoaway = 7,
  kWindowUpdate = 8,
  kContinuation = 9,
};

struct Header {
  std::string name;
  std::string value;
};

// One reported frame: a complete header block (HEADERS + CONTINUATIONs), DATA, or RST_STREAM.
struct Frame : FrameMeta {
  // User-provided, so value-initialisation (FrameQueue::emplace_back() constructs Frame()) runs
  // only the member initialisers below instead of first zeroing the whole object (a rep stos
  // per parsed frame). Every member has an initialiser.
  Frame() noexcept {}
  FrameType type = FrameType::kData;
  uint32_t stream_id = 0;
  bool end_stream = false;
  uint32_t payload_bytes = 0;
  uint32_t error_code = 0;           // RST_STREAM
  std::vector<Header> headers;       // HEADERS
  bool headers_degraded = false;     // HPACK state unknown: some fields could not be decoded
};

struct InflaterDeleter {
  void operator()(nghttp2_hd_inflater* p) const;
};
using InflaterPtr = std::unique_ptr<nghttp2_hd_inflater, InflaterDeleter>;

struct DirectionState {
  InflaterPtr inflater;
  bool started = false;          // saw the first frame of this direction
  bool hpack_synced = false;     // saw the connection start: the dynamic table is trustworthy
  std::string pending_block;     // HEADERS/PUSH_PROMISE fragment awaiting CONTINUATION
  uint32_t pending_stream = 0;
  bool pending_end_stream = false;
  bool pending_is_push = false;
  bool pending_active = false;
  uint64_t pending_ts_ns = 0;
};

struct Stream {
  // User-provided, so State::streams[id] (value-initialisation) runs only the member
  // initialisers below instead of first zeroing the whole object (a rep stos per stream).
  // Every member has an initialiser.
  Stream() noexcept {}
  std::vector<Header> req_headers, resp_headers, trailers;
  bool have_request = false, have_response = false;
  bool request_done = false, response_done = false;
  bool degraded = false;
  uint64_t start_ns = 0, end_ns = 0, first_resp_ns = 0;
  uint32_t req_seq = 0, resp_seq = 0;
  int64_t req_bytes = 0, resp_bytes = 0;
  uint32_t reset_code = 0;
  bool reset = false;
  uint32_t req_tid = 0, resp_tid = 0;
  uint64_t req_trace = 0, resp_trace = 0;
};

struct State {
  DirectionState dir[2];  // 0 client->server, 1 server->client
  bool upgrade_seen = false;
  std::map<uint32_t, Stream> streams;
};

}  // namespace sonde::agent::protocols::http2
