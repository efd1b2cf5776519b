// Dubbo (dubbo2 protocol): 16-byte header (magic 0xdabb, flags, status, request id, body length)
// and a body whose leading Hessian2 strings name the service and method.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sonde::agent::protocols::dubbo {

inline constexpr size_t kHeaderBytes = 16;
inline constexpr uint32_t kMaxBodyBytes = 8u << 20;  // Dubbo's default payload limit
inline constexpr size_t kMaxTextBytes = 256;
inline constexpr uint8_t kHessian2 = 2;
inline constexpr uint8_t kKryo = 8;

struct Frame {
  // User-provided, so value-initialisation (FrameQueue::emplace_back() constructs Frame()) runs
  // only the member initialisers below instead of first zeroing the whole object (a rep stos
  // per parsed frame). Every member has an initialiser.
  Frame() noexcept {}
  uint64_t timestamp_ns = 0;
  uint32_t tcp_seq = 0;
  size_t frame_bytes = 0;

  bool is_request = false;
  bool two_way = false;
  uint8_t serialization = 0;
  uint8_t status = 0;  // responses: 20 OK, 30/31 timeouts, 40.. errors
  uint64_t request_id = 0;
  // Requests (Hessian2 only).
  std::string dubbo_version;
  std::string service;
  std::string service_version;
  std::string method;
  // Responses.
  bool has_exception = false;  // status 20 with an exception as the result
  std::string error;           // status != 20: the error message
};

struct State {
  uint64_t unpaired_responses = 0;
};

}  // namespace sonde::agent::protocols::dubbo
