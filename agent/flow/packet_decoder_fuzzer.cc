// Fuzzes PacketDecoder and FlowTracker with arbitrary frames. Input: byte 0 picks the link type,
// bytes 1.. are the captured frame; a sequence of frames is separated by the 4-byte marker
// "SNDE" so stateful paths (fragments, reassembly, timeouts) are reached too.
#include <cstdint>
#include <cstring>
#include <string_view>

#include "agent/flow/flow_tracker.h"
#include "agent/flow/testing/collecting_sink.h"

namespace {

using sonde::agent::capture::LinkType;

LinkType PickLink(uint8_t b) {
  static constexpr LinkType kLinks[] = {LinkType::kEthernet, LinkType::kRaw, LinkType::kNull,
                                        LinkType::kLinuxSll, LinkType::kLinuxSll2,
                                        LinkType::kIpv4, LinkType::kIpv6};
  return kLinks[b % (sizeof(kLinks) / sizeof(kLinks[0]))];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sonde::agent::flow::testing::CollectingSink sink;
  sonde::agent::flow::testing::CollectingHandler handler;
  sonde::agent::flow::FlowTrackerConfig cfg;
  cfg.max_flows = 64;
  cfg.max_reassembly_bytes = 4096;
  sonde::agent::flow::FlowTracker tracker(cfg, &sink, &handler, nullptr);
  std::string_view all(reinterpret_cast<const char*>(data), size);
  uint64_t ts = 1'000'000'000;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t next = all.find("SNDE", pos);
    std::string_view frame = all.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
    pos = next == std::string_view::npos ? all.size() : next + 4;
    if (frame.empty()) continue;
    sonde::agent::capture::PacketView v;
    v.link_type = PickLink(static_cast<uint8_t>(frame[0]));
    v.data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(frame.data()) + 1, frame.size() - 1);
    v.wire_length = static_cast<uint32_t>(v.data.size());
    v.timestamp_ns = ts;
    ts += 400'000'000;  // 0.4 s per frame: ticks and timeouts fire
    tracker.OnPacket(v);
  }
  tracker.FlushAll(ts);
  return 0;
}
