// Fuzzes the Redis parser in both directions plus stitching and inference; the first byte picks the direction.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/protocols/redis/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sonde::agent::protocols;
  if (size == 0) return 0;
  const MessageType type = (data[0] & 1) ? MessageType::kResponse : MessageType::kRequest;
  std::string_view buf(reinterpret_cast<const char*>(data + 1), size - 1);
  (void)redis::Infer(type == MessageType::kRequest ? sonde::agent::flow::StreamDirection::kRequest
                                             : sonde::agent::flow::StreamDirection::kResponse,
                   buf, sonde::agent::flow::ConnectionInfo{});
  redis::State state;
  FrameQueue<redis::Frame> reqs, resps;
  for (int i = 0; i < 10000 && !buf.empty(); ++i) {
    redis::Frame f;
    size_t before = buf.size();
    ParseState s = redis::Traits::ParseFrame(type, &buf, &f, &state);
    if (s == ParseState::kSuccess) {
      if (buf.size() >= before) __builtin_trap();  // must make progress
      (type == MessageType::kRequest ? reqs : resps).push_back(std::move(f));
    } else if (s == ParseState::kInvalid) {
      size_t next = redis::Traits::FindFrameBoundary(type, buf, 1, &state);
      if (next == std::string_view::npos || next > buf.size()) break;
      buf.remove_prefix(next);
    } else {
      break;
    }
  }
  if (!buf.empty()) {  // the stream ends here: what is left may be a reply cut short
    redis::Frame f;
    const size_t before = buf.size();
    if (redis::Traits::ParseTruncatedFrame(type, &buf, &f, &state) == ParseState::kSuccess) {
      if (buf.size() >= before) __builtin_trap();
      (type == MessageType::kRequest ? reqs : resps).push_back(std::move(f));
    }
  }
  RecordBuffer out;
  redis::Traits::Stitch(&reqs, &resps, &state, StitchContext{1, 0, true}, &out);
  return 0;
}
