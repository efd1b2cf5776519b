// Byte-level packet construction for tests (checksums are left zero: the decoder ignores them).
#include "agent/flow/testing/packet_builder.h"

#include <arpa/inet.h>

#include <cstring>

namespace sonde::agent::flow::testing {
namespace {
void Put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void Put32(Bytes& b, uint32_t v) {
  Put16(b, static_cast<uint16_t>(v >> 16));
  Put16(b, static_cast<uint16_t>(v));
}
}  // namespace

Bytes Concat(const Bytes& a, const Bytes& b) {
  Bytes out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Bytes Tcp(const TcpSpec& s) {
  Bytes b;
  Put16(b, s.sport);
  Put16(b, s.dport);
  Put32(b, s.seq);
  Put32(b, s.ack);
  b.push_back(0x50);
  b.push_back(s.flags);
  Put16(b, s.window);
  Put32(b, 0);  // checksum + urgent
  b.insert(b.end(), s.payload.begin(), s.payload.end());
  return b;
}

Bytes Udp(uint16_t sport, uint16_t dport, const Bytes& payload) {
  Bytes b;
  Put16(b, sport);
  Put16(b, dport);
  Put16(b, static_cast<uint16_t>(8 + payload.size()));
  Put16(b, 0);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes Udp(uint16_t sport, uint16_t dport, std::string_view payload) {
  return Udp(sport, dport, Bytes(payload.begin(), payload.end()));
}

Bytes Ipv4(std::string_view src, std::string_view dst, uint8_t proto, const Bytes& l4, uint16_t id,
           uint16_t frag_field) {
  Bytes b;
  b.push_back(0x45);
  b.push_back(0);
  Put16(b, static_cast<uint16_t>(20 + l4.size()));
  Put16(b, id);
  Put16(b, frag_field);
  b.push_back(64);
  b.push_back(proto);
  Put16(b, 0);
  in_addr a{}, d{};
  inet_pton(AF_INET, std::string(src).c_str(), &a);
  inet_pton(AF_INET, std::string(dst).c_str(), &d);
  const auto* pa = reinterpret_cast<const uint8_t*>(&a);
  const auto* pd = reinterpret_cast<const uint8_t*>(&d);
  b.insert(b.end(), pa, pa + 4);
  b.insert(b.end(), pd, pd + 4);
  b.insert(b.end(), l4.begin(), l4.end());
  return b;
}

Bytes Ipv6(std::string_view src, std::string_view dst, uint8_t next, const Bytes& l4) {
  Bytes b = {0x60, 0, 0, 0};
  Put16(b, static_cast<uint16_t>(l4.size()));
  b.push_back(next);
  b.push_back(64);
  in6_addr a{}, d{};
  inet_pton(AF_INET6, std::string(src).c_str(), &a);
  inet_pton(AF_INET6, std::string(dst).c_str(), &d);
  const auto* pa = reinterpret_cast<const uint8_t*>(&a);
  const auto* pd = reinterpret_cast<const uint8_t*>(&d);
  b.insert(b.end(), pa, pa + 16);
  b.insert(b.end(), pd, pd + 16);
  b.insert(b.end(), l4.begin(), l4.end());
  return b;
}

Bytes Ethernet(uint16_t ethertype, const Bytes& payload) {
  Bytes b = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1};
  Put16(b, ethertype);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes Vlan(uint16_t vid, uint16_t inner_type, const Bytes& payload) {
  Bytes b;
  Put16(b, vid);
  Put16(b, inner_type);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes EthTcp4(std::string_view src, std::string_view dst, const TcpSpec& s) {
  return Ethernet(0x0800, Ipv4(src, dst, 6, Tcp(s)));
}

}  // namespace sonde::agent::flow::testing
