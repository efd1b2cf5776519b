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

TEST(ClosedProtocolsTest, DormantEntriesResumeCloseAndOutliveExpiry) {
  ClosedProtocols table;
  common::v1::L7Protocol p = common::v1::L7_PROTOCOL_UNKNOWN;
  uint64_t ns = 0;
  for (uint64_t id = 1; id <= 300; ++id) table.PutDormant(id, common::v1::L7_PROTOCOL_DNS, id * 10, 5);
  table.Put(1000, common::v1::L7_PROTOCOL_HTTP1, 5);
  EXPECT_EQ(table.dormant(), 300u);
  EXPECT_EQ(table.Dormant(7, &p, &ns), 5);
  EXPECT_EQ(p, common::v1::L7_PROTOCOL_DNS);
  EXPECT_EQ(ns, 70u);
  EXPECT_EQ(table.Dormant(1000, &p, &ns), 0);  // closed, not dormant
  EXPECT_EQ(table.Dormant(5000, &p, &ns), 0);  // absent
  table.EraseClosedUpTo(100000);               // drops the closed one only
  EXPECT_EQ(table.size(), 300u);
  EXPECT_EQ(table.Find(1000), nullptr);
  EXPECT_TRUE(table.CloseDormant(7, 99999));
  EXPECT_FALSE(table.CloseDormant(7, 5));     // already closed: left as it is
  EXPECT_FALSE(table.CloseDormant(5000, 5));  // absent
  EXPECT_EQ(table.Dormant(7, &p, &ns), 0);
  ASSERT_NE(table.Find(7), nullptr);
  EXPECT_EQ(table.dormant(), 299u);
  table.CloseDormantUpTo(1000, 200000);  // ids 1..100 were last active at or before 1000
  EXPECT_EQ(table.dormant(), 200u);
  table.EraseClosedUpTo(199999);  // 7 (closed at 99999) goes; closed at 200000: kept
  EXPECT_EQ(table.size(), 299u);
  table.EraseClosedUpTo(200000);  // 7 and 1..100 go; 101..300 stay dormant
  EXPECT_EQ(table.size(), 200u);
  EXPECT_EQ(table.Dormant(101, &p, &ns), 5);
  table.Erase(101);
  EXPECT_EQ(table.dormant(), 199u);
  table.Put(102, common::v1::L7_PROTOCOL_DNS, 1);  // replaces a dormant entry
  EXPECT_EQ(table.dormant(), 198u);
  EXPECT_EQ(table.size(), 199u);
}

}  // namespace
}  // namespace sonde::agent::protocols
