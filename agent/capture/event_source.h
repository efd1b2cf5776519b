// EventSource: where the agent's raw events come from (pcap file, AF_PACKET ring, eBPF ring
// buffer). Sources push events into an EventSink on the thread that calls Run().
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "common/net/five_tuple.h"

namespace sonde::agent::capture {

// Link-layer framing of a captured packet (values are libpcap DLT numbers).
enum class LinkType : uint16_t {
  kNull = 0,          // BSD loopback
  kEthernet = 1,
  kRaw = 101,         // raw IP
  kLinuxSll = 113,
  kLinuxSll2 = 276,
  kIpv4 = 228,
  kIpv6 = 229,
};

// One captured packet. `data` is only valid during the OnPacket call.
struct PacketView {
  uint64_t timestamp_ns = 0;
  std::span<const uint8_t> data;  // captured bytes (may be shorter than wire_length)
  uint32_t wire_length = 0;       // original length on the wire
  LinkType link_type = LinkType::kEthernet;
  uint32_t ifindex = 0;           // 0 when unknown (pcap files)
  uint64_t netns_inode = 0;       // network namespace of the interface, 0 when unknown
};

enum class SocketDirection : uint8_t { kIngress = 0, kEgress = 1 };  // read vs write

// How the process came to hold the socket: connect() (client), accept() (server), or unknown
// (opened before tracing started, or an unconnected UDP socket).
enum class SocketRole : uint8_t { kUnknown = 0, kClient = 1, kServer = 2 };

// One socket read or write observed by eBPF. `data` holds the first captured bytes of the
// payload; `total_bytes` is what the syscall actually moved.
struct SocketDataEvent {
  uint64_t timestamp_ns = 0;
  uint32_t pid = 0;
  uint32_t tid = 0;
  int32_t fd = -1;
  uint64_t conn_generation = 0;   // distinguishes successive sockets reusing an fd
  SocketDirection direction = SocketDirection::kIngress;
  uint32_t total_bytes = 0;
  uint32_t tcp_seq = 0;           // sequence number of the first byte, when known
  bool is_tls_plaintext = false;  // came from an SSL_read/SSL_write uprobe
  bool is_sendfile = false;       // sendfile(): total_bytes were sent, none captured
  std::string_view comm;          // process name
  std::span<const uint8_t> data;
  // The socket as the kernel saw it: src = this process's end, dst = the peer (for an
  // unconnected UDP socket, the peer of this datagram from sendto/recvfrom/msg_name).
  net::FiveTuple tuple;
  SocketRole role = SocketRole::kUnknown;
};

// Lifecycle of an eBPF-observed socket (connect/accept/shutdown/close), and the exit of a
// process (kProcessExit: fd = -1; every socket of `pid` is gone).
struct SocketControlEvent {
  enum class Kind : uint8_t { kConnect, kAccept, kClose, kShutdown, kProcessExit };
  Kind kind = Kind::kConnect;
  uint64_t timestamp_ns = 0;
  uint32_t pid = 0;
  uint32_t tid = 0;
  int32_t fd = -1;
  uint64_t conn_generation = 0;
  int32_t shutdown_how = 0;       // kShutdown: SHUT_RD (0), SHUT_WR (1) or SHUT_RDWR (2)
  std::string_view comm;          // process name
  net::FiveTuple tuple;           // as in SocketDataEvent (unset for kProcessExit)
  SocketRole role = SocketRole::kUnknown;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void OnPacket(const PacketView& packet) = 0;
  // Several packets at once, in capture order, from a source that holds many at a time (a
  // mapped capture file, an AF_PACKET block): the sink may look ahead across them (decode a few, prefetch their
  // state) but must handle them exactly as OnPacket one by one would. The views are valid only
  // during the call. By default, OnPacket for each.
  virtual void OnPackets(std::span<const PacketView> packets) {
    for (const PacketView& p : packets) OnPacket(p);
  }
  virtual void OnSocketData(const SocketDataEvent& event) {}
  virtual void OnSocketControl(const SocketControlEvent& event) {}
  // Called when the source is idle, so time-driven work (timeouts, metric flushes) still runs.
  virtual void OnIdle(uint64_t now_ns) {}
};

// What a source holding many packets at once uses to hand them over: it collects views and
// passes them to the sink's OnPackets a full batch at a time, and on Flush(). The views must stay
// valid until then (a mapped file, an AF_PACKET block not yet returned to the kernel).
class PacketBatch {
 public:
  static constexpr size_t kSize = 32;
  explicit PacketBatch(EventSink& sink) : sink_(sink) {}
  // Hands over what is left, should an exit path have missed its Flush().
  ~PacketBatch() { Flush(); }
  PacketBatch(const PacketBatch&) = delete;
  PacketBatch& operator=(const PacketBatch&) = delete;

  // Adds a packet; a full batch goes to the sink at once.
  void Add(const PacketView& view) {
    views_[size_++] = view;
    if (size_ == kSize) Flush();
  }
  void Flush() {
    if (size_ == 0) return;
    const size_t n = size_;
    size_ = 0;
    sink_.OnPackets(std::span<const PacketView>(views_.data(), n));
  }
 private:
  EventSink& sink_;
  std::array<PacketView, kSize> views_;
  size_t size_ = 0;
};

struct SourceStats {
  uint64_t events = 0;
  uint64_t bytes = 0;
  uint64_t dropped = 0;      // lost before reaching us (kernel ring full, ...)
  uint64_t malformed = 0;    // unreadable records (corrupt pcap, ...)
};

class EventSource {
 public:
  virtual ~EventSource() = default;
  virtual std::string_view name() const = 0;
  // Delivers events until the input ends (files), `stop` becomes true, or an error occurs.
  // Returns OK at a clean end of input.
  virtual Status Run(EventSink& sink, const std::atomic<bool>& stop) = 0;
  virtual SourceStats stats() const = 0;
};

}  // namespace sonde::agent::capture
