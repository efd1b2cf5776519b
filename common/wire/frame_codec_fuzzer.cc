// Fuzzes frame header and payload decoding with arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/wire/frame_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto h = sonde::wire::DecodeHeader({data, size});
  if (h.ok() && size >= sonde::wire::kHeaderBytes) {
    std::string_view body(reinterpret_cast<const char*>(data) + sonde::wire::kHeaderBytes,
                          size - sonde::wire::kHeaderBytes);
    (void)sonde::wire::DecodePayload(*h, body);
  }
  return 0;
}
