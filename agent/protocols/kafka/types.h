// Kafka wire protocol: one Frame per size-prefixed request or response. Responses carry only a
// correlation id, so they are interpreted with the api key and version of their request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sonde::agent::protocols::kafka {

inline constexpr size_t kMaxPayloadKept = 4096;      // enough for headers, topic names, errors
inline constexpr int32_t kMaxMessageBytes = 64 << 20;  // larger sizes are not Kafka

struct Frame {
  // User-provided, so value-initialisation (FrameQueue::emplace_back() constructs Frame()) runs
  // only the member initialisers below instead of first zeroing the whole object (a rep stos
  // per parsed frame). Every member has an initialiser.
  Frame() noexcept {}
  uint64_t timestamp_ns = 0;
  uint32_t tcp_seq = 0;
  size_t frame_bytes = 0;

  int32_t correlation_id = 0;
  // Requests only.
  int16_t api_key = -1;
  int16_t api_version = -1;
  std::string client_id;
  std::string topic;        // first topic of Produce/Fetch (and a few others)
  bool expects_response = true;  // false for Produce with acks=0
  // The message after the size field (capped).
  std::string payload;
};

struct State {
  uint64_t unpaired_responses = 0;
};

}  // namespace sonde::agent::protocols::kafka
