// IPv4/IPv6 address as 16 bytes (IPv4 stored v4-mapped), cheap to copy, hash and compare.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <optional>

namespace sonde::net {

class IpAddress {
 public:
  IpAddress() = default;
  // The accessors and constructors below are inline: the agent calls them per packet and per
  // record (a call each, and memcmp for is_v4, showed in its profiles).
  // From a host-order IPv4 address.
  static IpAddress V4(uint32_t host_order) {
    IpAddress a;
    const uint32_t prefix_high = kV4PrefixHighWord;
    std::memcpy(a.bytes_.data() + 8, &prefix_high, 4);  // bytes 0-7 are already zero
    const uint32_t be = __builtin_bswap32(host_order);
    std::memcpy(a.bytes_.data() + 12, &be, 4);
    return a;
  }
  // From 16 network-order bytes.
  static IpAddress V6(const uint8_t bytes[16]) {
    IpAddress a;
    std::memcpy(a.bytes_.data(), bytes, 16);
    return a;
  }
  static std::optional<IpAddress> Parse(std::string_view text);

  // v4-mapped (::ffff:a.b.c.d).
  bool is_v4() const {
    uint64_t low;
    uint32_t high;
    std::memcpy(&low, bytes_.data(), 8);
    std::memcpy(&high, bytes_.data() + 8, 4);
    return low == 0 && high == kV4PrefixHighWord;
  }
  // Host-order IPv4 value (only meaningful when is_v4()).
  uint32_t v4() const {
    uint32_t be;
    std::memcpy(&be, bytes_.data() + 12, 4);
    return __builtin_bswap32(be);
  }
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
  // Bytes 8-11 of a v4-mapped address (00 00 ff ff) read as one native word.
  static_assert(std::endian::native == std::endian::little);
  static constexpr uint32_t kV4PrefixHighWord = 0xFFFF0000u;
  std::array<uint8_t, 16> bytes_{};
};

}  // namespace sonde::net
