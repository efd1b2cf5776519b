// IPv4/IPv6 address as 16 bytes (IPv4 stored v4-mapped), cheap to copy, hash and compare.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <optional>

namespace sonde::net {

class IpAddress {
 public:
  IpAddress() = default;
  // From a host-order IPv4 address.
  static IpAddress V4(uint32_t host_order);
  // From 16 network-order bytes.
  static IpAddress V6(const uint8_t bytes[16]);
  static std::optional<IpAddress> Parse(std::string_view text);

  bool is_v4() const;
  // Host-order IPv4 value (only meaningful when is_v4()).
  uint32_t v4() const;
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  std::string ToString() const;

  // Two words compared inline: the defaulted comparison called memcmp, which showed in the
  // agent's per-packet and per-record key lookups.
  friend bool operator==(const IpAddress& x, const IpAddress& y) {
    uint64_t a[2], b[2];
    std::memcpy(a, x.bytes_.data(), 16);
    std::memcpy(b, y.bytes_.data(), 16);
    return ((a[0] ^ b[0]) | (a[1] ^ b[1])) == 0;
  }
  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;

 private:
  std::array<uint8_t, 16> bytes_{};
};

}  // namespace sonde::net
