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

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;

 private:
  std::array<uint8_t, 16> bytes_{};
};

}  // namespace sonde::net
