// Test helpers that build packets byte by byte (Ethernet, VLAN, IPv4/IPv6, TCP, UDP, tunnels),
// so decoder and tracker tests state their input explicitly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sonde::agent::flow::testing {

using Bytes = std::vector<uint8_t>;

struct TcpSpec {
  uint16_t sport = 40000, dport = 80;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0x10;
  uint16_t window = 65535;
  std::string_view payload;
};

Bytes Tcp(const TcpSpec& s);
Bytes Udp(uint16_t sport, uint16_t dport, const Bytes& payload);
Bytes Udp(uint16_t sport, uint16_t dport, std::string_view payload);
// IPv4 header + l4; `frag_field` is the raw flags/offset field.
Bytes Ipv4(std::string_view src, std::string_view dst, uint8_t proto, const Bytes& l4,
           uint16_t id = 1, uint16_t frag_field = 0x4000);
Bytes Ipv6(std::string_view src, std::string_view dst, uint8_t next, const Bytes& l4);
Bytes Ethernet(uint16_t ethertype, const Bytes& payload);
// One 802.1Q tag (to follow an Ethernet header whose type is 0x8100 or 0x88A8).
Bytes Vlan(uint16_t vid, uint16_t inner_type, const Bytes& payload);
Bytes Concat(const Bytes& a, const Bytes& b);

// Ethernet + IPv4 + TCP in one call.
Bytes EthTcp4(std::string_view src, std::string_view dst, const TcpSpec& s);

}  // namespace sonde::agent::flow::testing
