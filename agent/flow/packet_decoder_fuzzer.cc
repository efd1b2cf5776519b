// Fuzzes PacketDecoder and FlowTracker with arbitrary frames. Input: byte 0 picks the link type,
// bytes 1.. are the captured frame; a sequence of frames is separated by the 4-byte marker
// "SNDE" so stateful paths (fragments, reassembly, timeouts) are reached too. The frames go
// through one tracker one by one and through another in windows (FlowTracker::OnPackets); any
// difference in their records or streams aborts.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

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
  std::vector<sonde::agent::capture::PacketView> frames;
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
    frames.push_back(v);
  }
  // The same frames one by one and in windows (decoded ahead): the same records must come out.
  sonde::agent::flow::FlowTrackerConfig cfg;
  cfg.max_flows = 64;
  cfg.max_reassembly_bytes = 4096;
  sonde::agent::flow::testing::CollectingSink sink, batched_sink;
  sonde::agent::flow::testing::CollectingHandler handler, batched_handler;
  sonde::agent::flow::FlowTracker tracker(cfg, &sink, &handler, nullptr);
  sonde::agent::flow::FlowTracker batched(cfg, &batched_sink, &batched_handler, nullptr);
  for (const sonde::agent::capture::PacketView& v : frames) tracker.OnPacket(v);
  const std::span<const sonde::agent::capture::PacketView> views(frames);
  constexpr size_t kWindow = 5;
  for (size_t i = 0; i < views.size(); i += kWindow) {
    batched.OnPackets(views.subspan(i, std::min(kWindow, views.size() - i)));
  }
  tracker.FlushAll(ts);
  batched.FlushAll(ts);
  if (sink.l4.size() != batched_sink.l4.size() || handler.streams.size() != batched_handler.streams.size()) {
    std::abort();
  }
  for (size_t i = 0; i < sink.l4.size(); ++i) {
    if (sink.l4[i].SerializeAsString() != batched_sink.l4[i].SerializeAsString()) std::abort();
  }
  for (const auto& [id, st] : handler.streams) {
    const auto& other = batched_handler.streams[id];
    if (st.bytes[0] != other.bytes[0] || st.bytes[1] != other.bytes[1]) std::abort();
  }
  return 0;
}
