// SmartEncoding dictionary: stable ids, restarts, collisions, and several servers allocating at
// once against one store.
#include "server/enrich/tag_dictionary.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

namespace sonde::server::enrich {
namespace {

TagDictionaryOptions Fast(int id_bits = 32) {
  TagDictionaryOptions o;
  o.settle = std::chrono::milliseconds(5);
  o.id_bits = id_bits;
  return o;
}

TEST(TagDictionaryTest, EncodesDecodesAndKeepsIdsAcrossRestart) {
  MemoryTagStore store;
  metrics::Registry registry;
  uint32_t web = 0;
  {
    TagDictionary dict(&store, Fast(), &registry);
    ASSERT_TRUE(dict.Load().ok());
    auto ids = dict.Encode(TagDimension::kPod, std::vector<std::string>{"web-1", "", "db-0", "web-1"});
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    EXPECT_EQ((*ids)[1], 0u);
    EXPECT_NE((*ids)[0], 0u);
    EXPECT_EQ((*ids)[0], (*ids)[3]);
    EXPECT_NE((*ids)[0], (*ids)[2]);
    EXPECT_EQ(dict.Decode(TagDimension::kPod, (*ids)[2]), "db-0");
    // Ids are per dimension: the same string in another dimension is another dictionary.
    EXPECT_TRUE(dict.Encode(TagDimension::kService, "web-1").ok());
    EXPECT_EQ(dict.size(TagDimension::kPod), 2u);
    web = (*ids)[0];
    EXPECT_EQ(registry.CounterTotal("sonde_server_tag_ids_allocated_total"), 3u);
  }
  TagDictionary restarted(&store, Fast(), nullptr);
  ASSERT_TRUE(restarted.Load().ok());
  EXPECT_EQ(restarted.Find(TagDimension::kPod, "web-1"), web);
  EXPECT_EQ(restarted.Decode(TagDimension::kPod, web), "web-1");
  // A deterministic first probe: an empty store gives the same id on any server.
  MemoryTagStore other_store;
  TagDictionary fresh(&other_store, Fast(), nullptr);
  EXPECT_EQ(fresh.Encode(TagDimension::kPod, "web-1").value(), web);
}

TEST(TagDictionaryTest, GenerationMovesOnlyWhenACachedValueChangesId) {
  MemoryTagStore store;
  TagDictionary dict(&store, Fast(), nullptr);
  ASSERT_TRUE(dict.Load().ok());
  const uint32_t web = dict.Encode(TagDimension::kPod, "web-1").value();
  ASSERT_TRUE(dict.Encode(TagDimension::kPod, "db-0").ok());
  const uint64_t g0 = dict.generation();
  ASSERT_TRUE(dict.Load().ok());  // the same claims again: nothing moves
  EXPECT_EQ(dict.generation(), g0);
  // Another server's claim of a second id for web-1 (a settled collision seen late): the value's
  // cached id may change, and the generation says so.
  const uint32_t other = web == 1 ? 2 : web - 1;
  ASSERT_TRUE(store.InsertClaims(TagDimension::kPod, std::vector<TagClaim>{{other, "web-1", 1, false}}).ok());
  ASSERT_TRUE(dict.Load().ok());
  EXPECT_EQ(dict.generation() != g0, dict.Find(TagDimension::kPod, "web-1") != web);
  // A new value adopted from the store is not a change of a cached one.
  const uint64_t g1 = dict.generation();
  ASSERT_TRUE(store.InsertClaims(TagDimension::kPod, std::vector<TagClaim>{{12345, "new-pod", 1, false}}).ok());
  ASSERT_TRUE(dict.Load().ok());
  EXPECT_EQ(dict.generation(), g1);
  EXPECT_EQ(dict.Find(TagDimension::kPod, "new-pod"), 12345u);
}

TEST(TagDictionaryTest, CollisionsProbeToFreeIds) {
  MemoryTagStore store;
  metrics::Registry registry;
  TagDictionary dict(&store, Fast(/*id_bits=*/3), &registry);  // ids 1..7
  std::vector<std::string> values = {"a", "b", "c", "d", "e", "f"};
  auto ids = dict.Encode(TagDimension::kHost, values);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  std::set<uint32_t> unique(ids->begin(), ids->end());
  EXPECT_EQ(unique.size(), values.size());
  for (uint32_t id : *ids) {
    EXPECT_GE(id, 1u);
    EXPECT_LE(id, 7u);
  }
  EXPECT_GT(registry.CounterTotal("sonde_server_tag_id_collisions_total"), 0u);
  // A full id space is an error, not a hang or a duplicate.
  auto full = dict.Encode(TagDimension::kHost, std::vector<std::string>{"g", "h"});
  EXPECT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted);
}

TEST(TagDictionaryTest, ConcurrentServersAgree) {
  for (int trial = 0; trial < 5; ++trial) {
    SCOPED_TRACE(trial);
    MemoryTagStore store;
    TagDictionary a(&store, Fast(/*id_bits=*/5), nullptr);  // 31 ids for 20 values
    TagDictionary b(&store, Fast(/*id_bits=*/5), nullptr);
    std::vector<std::string> shared, only_a, only_b;
    for (int i = 0; i < 10; ++i) shared.push_back("s" + std::to_string(i + trial * 100));
    for (int i = 0; i < 5; ++i) only_a.push_back("a" + std::to_string(i + trial * 100));
    for (int i = 0; i < 5; ++i) only_b.push_back("b" + std::to_string(i + trial * 100));
    auto run = [](TagDictionary* d, std::vector<std::string> own, std::vector<std::string> common,
                  bool reverse, Status* st) {
      if (reverse) std::reverse(common.begin(), common.end());
      for (size_t i = 0; i < common.size(); i += 3) {  // several rounds, interleaving
        std::vector<std::string> batch(common.begin() + i,
                                       common.begin() + std::min(common.size(), i + 3));
        if (i / 3 < own.size()) batch.push_back(own[i / 3]);
        auto r = d->Encode(TagDimension::kPod, batch);
        if (!r.ok()) *st = r.status();
      }
      auto r = d->Encode(TagDimension::kPod, own);
      if (!r.ok()) *st = r.status();
    };
    Status sa, sb;
    std::thread ta(run, &a, only_a, shared, false, &sa);
    std::thread tb(run, &b, only_b, shared, true, &sb);
    ta.join();
    tb.join();
    ASSERT_TRUE(sa.ok()) << sa.ToString();
    ASSERT_TRUE(sb.ok()) << sb.ToString();
    TagDictionary reader(&store, Fast(5), nullptr);
    ASSERT_TRUE(reader.Load().ok());
    std::set<uint32_t> ids;
    for (const auto& v : shared) {
      auto ia = a.Find(TagDimension::kPod, v), ib = b.Find(TagDimension::kPod, v);
      ASSERT_TRUE(ia && ib) << v;
      EXPECT_EQ(*ia, *ib) << v;
      EXPECT_EQ(reader.Find(TagDimension::kPod, v), ia) << v;
      ids.insert(*ia);
    }
    for (const auto& v : only_a) {
      EXPECT_EQ(reader.Find(TagDimension::kPod, v), a.Find(TagDimension::kPod, v)) << v;
      ids.insert(*a.Find(TagDimension::kPod, v));
    }
    for (const auto& v : only_b) {
      EXPECT_EQ(reader.Find(TagDimension::kPod, v), b.Find(TagDimension::kPod, v)) << v;
      ids.insert(*b.Find(TagDimension::kPod, v));
    }
    EXPECT_EQ(ids.size(), 20u) << "two values share an id";
  }
}

TEST(TagDictionaryTest, PodMetadataKeepsLatestVersion) {
  MemoryTagStore store;
  std::vector<PodMetadataRow> rows = {{1, 2, 3, "app", "old", 5, false}, {1, 2, 3, "app", "new", 7, false},
                                      {1, 2, 3, "app", "stale", 6, false}, {1, 2, 3, "tier", "x", 1, false},
                                      {1, 2, 3, "tier", "", 2, true}};
  ASSERT_TRUE(store.InsertPodMetadata(false, rows).ok());
  EXPECT_EQ(store.PodMetadata(false), (std::map<std::string, std::string>{{"1/2/3/app", "new"}}));
}

}  // namespace
}  // namespace sonde::server::enrich
