// Redis (RESP2 and RESP3) frames and per-connection state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sonde::agent::protocols::redis {

enum class ReplyKind : uint8_t {
  kReply,    // an ordinary reply, paired with the oldest request
  kConfirm,  // (un)subscribe confirmation, one per channel of a (P|S)(UN)SUBSCRIBE request
  kPush,     // a pub/sub message the server pushes without a request
};

struct Frame {
  // User-provided, so value-initialisation (FrameQueue::emplace_back() constructs Frame()) runs
  // only the member initialisers below instead of first zeroing the whole object (a rep stos
  // per parsed frame). Every member has an initialiser.
  Frame() noexcept {}
  uint64_t timestamp_ns = 0;
  uint32_t tcp_seq = 0;
  size_t frame_bytes = 0;

  // Requests: upper-cased command and its key (empty for commands without one).
  std::string command;
  std::string key;
  uint32_t expected_confirms = 0;  // for (un)subscribe commands: confirmations still to come

  // Responses.
  ReplyKind kind = ReplyKind::kReply;
  char type = 0;             // RESP type byte: + - : $ * _ , # ! = ( % ~ > |
  bool is_error = false;     // simple error '-' or blob error '!'
  std::string error;         // error text, capped
  std::string result;        // short summary (simple string, integer, aggregate size), capped
  std::string push_channel;  // kPush: the channel the message came on
};

struct State {
  uint64_t unpaired_responses = 0;  // responses with no request to pair with (capture mid-stream)
};

}  // namespace sonde::agent::protocols::redis
