// PacketDecoder: link layer -> (tunnels) -> IPv4/IPv6 -> TCP/UDP/ICMP, with IPv4 and IPv6
// fragment reassembly (bounded in datagrams, fragments per datagram, bytes and time). Bytes are untrusted: every outcome is a DecodeResult, nothing asserts on input.
#pragma once

#include <cstdint>
#include <array>
#include <map>
#include <span>
#include <string_view>
#include <vector>

#include "agent/capture/event_source.h"
#include "common/net/five_tuple.h"
#include "sonde/common/v1/common.pb.h"

namespace sonde::agent::flow {

enum class DecodeResult : uint8_t {
  kOk = 0,
  kTruncated,          // captured bytes end inside a header
  kMalformed,          // header fields contradict each other (bad IHL, length, version)
  kUnsupportedLink,    // unknown link type or ethertype (ARP, LLDP, ...)
  kUnsupportedL4,      // IP protocol we do not track (SCTP, ESP, ...)
  kFragmentPending,    // an IPv4/IPv6 fragment was buffered; the datagram is not complete yet
  kFragmentDropped,    // fragment rejected (reassembly table full, overlap, too large)
  kTunnelTooDeep,      // more nested encapsulations than we follow
};
inline constexpr int kDecodeResultCount = 8;
std::string_view DecodeResultName(DecodeResult r);

// TCP flag bits as on the wire.
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

// One decoded packet. Spans point into the PacketView or into the decoder's reassembly buffer
// and are valid until the next Decode() call.
struct DecodedPacket {
  uint64_t timestamp_ns = 0;
  net::FiveTuple tuple;            // as seen on the wire (src = sender); ICMP ports are 0
  bool is_ipv4 = true;
  uint32_t l3_bytes = 0;           // inner IP datagram length from its header (wire bytes)
  common::v1::TunnelType tunnel_type = common::v1::TUNNEL_TYPE_NONE;  // outermost tunnel
  uint32_t tunnel_id = 0;          // VNI, GRE key or ERSPAN session id
  // TCP only.
  uint8_t tcp_flags = 0;
  uint32_t tcp_seq = 0;
  uint32_t tcp_ack = 0;
  uint16_t tcp_window = 0;         // raw (unscaled) window field
  // L4 payload: `payload` holds the captured bytes, `payload_wire_bytes` the length claimed by
  // the headers (larger when the capture was truncated by the snap length).
  std::span<const uint8_t> payload;
  uint32_t payload_wire_bytes = 0;
};

struct PacketDecoderConfig {
  size_t max_fragment_datagrams = 1024;    // concurrent IPv4 + IPv6 datagrams being reassembled
  size_t max_fragments_per_datagram = 128;
  size_t max_fragment_bytes = 16u << 20;   // payload bytes held for reassembly, all datagrams
  uint64_t fragment_timeout_ns = 30'000'000'000ull;
  int max_tunnel_depth = 3;
  uint16_t vxlan_port = 4789;
  uint16_t geneve_port = 6081;
  // Also treat UDP payloads that look exactly like VXLAN + Ethernet + IP as VXLAN on any port
  // (some clouds use non-standard ports).
  bool vxlan_heuristic = true;
};

class PacketDecoder {
 public:
  explicit PacketDecoder(PacketDecoderConfig config = {}) : config_(config) {}

  DecodeResult Decode(const capture::PacketView& packet, DecodedPacket* out);

  size_t pending_fragment_datagrams() const { return fragments_.size(); }
  size_t pending_fragment_bytes() const { return fragment_bytes_; }
  // Fragmented datagrams completed so far. The payload of the last one lives in a buffer the
  // next completed datagram overwrites.
  uint64_t datagrams_reassembled() const { return datagrams_reassembled_; }

 private:
  struct FragKey {
    std::array<uint8_t, 16> src{}, dst{};
    uint32_t id = 0;
    uint8_t proto = 0;   // IPv4 protocol; 0 for IPv6 (RFC 8200 keys on addresses + id)
    bool ipv6 = false;
    friend auto operator<=>(const FragKey&, const FragKey&) = default;
  };
  struct FragDatagram {
    uint64_t first_seen_ns = 0;
    std::vector<uint8_t> data;              // reassembled payload (grows as needed)
    std::vector<std::pair<uint32_t, uint32_t>> ranges;  // [begin, end) received
    uint32_t total_len = 0;                 // known once the last fragment arrived (0 = unknown)
    uint8_t next_header = 0;                // IPv6: from the offset-0 fragment
    bool have_first = false;
  };

  DecodeResult DecodeLink(capture::LinkType link, std::span<const uint8_t> d, int depth,
                          DecodedPacket* out);
  DecodeResult DecodeEthernet(std::span<const uint8_t> d, int depth, DecodedPacket* out);
  DecodeResult DecodeEthertype(uint16_t type, std::span<const uint8_t> d, int depth,
                               DecodedPacket* out);
  DecodeResult DecodeIpv4(std::span<const uint8_t> d, int depth, DecodedPacket* out);
  DecodeResult DecodeIpv6(std::span<const uint8_t> d, int depth, DecodedPacket* out);
  DecodeResult DecodeL4(uint8_t proto, std::span<const uint8_t> d, uint32_t l4_wire_len, int depth,
                        DecodedPacket* out);
  DecodeResult DecodeGre(std::span<const uint8_t> d, int depth, DecodedPacket* out);
  // Adds one fragment's payload at `offset`; kOk with `*whole` (and `*next_header` for IPv6)
  // when the datagram is complete.
  DecodeResult AddFragment(const FragKey& key, uint32_t offset, bool more,
                           std::span<const uint8_t> data, uint8_t next_header,
                           std::span<const uint8_t>* whole, uint8_t* first_next_header);
  void DropDatagram(std::map<FragKey, FragDatagram>::iterator it);
  void ExpireFragments(uint64_t now_ns);
  void MarkTunnel(DecodedPacket* out, common::v1::TunnelType type, uint32_t id);

  PacketDecoderConfig config_;
  std::map<FragKey, FragDatagram> fragments_;
  std::vector<uint8_t> reassembled_;  // last completed datagram; payload spans point here
  uint64_t datagrams_reassembled_ = 0;
  size_t fragment_bytes_ = 0;
  uint64_t now_ns_ = 0;
  uint64_t last_expire_ns_ = 0;
};

}  // namespace sonde::agent::flow
