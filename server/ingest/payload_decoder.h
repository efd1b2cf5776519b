// Frame payloads of one agent connection, decompressed into a buffer and a zstd context that are
// reused frame after frame (wire::DecodePayload allocates both per frame).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "common/wire/frame_codec.h"

namespace sonde::server::ingest {

// Same answers as wire::DecodePayload (same checks, bounds and error codes). Not thread-safe: one
// per connection thread.
class PayloadDecoder {
 public:
  PayloadDecoder();
  ~PayloadDecoder();
  PayloadDecoder(const PayloadDecoder&) = delete;
  PayloadDecoder& operator=(const PayloadDecoder&) = delete;

  // The payload of a frame body; for a compressed frame the view points into this decoder's
  // buffer and stays valid until the next Decode. An uncompressed body is returned as is.
  StatusOr<std::string_view> Decode(const wire::FrameHeader& header, std::string_view body);

 private:
  struct Context;
  std::unique_ptr<Context> context_;
  std::string buffer_;  // only grows: resizing within its size writes nothing
};

}  // namespace sonde::server::ingest
