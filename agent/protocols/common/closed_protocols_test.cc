// ClosedProtocols against a std::map reference under random puts, erases and expiry.
#include "agent/protocols/common/closed_protocols.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <utility>

namespace sonde::agent::protocols {
namespace {

using common::v1::L7Protocol;

TEST(ClosedProtocolsTest, MatchesAMapUnderRandomOperations) {
  ClosedProtocols table;
  std::map<uint64_t, std::pair<L7Protocol, uint64_t>> ref;
  std::mt19937_64 rng(7);
  uint64_t now = 0;
  for (int step = 0; step < 200000; ++step) {
    const uint64_t id = rng() % 5000 + (rng() % 2 == 0 ? 0 : (uint64_t{3} << 48));
    switch (rng() % 8) {
      case 0:
        table.Erase(id);
        ref.erase(id);
        break;
      case 1:
        if (step % 1000 == 0) {
          const uint64_t limit = now > 20000 ? now - 20000 : 0;
          table.EraseClosedUpTo(limit);
          std::erase_if(ref, [&](const auto& kv) { return kv.second.second <= limit; });
        }
        break;
      default: {
        const auto p = (rng() % 2 == 0) ? common::v1::L7_PROTOCOL_HTTP1 : common::v1::L7_PROTOCOL_DNS;
        table.Put(id, p, ++now);
        ref[id] = {p, now};
        break;
      }
    }
    const uint64_t probe = rng() % 5000;
    const L7Protocol* got = table.Find(probe);
    auto it = ref.find(probe);
    ASSERT_EQ(got != nullptr, it != ref.end()) << "step " << step << " id " << probe;
    if (got != nullptr) {
      ASSERT_EQ(*got, it->second.first);
    }
    ASSERT_EQ(table.size(), ref.size());
  }
  for (const auto& [id, v] : ref) {
    const L7Protocol* got = table.Find(id);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(*got, v.first);
  }
  table.EraseClosedUpTo(now);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.Find(ref.begin()->first), nullptr);
}

}  // namespace
}  // namespace sonde::agent::protocols
