// Transport 5-tuple, plus a direction-independent key for bidirectional flow lookup.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/net/ip_address.h"

namespace sonde::net {

enum class IpProtocol : uint8_t { kIcmp = 1, kTcp = 6, kUdp = 17, kIcmpV6 = 58 };

struct FiveTuple {
  IpAddress src_ip;
  IpAddress dst_ip;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  IpProtocol protocol = IpProtocol::kTcp;

  FiveTuple Reversed() const { return {dst_ip, src_ip, dst_port, src_port, protocol}; }
  // The same value for both directions of one flow: the lower (ip, port) endpoint first.
  FiveTuple Canonical() const;
  bool IsCanonical() const;
  std::string ToString() const;

  friend bool operator==(const FiveTuple&, const FiveTuple&) = default;
};

struct FiveTupleHash {
  size_t operator()(const FiveTuple& t) const;
};

}  // namespace sonde::net
