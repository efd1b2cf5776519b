// TLS handshakes: ClientHello (SNI, ALPN offer, versions) paired with ServerHello (negotiated
// version, cipher, ALPN) or an Alert, as one record per handshake; everything after is opaque.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "agent/protocols/common/frame_meta.h"
#include "agent/protocols/common/parser.h"
#include "agent/protocols/common/registry.h"

namespace sonde::agent::protocols::tls {

enum class Kind : uint8_t { kClientHello, kServerHello, kAlert };

struct Frame : FrameMeta {
  // User-provided, so value-initialisation (FrameQueue::emplace_back() constructs Frame()) runs
  // only the member initialisers below instead of first zeroing the whole object (a rep stos
  // per parsed frame). Every member has an initialiser.
  Frame() noexcept {}
  Kind kind = Kind::kClientHello;
  uint16_t version = 0;  // highest offered (ClientHello) or negotiated (ServerHello)
  uint16_t cipher = 0;   // ServerHello
  std::string sni;
  std::string alpn;      // comma-separated offer, or the selected protocol
  uint8_t alert_level = 0, alert_description = 0;
};

struct State {};

// "TLS 1.2", "TLS 1.3", "SSL 3.0", ...
std::string VersionName(uint16_t version);

// Parses a ClientHello/ServerHello handshake body (after the 4-byte handshake header).
bool ParseClientHello(std::string_view body, Frame* f);
bool ParseServerHello(std::string_view body, Frame* f);

struct Traits {
  using Frame = tls::Frame;
  using State = tls::State;
  static constexpr common::v1::L7Protocol kProtocol = common::v1::L7_PROTOCOL_TLS;

  static size_t FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                  State* state);
  static ParseState ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                               State* state);
  static void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                     const StitchContext& ctx, RecordBuffer* out);
};

InferResult Infer(flow::StreamDirection dir, std::string_view data,
                  const flow::ConnectionInfo& conn);

}  // namespace sonde::agent::protocols::tls
