// Shared libFuzzer body: splits the input into chunks for both directions of one connection and
// runs them through FrameParser<Traits>, with an occasional gap, then stitches with a close.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "agent/protocols/common/frame_parser.h"

namespace sonde::agent::protocols::testing {

template <typename Traits>
void FuzzFrameParser(const uint8_t* data, size_t size, std::string_view name) {
  metrics::Registry registry;
  ParserCounters counters = ParserCounters::Create(&registry, name);
  ParserOptions options;
  options.max_buffer_bytes = 8192;
  FrameParser<Traits> parser(options, &counters);
  if (size == 0) return;
  const uint8_t pattern = data[0];
  const bool datagram = (pattern & 0x40) != 0;
  size_t pos = 1;
  uint64_t ts = 1;
  RecordBuffer out;
  for (int i = 0; pos < size; ++i) {
    const size_t n = std::min<size_t>(((pattern >> (i % 6)) & 1) ? 5 : 97, size - pos);
    flow::StreamChunk chunk;
    chunk.timestamp_ns = ts++;
    chunk.tcp_seq = static_cast<uint32_t>(pos);
    chunk.data = {data + pos, n};
    chunk.is_datagram = datagram;
    chunk.gap_bytes_before = ((pattern & 0x80) != 0 && i == 3) ? 10 : 0;
    parser.OnData((pattern >> (i % 7)) & 2 ? flow::StreamDirection::kResponse
                                           : flow::StreamDirection::kRequest,
                  chunk);
    pos += n;
    if (i % 4 == 3) parser.Stitch({ts, 5, false}, &out);
  }
  parser.Stitch({ts, 5, true}, &out);
}

}  // namespace sonde::agent::protocols::testing
