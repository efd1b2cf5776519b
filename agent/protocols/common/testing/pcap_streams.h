// Test helper: replays a pcap/pcapng file into a flow::StreamHandler as per-connection, in-order
// StreamChunks, using a deliberately small TCP reassembly (SYN-based roles, out-of-order
// buffering, retransmission trimming, gaps reported). Production flow tracking is agent/flow.
#pragma once

#include <cstdint>
#include <string>

#include "agent/flow/stream_handler.h"
#include "common/base/status.h"

namespace sonde::agent::protocols::testing {

struct PcapReplayStats {
  uint64_t packets = 0;
  uint64_t tcp_connections = 0;
  uint64_t udp_flows = 0;
  uint64_t gaps = 0;
  uint64_t last_timestamp_ns = 0;
};

// Feeds every TCP/UDP payload of `path` to `handler` (OnData / OnTick per packet / OnClose on
// FIN+FIN or RST, and for every connection still open at the end). The caller flushes the handler.
[[nodiscard]] StatusOr<PcapReplayStats> ReplayPcap(const std::string& path,
                                                   flow::StreamHandler* handler);

}  // namespace sonde::agent::protocols::testing
