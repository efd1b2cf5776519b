// FlowTable: insert/find/erase under heavy collisions (backward-shift erase must keep every
// probe chain intact), slab reuse, the capacity bound and key canonicalisation.
#include "agent/flow/flow_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

namespace sonde::agent::flow {
namespace {

struct Value {
  FlowKey key;
  uint64_t payload = 0;
};

FlowKey KeyN(uint32_t n) {
  net::FiveTuple t;
  t.src_ip = net::IpAddress::V4(0x0A000000u + n);
  t.dst_ip = net::IpAddress::V4(0x0A0000FFu);
  t.src_port = static_cast<uint16_t>(n);
  t.dst_port = 80;
  return FlowKey::Of(t, nullptr);
}

TEST(FlowKeyTest, BothDirectionsGiveOneKey) {
  net::FiveTuple t{net::IpAddress::V4(0x0A000002u), net::IpAddress::V4(0x0A000001u), 40000, 80,
                   net::IpProtocol::kTcp};
  bool fwd = false, rev = false;
  FlowKey a = FlowKey::Of(t, &fwd);
  FlowKey b = FlowKey::Of(t.Reversed(), &rev);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.Hash(), b.Hash());
  EXPECT_NE(fwd, rev);
  t.protocol = net::IpProtocol::kUdp;
  EXPECT_FALSE(FlowKey::Of(t, nullptr) == a);
}

TEST(FlowTableTest, RandomOperationsMatchAReferenceMap) {
  FlowTable<Value> table(100000);
  std::map<uint32_t, uint64_t> ref;
  std::mt19937 rng(7);
  // Hash collisions on purpose: only 4 distinct hashes, so chains are long and erase shifts a lot.
  auto hash_of = [](uint32_t n) { return (KeyN(n).Hash() & ~uint64_t{3}) | (n & 3); };
  auto collide = [](uint32_t n) { return uint64_t{n & 3} * 0x100000001ull; };
  for (int round = 0; round < 2; ++round) {
    ref.clear();
    FlowTable<Value> t(100000);
    auto h = [&](uint32_t n) { return round == 0 ? hash_of(n) : collide(n); };
    for (int i = 0; i < 20000; ++i) {
      uint32_t n = rng() % 3000;
      Value* v = t.Find(KeyN(n), h(n));
      ASSERT_EQ(v != nullptr, ref.count(n) == 1) << n;
      if (v != nullptr && rng() % 2 == 0) {
        EXPECT_EQ(v->payload, ref[n]);
        uint32_t index = 0;
        // The table does not store indices in values; find it by walking the slab.
        for (uint32_t k = 0;; ++k) {
          if (t.At(k) == v) {
            index = k;
            break;
          }
        }
        t.Erase(index);
        ref.erase(n);
      } else if (v == nullptr) {
        Value* nv = t.Insert(KeyN(n), h(n));
        ASSERT_NE(nv, nullptr);
        nv->payload = rng();
        ref[n] = nv->payload;
      }
      ASSERT_EQ(t.size(), ref.size());
    }
    for (const auto& [n, payload] : ref) {
      Value* v = t.Find(KeyN(n), h(n));
      ASSERT_NE(v, nullptr);
      EXPECT_EQ(v->payload, payload);
    }
  }
}

TEST(FlowTableTest, BoundedAndSlotsAreReused) {
  FlowTable<Value> t(3);
  uint32_t idx[3];
  for (uint32_t n = 0; n < 3; ++n) ASSERT_NE(t.Insert(KeyN(n), KeyN(n).Hash(), &idx[n]), nullptr);
  EXPECT_EQ(t.Insert(KeyN(9), KeyN(9).Hash()), nullptr);
  t.Erase(idx[1]);
  EXPECT_EQ(t.Find(KeyN(1), KeyN(1).Hash()), nullptr);
  uint32_t again = 0;
  Value* v = t.Insert(KeyN(9), KeyN(9).Hash(), &again);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(again, idx[1]);
  EXPECT_EQ(v->payload, 0u);  // reset on erase
  int live = 0;
  t.ForEach([&](Value&) { ++live; });
  EXPECT_EQ(live, 3);
}

TEST(FlowTableTest, ForEachSlabEntryWalksHandedOutPositionsInOrder) {
  FlowTable<Value> t(16);
  uint32_t idx[5];
  for (uint32_t n = 0; n < 5; ++n) {
    Value* v = t.Insert(KeyN(n), KeyN(n).Hash(), &idx[n]);
    ASSERT_NE(v, nullptr);
    v->payload = 100 + n;
  }
  t.Erase(idx[3]);
  std::vector<uint32_t> seen;
  std::vector<uint64_t> payloads;
  t.ForEachSlabEntry([&](uint32_t i, Value& v) {
    seen.push_back(i);
    payloads.push_back(v.payload);
  });
  std::vector<uint32_t> want_idx(idx, idx + 5);
  std::sort(want_idx.begin(), want_idx.end());
  EXPECT_EQ(seen, want_idx);  // erased positions too, ascending
  ASSERT_EQ(payloads.size(), 5u);
  EXPECT_EQ(payloads[idx[3]], 0u);  // erased: default value
  EXPECT_EQ(payloads[idx[4]], 104u);
}

// Slab values are built as they are handed out, not a chunk at a time, and every value built
// is destroyed with the table (erase resets a value in place).
struct Counted {
  static inline int constructed = 0;
  static inline int destroyed = 0;
  FlowKey key;
  Counted() { ++constructed; }
  Counted(const Counted&) = default;
  Counted& operator=(const Counted&) = default;
  ~Counted() { ++destroyed; }
};

TEST(FlowTableTest, ValuesAreBuiltWhenHandedOutAndDestroyedWithTheTable) {
  Counted::constructed = Counted::destroyed = 0;
  {
    FlowTable<Counted> t(100000);
    uint32_t idx[3];
    for (uint32_t n = 0; n < 3; ++n) ASSERT_NE(t.Insert(KeyN(n), KeyN(n).Hash(), &idx[n]), nullptr);
    EXPECT_EQ(Counted::constructed, 3);
    EXPECT_EQ(Counted::destroyed, 0);
    t.Erase(idx[1]);  // resets in place: one temporary built and destroyed
    EXPECT_EQ(Counted::constructed - Counted::destroyed, 3);
    ASSERT_NE(t.Insert(KeyN(7), KeyN(7).Hash()), nullptr);  // reuses the erased position
    EXPECT_EQ(Counted::constructed - Counted::destroyed, 3);
    EXPECT_NE(t.Find(KeyN(7), KeyN(7).Hash()), nullptr);
    EXPECT_EQ(t.Find(KeyN(1), KeyN(1).Hash()), nullptr);
  }
  EXPECT_EQ(Counted::constructed, Counted::destroyed);
}

TEST(FlowTableTest, ClearEmptiesTheTableAndItFillsAgain) {
  Counted::constructed = Counted::destroyed = 0;
  FlowTable<Counted> t(1000);
  for (uint32_t n = 0; n < 300; ++n) ASSERT_NE(t.Insert(KeyN(n), KeyN(n).Hash()), nullptr);
  t.Clear();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(Counted::constructed, Counted::destroyed);
  for (uint32_t n = 0; n < 300; ++n) EXPECT_EQ(t.Find(KeyN(n), KeyN(n).Hash()), nullptr);
  int walked = 0;
  t.ForEachSlabEntry([&](uint32_t, Counted&) { ++walked; });
  EXPECT_EQ(walked, 0);
  for (uint32_t n = 100; n < 1100; ++n) ASSERT_NE(t.Insert(KeyN(n), KeyN(n).Hash()), nullptr) << n;
  EXPECT_EQ(t.Insert(KeyN(5000), KeyN(5000).Hash()), nullptr);  // still bounded
  for (uint32_t n = 100; n < 1100; ++n) ASSERT_NE(t.Find(KeyN(n), KeyN(n).Hash()), nullptr) << n;
}

}  // namespace
}  // namespace sonde::agent::flow
