// The hand-off from flow tracking to the application layer: per-connection, per-direction,
// in-order byte streams (TCP) or datagrams (UDP), from packets or from eBPF socket events.
// Implemented by the protocol layer (agent/protocols); called by agent/flow and by the eBPF
// connection tracker. All calls for one connection come from one thread, in time order.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/net/five_tuple.h"
#include "sonde/common/v1/common.pb.h"

namespace sonde::agent::flow {

// kRequest = client to server, kResponse = server to client.
enum class StreamDirection : uint8_t { kRequest = 0, kResponse = 1 };

struct ProcessRef {
  uint32_t pid = 0;
  std::string comm;
  std::string container_id;
};

struct ConnectionInfo {
  uint64_t flow_id = 0;                 // unique per agent run
  net::FiveTuple tuple;                 // src = client, dst = server
  common::v1::RoleSource role_source = common::v1::ROLE_SOURCE_UNKNOWN;
  common::v1::SignalSource signal_source = common::v1::SIGNAL_SOURCE_PACKET;
  bool is_tls_plaintext = false;        // eBPF uprobe on a TLS library
  ProcessRef process_0;                 // client-side process when known (eBPF)
  ProcessRef process_1;                 // server-side process when known (eBPF)
};

struct StreamChunk {
  uint64_t timestamp_ns = 0;
  uint32_t tcp_seq = 0;                 // sequence number of data[0] (0 when unknown)
  std::span<const uint8_t> data;        // valid only during the call
  uint32_t gap_bytes_before = 0;        // bytes lost before data[0] (capture loss, truncation)
  bool is_datagram = false;             // one UDP datagram: message boundaries are real
  // eBPF only: the thread that did the I/O and the trace key of its syscall.
  uint32_t tid = 0;
  uint64_t syscall_trace_id = 0;
};

class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  virtual void OnData(const ConnectionInfo& conn, StreamDirection dir, const StreamChunk& chunk) = 0;
  // The connection ended (FIN/RST/timeout/close()); pending requests may be flushed.
  virtual void OnClose(const ConnectionInfo& conn, uint64_t timestamp_ns) = 0;
  // Time passes (packet time when replaying, wall time when live): request timeouts, metrics.
  virtual void OnTick(uint64_t now_ns) = 0;
  // The L7 protocol detected on a connection (unknown when none), for the L4 flow log.
  virtual common::v1::L7Protocol ProtocolOf(uint64_t flow_id) const = 0;
  // True once the handler has given up on a connection (no protocol recognised): it ignores any
  // further data, so a live source may stop capturing it.
  virtual bool Abandoned(uint64_t /*flow_id*/) const { return false; }
};

}  // namespace sonde::agent::flow
