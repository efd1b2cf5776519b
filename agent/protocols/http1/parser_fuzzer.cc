// libFuzzer target: arbitrary bytes split into request/response chunks through FrameParser.
#include <cstddef>
#include <cstdint>

#include "agent/protocols/common/frame_parser.h"
#include "agent/protocols/http1/parser.h"

namespace sp = sonde::agent::protocols;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sonde::metrics::Registry registry;
  sp::ParserCounters counters = sp::ParserCounters::Create(&registry, "HTTP1");
  sp::ParserOptions options;
  options.max_buffer_bytes = 4096;
  sp::FrameParser<sp::http1::Traits> parser(options, &counters);
  // First byte picks the split pattern; the rest alternates between directions.
  size_t pos = size > 0 ? 1 : 0;
  const uint8_t pattern = size > 0 ? data[0] : 0;
  uint64_t ts = 1;
  for (int i = 0; pos < size; ++i) {
    size_t n = 1 + ((pattern >> (i % 8)) & 1 ? 7 : 61) % (size - pos + 1);
    n = std::min(n, size - pos);
    sonde::agent::flow::StreamChunk chunk;
    chunk.timestamp_ns = ts++;
    chunk.data = {data + pos, n};
    chunk.gap_bytes_before = (pattern & 0x80) && i == 3 ? 10 : 0;
    parser.OnData(i % 3 == 2 ? sonde::agent::flow::StreamDirection::kResponse
                             : sonde::agent::flow::StreamDirection::kRequest,
                  chunk);
    pos += n;
  }
  std::vector<sonde::agent::v1::L7RequestLog> out;
  parser.Stitch({ts, 1, true}, &out);
  return 0;
}
