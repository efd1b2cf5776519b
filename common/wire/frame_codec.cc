// Frame encoding/decoding and blocking socket I/O with deadlines.
#include "common/wire/frame_codec.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

namespace sonde::wire {

namespace {
constexpr uint8_t kMagic[4] = {'S', 'N', 'D', '1'};
constexpr uint8_t kFlagZstd = 0x01;

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline, int timeout_ms) {
  if (timeout_ms < 0) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

Status WaitFor(int fd, short events, Clock::time_point deadline, int timeout_ms) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = poll(&p, 1, RemainingMs(deadline, timeout_ms));
    if (rc > 0) return Status::Ok();
    if (rc == 0) return DeadlineExceededError("timed out waiting on socket");
    if (errno != EINTR) return UnavailableError(fmt::format("poll: {}", std::strerror(errno)));
  }
}

Status WriteAll(int fd, const char* data, size_t n, Clock::time_point deadline, int timeout_ms) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      data += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      SONDE_RETURN_IF_ERROR(WaitFor(fd, POLLOUT, deadline, timeout_ms));
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    return UnavailableError(fmt::format("send: {}", w < 0 ? std::strerror(errno) : "closed"));
  }
  return Status::Ok();
}

Status ReadAll(int fd, char* data, size_t n, Clock::time_point deadline, int timeout_ms) {
  while (n > 0) {
    ssize_t r = ::recv(fd, data, n, MSG_DONTWAIT);
    if (r > 0) {
      data += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return UnavailableError("connection closed by peer");
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      SONDE_RETURN_IF_ERROR(WaitFor(fd, POLLIN, deadline, timeout_ms));
      continue;
    }
    if (errno == EINTR) continue;
    return UnavailableError(fmt::format("recv: {}", std::strerror(errno)));
  }
  return Status::Ok();
}
}  // namespace

std::string EncodeFrame(std::string_view payload, bool compress) {
  std::string body;
  uint8_t flags = 0;
  if (compress && payload.size() > 256) {
    body.resize(ZSTD_compressBound(payload.size()));
    size_t n = ZSTD_compress(body.data(), body.size(), payload.data(), payload.size(), 1);
    if (!ZSTD_isError(n) && n < payload.size()) {
      body.resize(n);
      flags |= kFlagZstd;
    } else {
      body.assign(payload);
    }
  } else {
    body.assign(payload);
  }
  std::string out(kHeaderBytes, '\0');
  std::memcpy(out.data(), kMagic, 4);
  out[4] = static_cast<char>(flags);
  uint32_t len = static_cast<uint32_t>(body.size());
  out[8] = static_cast<char>(len >> 24);
  out[9] = static_cast<char>(len >> 16);
  out[10] = static_cast<char>(len >> 8);
  out[11] = static_cast<char>(len);
  out += body;
  return out;
}

StatusOr<FrameHeader> DecodeHeader(std::span<const uint8_t> h) {
  if (h.size() < kHeaderBytes) return DataLossError("frame header truncated");
  if (std::memcmp(h.data(), kMagic, 4) != 0) return InvalidArgumentError("bad frame magic (not a Sonde agent?)");
  if ((h[4] & ~kFlagZstd) != 0 || h[5] || h[6] || h[7]) return InvalidArgumentError("unknown frame flags");
  FrameHeader out;
  out.compressed = h[4] & kFlagZstd;
  out.payload_bytes = (uint32_t{h[8]} << 24) | (uint32_t{h[9]} << 16) | (uint32_t{h[10]} << 8) | h[11];
  if (out.payload_bytes > kMaxPayloadBytes) {
    return OutOfRangeError(fmt::format("frame of {} bytes exceeds the {} byte limit", out.payload_bytes,
                                       kMaxPayloadBytes));
  }
  return out;
}

StatusOr<std::string> DecodePayload(const FrameHeader& header, std::string_view body) {
  if (body.size() != header.payload_bytes) return DataLossError("frame body truncated");
  if (!header.compressed) return std::string(body);
  unsigned long long size = ZSTD_getFrameContentSize(body.data(), body.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) return DataLossError("frame body is not valid zstd");
  if (size == ZSTD_CONTENTSIZE_UNKNOWN || size > kMaxDecompressedBytes) {
    return OutOfRangeError("compressed frame has unknown or too large content size");
  }
  std::string out(size, '\0');
  size_t n = ZSTD_decompress(out.data(), out.size(), body.data(), body.size());
  if (ZSTD_isError(n)) return DataLossError(fmt::format("zstd: {}", ZSTD_getErrorName(n)));
  out.resize(n);
  return out;
}

Status WriteFrame(int fd, std::string_view payload, bool compress, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  std::string frame = EncodeFrame(payload, compress);
  return WriteAll(fd, frame.data(), frame.size(), deadline, timeout_ms);
}

StatusOr<std::string> ReadFrame(int fd, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  uint8_t hdr[kHeaderBytes];
  SONDE_RETURN_IF_ERROR(ReadAll(fd, reinterpret_cast<char*>(hdr), kHeaderBytes, deadline, timeout_ms));
  SONDE_ASSIGN_OR_RETURN(FrameHeader h, DecodeHeader(hdr));
  std::string body(h.payload_bytes, '\0');
  SONDE_RETURN_IF_ERROR(ReadAll(fd, body.data(), body.size(), deadline, timeout_ms));
  return DecodePayload(h, body);
}

}  // namespace sonde::wire
