// DNS over UDP (one message per datagram) and TCP (2-byte length prefix): Traits for
// FrameParser, pairing by message id, and inference.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "agent/protocols/common/frame_meta.h"
#include "agent/protocols/common/parser.h"
#include "agent/protocols/common/registry.h"

namespace sonde::agent::protocols::dns {

struct Frame : FrameMeta {
  // User-provided, so value-initialisation (FrameQueue::emplace_back() constructs Frame()) runs
  // only the member initialisers below instead of first zeroing the whole object (a rep stos
  // per parsed frame). Every member has an initialiser.
  Frame() noexcept {}
  uint16_t id = 0;
  bool is_response = false;
  uint8_t rcode = 0;
  uint16_t qtype = 0;
  std::string qname;
  std::string answers;  // first answers, "; "-separated
};

struct State {
  bool datagram = false;  // set by FrameParser per chunk
};

// Parses one DNS message (no TCP length prefix). False when it is not a plausible DNS message.
bool ParseMessage(std::string_view msg, Frame* frame);
// The same verdict; with `with_text` false the names and answers are checked but not copied
// (frame->qname and frame->answers are left empty or stale): enough for inference.
bool ParseMessage(std::string_view msg, Frame* frame, bool with_text);

// "A", "AAAA", "MX", ... or the number as text.
std::string QtypeName(uint16_t qtype);
std::string_view RcodeName(uint8_t rcode);

struct Traits {
  using Frame = dns::Frame;
  using State = dns::State;
  static constexpr common::v1::L7Protocol kProtocol = common::v1::L7_PROTOCOL_DNS;
  // State carries nothing from one message to the next: an idle parser may be handed back.
  static constexpr bool kStatelessBetweenMessages = true;

  static size_t FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                  State* state);
  static ParseState ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                               State* state);
  static void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                     const StitchContext& ctx, RecordBuffer* out);
};

InferResult Infer(flow::StreamDirection dir, std::string_view data,
                  const flow::ConnectionInfo& conn);

}  // namespace sonde::agent::protocols::dns
