// IP address parsing and formatting.
#include "common/net/ip_address.h"

#include <arpa/inet.h>

namespace sonde::net {

namespace {
constexpr uint8_t kV4Prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
}

IpAddress IpAddress::V4(uint32_t host_order) {
  IpAddress a;
  std::memcpy(a.bytes_.data(), kV4Prefix, 12);
  a.bytes_[12] = host_order >> 24;
  a.bytes_[13] = host_order >> 16;
  a.bytes_[14] = host_order >> 8;
  a.bytes_[15] = host_order;
  return a;
}

IpAddress IpAddress::V6(const uint8_t bytes[16]) {
  IpAddress a;
  std::memcpy(a.bytes_.data(), bytes, 16);
  return a;
}

bool IpAddress::is_v4() const { return std::memcmp(bytes_.data(), kV4Prefix, 12) == 0; }

uint32_t IpAddress::v4() const {
  return (uint32_t{bytes_[12]} << 24) | (uint32_t{bytes_[13]} << 16) | (uint32_t{bytes_[14]} << 8) |
         bytes_[15];
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  std::string s(text);
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) return V4(ntohl(v4.s_addr));
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) return V6(v6.s6_addr);
  return std::nullopt;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (is_v4()) {
    inet_ntop(AF_INET, bytes_.data() + 12, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, bytes_.data(), buf, sizeof(buf));
  }
  return buf;
}

}  // namespace sonde::net
