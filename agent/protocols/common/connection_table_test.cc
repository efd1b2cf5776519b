// ConnectionTable against a std::map reference under random opens, parks, closes and expiry.
#include "agent/protocols/common/connection_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

namespace sonde::agent::protocols {
namespace {

using common::v1::L7Protocol;
using Table = ConnectionTable<int>;

struct Ref {
  Table::State state;
  uint64_t ns;
  L7Protocol protocol;
  uint16_t resume;
  int* open;
};

void ExpectSame(const Table& table, const std::map<uint64_t, Ref>& ref, uint64_t id) {
  const Table::Entry* e = table.Find(id);
  auto it = ref.find(id);
  ASSERT_EQ(e != nullptr, it != ref.end()) << "id " << id;
  if (e == nullptr) return;
  ASSERT_EQ(e->flow_id, id);
  ASSERT_EQ(e->state, it->second.state) << "id " << id;
  if (e->state == Table::State::kOpen) {
    ASSERT_EQ(e->open, it->second.open);
  } else {
    ASSERT_EQ(e->ns, it->second.ns);
    ASSERT_EQ(e->protocol, it->second.protocol);
    ASSERT_EQ(e->resume, it->second.resume);
  }
}

// Ids span far more than the table (and two "workers" in the high bits), so probe runs wrap,
// entries are replaced in every state and the table grows and is rebuilt many times.
TEST(ConnectionTableTest, MatchesAMapUnderRandomOperations) {
  Table table;
  std::map<uint64_t, Ref> ref;
  int objects[16];
  std::mt19937_64 rng(11);
  uint64_t now = 0;
  auto random_id = [&rng] { return rng() % 5000 + (rng() % 2 == 0 ? 0 : (uint64_t{3} << 32)); };
  for (int step = 0; step < 200000; ++step) {
    const uint64_t id = random_id();
    ++now;
    const L7Protocol p =
        rng() % 2 == 0 ? common::v1::L7_PROTOCOL_HTTP1 : common::v1::L7_PROTOCOL_DNS;
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2: {  // data: open it unless open
        Table::Entry* e = table.FindOrSlot(id);
        if (e->state == Table::State::kEmpty) {
          ASSERT_EQ(ref.count(id), 0u);
        }
        if (e->state != Table::State::kOpen) {
          int* obj = &objects[rng() % 16];
          table.Open(e, id, obj);
          ref[id] = Ref{Table::State::kOpen, 0, {}, 0, obj};
        }
        break;
      }
      case 3: {  // park an open one
        Table::Entry* e = table.Find(id);
        if (e != nullptr && e->state == Table::State::kOpen) {
          const auto resume = static_cast<uint16_t>(1 + rng() % 100);
          table.Park(e, p, now, resume);
          ref[id] = Ref{Table::State::kDormant, now, p, resume, nullptr};
        }
        break;
      }
      case 4:
      case 5: {  // close an open or dormant one
        Table::Entry* e = table.Find(id);
        if (e != nullptr && e->state != Table::State::kClosed) {
          table.Close(e, p, now);
          ref[id] = Ref{Table::State::kClosed, now, p, 0, nullptr};
        }
        break;
      }
      default:
        if (step % 500 == 0) {
          const uint64_t idle = now > 3000 ? now - 3000 : 0;
          table.CloseDormantUpTo(idle, now);
          for (auto& [k, r] : ref) {
            if (r.state == Table::State::kDormant && r.ns <= idle)
              r = Ref{Table::State::kClosed, now, r.protocol, 0, nullptr};
          }
          const uint64_t limit = now > 6000 ? now - 6000 : 0;
          table.EraseClosedUpTo(limit);
          std::erase_if(ref, [&](const auto& kv) {
            return kv.second.state == Table::State::kClosed && kv.second.ns <= limit;
          });
        }
        break;
    }
    ExpectSame(table, ref, random_id());
    ExpectSame(table, ref, id);
    ASSERT_EQ(table.size(), ref.size());
    if (step % 1000 == 0) {
      size_t open = 0, dormant = 0;
      for (const auto& [k, r] : ref) {
        open += r.state == Table::State::kOpen ? 1 : 0;
        dormant += r.state == Table::State::kDormant ? 1 : 0;
      }
      ASSERT_EQ(table.open(), open);
      ASSERT_EQ(table.dormant(), dormant);
      ASSERT_LE(table.size() * 2, table.capacity());
      ASSERT_LE(table.capacity(), std::max<size_t>(64, 16 * table.size()));
    }
  }
  for (const auto& [id, r] : ref) ExpectSame(table, ref, id);
  // Everything closed and expired: the table shrinks back.
  table.CloseDormantUpTo(~0ULL, now);
  for (const auto& [id, r] : ref) {
    if (r.state == Table::State::kOpen) table.Close(table.Find(id), r.protocol, now);
  }
  table.EraseClosedUpTo(now);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.open(), 0u);
  EXPECT_EQ(table.dormant(), 0u);
  EXPECT_EQ(table.capacity(), 64u);
  EXPECT_EQ(table.Find(ref.begin()->first), nullptr);
}

// Sequential ids (the common case) far beyond the initial size: the table grows past the huge
// page threshold and every entry stays findable; expiry keeps open and dormant entries.
TEST(ConnectionTableTest, SequentialIdsGrowAndExpire) {
  Table table;
  int obj = 0;
  constexpr uint64_t kN = 300000;
  const uint64_t base = uint64_t{1} << 32;
  for (uint64_t i = 0; i < kN; ++i) {
    table.Open(table.FindOrSlot(base + i), base + i, &obj);
    if (i % 3 == 1) table.Park(table.Find(base + i), common::v1::L7_PROTOCOL_DNS, i, 7);
    if (i % 3 == 2) table.Close(table.Find(base + i), common::v1::L7_PROTOCOL_REDIS, i);
  }
  EXPECT_EQ(table.size(), kN);
  EXPECT_EQ(table.open(), kN / 3);
  EXPECT_EQ(table.dormant(), kN / 3);
  EXPECT_GE(table.capacity() * sizeof(Table::Entry), size_t{2} << 20);
  table.EraseClosedUpTo(kN);  // every closed one
  EXPECT_EQ(table.size(), 2 * kN / 3);
  for (uint64_t i = 0; i < kN; ++i) {
    const Table::Entry* e = table.Find(base + i);
    if (i % 3 == 2) {
      ASSERT_EQ(e, nullptr) << i;
      continue;
    }
    ASSERT_NE(e, nullptr) << i;
    if (i % 3 == 0) {
      ASSERT_EQ(e->state, Table::State::kOpen);
      ASSERT_EQ(e->open, &obj);
    } else {
      ASSERT_EQ(e->state, Table::State::kDormant);
      ASSERT_EQ(e->resume, 7);
      ASSERT_EQ(e->ns, i);
    }
  }
  // Resuming a dormant entry opens it in place.
  Table::Entry* e = table.FindOrSlot(base + 1);
  ASSERT_EQ(e->state, Table::State::kDormant);
  table.Open(e, base + 1, &obj);
  EXPECT_EQ(table.dormant(), kN / 3 - 1);
  EXPECT_EQ(table.open(), kN / 3 + 1);
  EXPECT_EQ(table.size(), 2 * kN / 3);
}

// Scattered ids landing inside long runs of sequential ones (two workers' flows) probe long,
// but the table does not grow without bound for them: at most 16 slots per entry.
TEST(ConnectionTableTest, ScatteredIdsAmongSequentialRunsKeepTheTableBounded) {
  Table table;
  int obj = 0;
  std::vector<uint64_t> ids;
  for (uint64_t i = 0; i < 1500; ++i) ids.push_back((uint64_t{1} << 48) + i);
  for (uint64_t i = 0; i < 1500; ++i) ids.push_back((uint64_t{2} << 48) + i);
  for (uint64_t i = 0; i < 1000; ++i) ids.push_back(i * 7919 + 100000);
  for (uint64_t id : ids) table.Open(table.FindOrSlot(id), id, &obj);
  EXPECT_EQ(table.size(), ids.size());
  EXPECT_LE(table.capacity(), 16 * ids.size());
  for (uint64_t id : ids) {
    const Table::Entry* e = table.Find(id);
    ASSERT_NE(e, nullptr) << id;
    ASSERT_EQ(e->open, &obj);
  }
}

}  // namespace
}  // namespace sonde::agent::protocols
