// SmartEncoding on a real ClickHouse (label `clickhouse`): two servers allocate at once, a third
// starting later reads the same ids, and the translator's id lookups find them.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "server/enrich/tag_dictionary.h"
#include "server/storage/clickhouse/testing/clickhouse_fixture.h"

namespace sonde::server::enrich {
namespace {

class TagDictionaryClickHouseTest : public storage::clickhouse::testing::ClickHouseTest {};

TEST_F(TagDictionaryClickHouseTest, ConcurrentServersAndRestart) {
  ClickHouseTagStore store_a(&clickhouse_client());
  ClickHouseTagStore store_b(&clickhouse_client());
  ASSERT_TRUE(store_a.EnsureSchema().ok());
  TagDictionaryOptions o;
  o.settle = std::chrono::milliseconds(300);
  o.id_bits = 5;  // 31 ids for 16 values: collisions certain
  TagDictionary a(&store_a, o, nullptr), b(&store_b, o, nullptr);
  std::vector<std::string> values;
  for (int i = 0; i < 12; ++i) values.push_back("pod-" + std::to_string(i));
  std::vector<std::string> values_b(values.rbegin(), values.rend());
  values.push_back("only-a-1");
  values.push_back("only-a-2");
  values_b.push_back("only-b-1");
  values_b.push_back("only-b-2");
  StatusOr<std::vector<uint32_t>> ra = Status(StatusCode::kInternal, "unset");
  StatusOr<std::vector<uint32_t>> rb = Status(StatusCode::kInternal, "unset");
  std::thread ta([&] { ra = a.Encode(TagDimension::kPod, values); });
  std::thread tb([&] { rb = b.Encode(TagDimension::kPod, values_b); });
  ta.join();
  tb.join();
  ASSERT_TRUE(ra.ok()) << ra.status().ToString();
  ASSERT_TRUE(rb.ok()) << rb.status().ToString();

  ClickHouseTagStore store_c(&clickhouse_client());
  TagDictionary c(&store_c, o, nullptr);  // a server started afterwards
  ASSERT_TRUE(c.Load().ok());
  std::set<uint32_t> ids;
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(c.Find(TagDimension::kPod, values[i]), (*ra)[i]) << values[i];
    ids.insert((*ra)[i]);
  }
  for (size_t i = 0; i < values_b.size(); ++i) {
    EXPECT_EQ(c.Find(TagDimension::kPod, values_b[i]), (*rb)[i]) << values_b[i];
    ids.insert((*rb)[i]);
  }
  EXPECT_EQ(ids.size(), 16u);

  // The query-side reader (smallest live value per id) resolves every id to its value.
  auto r = clickhouse_client().Query(
      "SELECT count() FROM (SELECT id, min(value) AS name FROM flow_tag.pod_map FINAL "
      "WHERE released = 0 GROUP BY id)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rows[0][0].get<uint64_t>(), 16u);
}

TEST_F(TagDictionaryClickHouseTest, MetadataRoundTrip) {
  ClickHouseTagStore store(&clickhouse_client());
  ASSERT_TRUE(store.EnsureSchema().ok());
  std::vector<PodMetadataRow> rows = {{1, 2, 3, "app.kubernetes.io/name", "it's", 1, false},
                                      {1, 2, 3, "app.kubernetes.io/name", "web", 2, false}};
  ASSERT_TRUE(store.InsertPodMetadata(false, rows).ok());
  auto r = clickhouse_client().Query("SELECT value FROM flow_tag.pod_k8s_label FINAL WHERE deleted = 0");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0][0].get<std::string>(), "web");
}

}  // namespace
}  // namespace sonde::server::enrich
