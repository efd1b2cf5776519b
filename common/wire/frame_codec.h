// Agent <-> server framing: a 12-byte header then a protobuf payload, optionally zstd-compressed.
//
//   magic "SND1" (4 bytes) | flags (1) | reserved (3, zero) | payload length (4, big endian)
//
// flags bit 0: payload is zstd-compressed. The payload is a serialized
// sonde.control.v1.AgentFrame (agent -> server) or ServerFrame (server -> agent).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace sonde::wire {

inline constexpr size_t kHeaderBytes = 12;
inline constexpr uint32_t kMaxPayloadBytes = 64u << 20;        // on the wire
inline constexpr size_t kMaxDecompressedBytes = 256u << 20;    // after zstd

struct FrameHeader {
  uint32_t payload_bytes = 0;
  bool compressed = false;
};

// Header + payload, compressing with zstd (level 1) when `compress` is set and it helps.
std::string EncodeFrame(std::string_view payload, bool compress);

// Validates magic, reserved bits and size bounds.
StatusOr<FrameHeader> DecodeHeader(std::span<const uint8_t> header);

// Returns the protobuf bytes of a frame body (decompressing when needed, bounded).
StatusOr<std::string> DecodePayload(const FrameHeader& header, std::string_view body);

// Blocking helpers for a connected socket. `timeout_ms` < 0 waits forever; 0 polls once.
Status WriteFrame(int fd, std::string_view payload, bool compress, int timeout_ms = 30000);
StatusOr<std::string> ReadFrame(int fd, int timeout_ms = 30000);

}  // namespace sonde::wire
