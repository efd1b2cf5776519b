// PayloadDecoder: wire::DecodePayload's checks with a reused ZSTD_DCtx and output buffer.
#include "server/ingest/payload_decoder.h"

#include <zstd.h>

#include <fmt/format.h>

namespace sonde::server::ingest {

struct PayloadDecoder::Context {
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  ~Context() { ZSTD_freeDCtx(dctx); }
};

PayloadDecoder::PayloadDecoder() : context_(std::make_unique<Context>()) {}
PayloadDecoder::~PayloadDecoder() = default;

StatusOr<std::string_view> PayloadDecoder::Decode(const wire::FrameHeader& header, std::string_view body) {
  if (body.size() != header.payload_bytes) return DataLossError("frame body truncated");
  if (!header.compressed) return body;
  const unsigned long long size = ZSTD_getFrameContentSize(body.data(), body.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) return DataLossError("frame body is not valid zstd");
  if (size == ZSTD_CONTENTSIZE_UNKNOWN || size > wire::kMaxDecompressedBytes) {
    return OutOfRangeError("compressed frame has unknown or too large content size");
  }
  if (context_->dctx == nullptr) return ResourceExhaustedError("zstd: cannot create a decompression context");
  if (buffer_.size() < size) buffer_.resize(static_cast<size_t>(size));
  const size_t n = ZSTD_decompressDCtx(context_->dctx, buffer_.data(), static_cast<size_t>(size), body.data(),
                                       body.size());
  if (ZSTD_isError(n)) return DataLossError(fmt::format("zstd: {}", ZSTD_getErrorName(n)));
  return std::string_view(buffer_.data(), n);
}

}  // namespace sonde::server::ingest
