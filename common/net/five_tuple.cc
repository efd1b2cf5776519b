// 5-tuple canonicalisation and hashing.
#include "common/net/five_tuple.h"

#include <cstring>

#include <fmt/format.h>

namespace sonde::net {

bool FiveTuple::IsCanonical() const {
  if (src_ip != dst_ip) return src_ip < dst_ip;
  return src_port <= dst_port;
}

FiveTuple FiveTuple::Canonical() const { return IsCanonical() ? *this : Reversed(); }

std::string FiveTuple::ToString() const {
  return fmt::format("{}:{} -> {}:{} proto {}", src_ip.ToString(), src_port, dst_ip.ToString(),
                     dst_port, static_cast<int>(protocol));
}

size_t FiveTupleHash::operator()(const FiveTuple& t) const {
  // FNV-1a over the fields; good enough spread for open-addressing tables keyed by flows.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  mix(t.src_ip.bytes().data(), 16);
  mix(t.dst_ip.bytes().data(), 16);
  mix(reinterpret_cast<const uint8_t*>(&t.src_port), 2);
  mix(reinterpret_cast<const uint8_t*>(&t.dst_port), 2);
  uint8_t p = static_cast<uint8_t>(t.protocol);
  mix(&p, 1);
  return h;
}

}  // namespace sonde::net
