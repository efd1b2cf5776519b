// MQTT 3.1, 3.1.1 and 5.0: one Frame per control packet. Either side can start an exchange
// (the broker publishes to subscribers), so the stitcher pairs by packet kind and packet id
// across both directions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include "agent/protocols/common/frame_queue.h"

namespace sonde::agent::protocols::mqtt {

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,
};

inline constexpr size_t kMaxTextBytes = 256;
inline constexpr size_t kMaxPending = 1024;  // unanswered exchanges tracked per connection

struct Frame {
  // User-provided, so value-initialisation (FrameQueue::emplace_back() constructs Frame()) runs
  // only the member initialisers below instead of first zeroing the whole object (a rep stos
  // per parsed frame). Every member has an initialiser.
  Frame() noexcept {}
  uint64_t timestamp_ns = 0;
  uint32_t tcp_seq = 0;
  size_t frame_bytes = 0;

  PacketType type = PacketType::kConnect;
  bool from_client = true;  // set by the stitcher from the deque it came from
  uint8_t qos = 0;
  uint16_t packet_id = 0;
  std::string topic;      // PUBLISH topic, first SUBSCRIBE/UNSUBSCRIBE filter
  std::string client_id;  // CONNECT
  uint8_t protocol_level = 0;  // CONNECT: 3, 4 or 5
  int32_t code = -1;      // CONNACK return/reason code, PUBACK/PUBREC/PUBCOMP reason, first
                          // failing SUBACK/UNSUBACK code (-1: none given, i.e. success)
};

// An exchange waiting for its answer.
struct Pending {
  Frame request;
  bool got_pubrec = false;  // QoS 2: PUBREC seen, waiting for PUBCOMP
  int32_t code = -1;
  uint64_t last_ts_ns = 0;
  size_t response_bytes = 0;
  uint32_t resp_tcp_seq = 0;
};

struct State {
  uint8_t protocol_level = 4;  // from CONNECT; governs v5 properties
  std::string client_id;
  FrameQueue<Pending> pending;
  uint64_t unpaired_responses = 0;
};

}  // namespace sonde::agent::protocols::mqtt
