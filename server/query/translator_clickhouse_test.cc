// Runs translated queries on a real ClickHouse (label `clickhouse`): every golden case must
// execute, and queries over virtual columns (ip, tags, labels) must return the right rows.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "schema/tables.h"
#include "server/enrich/tag_schema.h"
#include "server/query/translator.h"
#include "server/storage/clickhouse/testing/clickhouse_fixture.h"

namespace sonde::server::query {
namespace {

namespace fs = std::filesystem;
using storage::clickhouse::testing::ClickHouseTest;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TranslatorClickHouseTest : public ClickHouseTest {
 protected:
  void SetUp() override {
    ClickHouseTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    for (auto sql : schema::CreateDatabaseSql()) Exec(std::string(sql));
    for (const auto& t : schema::AllTables()) Exec(std::string(t.create_sql));
    for (const auto& sql : enrich::TagSchemaDdl()) Exec(sql);

    // Dictionaries. pod id 7 had a colliding claim ("zzz-loser") that lost: it sorts after
    // "db-0" so the min rule picks "db-0" even before the release is merged; id 9 has a
    // released claim only.
    Exec("INSERT INTO flow_tag.pod_map VALUES (5, 'web-1', 1, 0), (6, 'web-2', 1, 0), "
         "(7, 'db-0', 1, 0), (7, 'zzz-loser', 2, 0), (7, 'zzz-loser', 3, 1), (9, 'gone', 1, 1)");
    Exec("INSERT INTO flow_tag.pod_ns_map VALUES (1, 'default', 1, 0), (2, 'kube-system', 1, 0)");
    Exec("INSERT INTO flow_tag.pod_cluster_map VALUES (3, 'prod', 1, 0)");
    Exec("INSERT INTO flow_tag.service_map VALUES (11, 'web', 1, 0), (12, 'db', 1, 0)");
    Exec("INSERT INTO flow_tag.region_map VALUES (21, 'eu-1', 1, 0)");
    // Labels: stored once per pod; the newer version of web-2's app label wins.
    Exec("INSERT INTO flow_tag.pod_k8s_label VALUES (3, 1, 5, 'app', 'web', 1, 0), "
         "(3, 1, 6, 'app', 'old', 1, 0), (3, 1, 6, 'app', 'web', 2, 0), "
         "(3, 1, 7, 'app', 'db', 1, 0), (3, 1, 7, 'app.kubernetes.io/name', 'postgres', 1, 0)");
    // Tag sets (enrich::TagSetValue: ids in dimension order region, zone, vpc, subnet, host,
    // pod_cluster, pod_node, pod_ns, pod, service, workload, process_name): 101 = region eu-1;
    // 201/202/203 = pods web-1/web-2/db-0 with their cluster, namespace and service. 204 has a
    // losing claim that sorts after the winner (the min rule picks web-2's set).
    Exec("INSERT INTO flow_tag.tag_set_map VALUES (101, '21,0,0,0,0,0,0,0,0,0,0,0', 1, 0), "
         "(201, '0,0,0,0,0,3,0,1,5,11,0,0', 1, 0), (202, '0,0,0,0,0,3,0,1,6,11,0,0', 1, 0), "
         "(203, '0,0,0,0,0,3,0,1,7,12,0,0', 1, 0), (204, '0,0,0,0,0,3,0,1,6,11,0,0', 1, 0), "
         "(204, '9,9,9,9,9,9,9,9,9,9,9,9', 2, 0)");
    // Requests: client (side 0) untagged or tagged by region; server pods web-1 x3, web-2 x2
    // (one through tag set 204), db-0 x1; one IPv6 request to an untagged server.
    Exec("INSERT INTO flow_log.l7_request_log (time, is_ipv4, ip4_0, ip4_1, ip6_0, ip6_1, "
         "server_port, l7_protocol, response_status, response_duration, endpoint, tag_set_id_0, "
         "tag_set_id_1) VALUES "
         "(1700000000, 1, 167772161, 167772417, toFixedString('', 16), toFixedString('', 16), 80, 'HTTP1', 'ok', 100, '/a', 101, 201),"
         "(1700000010, 1, 167772161, 167772417, toFixedString('', 16), toFixedString('', 16), 80, 'HTTP1', 'ok', 200, '/a', 101, 201),"
         "(1700000070, 1, 167772162, 167772417, toFixedString('', 16), toFixedString('', 16), 80, 'HTTP1', 'server_error', 300, '/b', 0, 201),"
         "(1700000075, 1, 167772162, 167772418, toFixedString('', 16), toFixedString('', 16), 80, 'HTTP1', 'ok', 400, '/b', 0, 202),"
         "(1700000080, 1, 167772162, 167772418, toFixedString('', 16), toFixedString('', 16), 80, 'HTTP1', 'timeout', 500, '/b', 0, 204),"
         "(1700000090, 1, 167772163, 167772419, toFixedString('', 16), toFixedString('', 16), 5432, 'PostgreSQL', 'ok', 600, 'SELECT', 0, 203),"
         "(1700000100, 0, 0, 0, IPv6StringToNum('2001:db8::1'), IPv6StringToNum('2001:db8::2'), 443, 'HTTP2', 'ok', 700, '/c', 0, 0)");
  }

  void Exec(const std::string& sql) {
    auto r = clickhouse_client().Execute(sql);
    ASSERT_TRUE(r.ok()) << sql << "\n" << r.status().ToString();
  }

  // Translates and runs; rows as compact JSON text, one string per row.
  std::vector<std::string> Run(std::string_view sql, std::string_view db = "flow_log") {
    auto t = Translate(db, sql, catalog_);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (!t.ok()) return {};
    auto r = clickhouse_client().Query(t->sql, {{"readonly", "2"}});
    EXPECT_TRUE(r.ok()) << t->sql << "\n" << r.status().ToString();
    if (!r.ok()) return {};
    EXPECT_EQ(r->columns.size(), t->columns.size());
    std::vector<std::string> rows;
    for (const auto& row : r->rows) rows.push_back(row.dump());
    return rows;
  }

  using Rows = std::vector<std::string>;
  Catalog catalog_ = Catalog::FromSchema();
};

TEST_F(TranslatorClickHouseTest, EveryGoldenCaseRuns) {
  const char* src = std::getenv("SONDE_SOURCE_DIR");
  const fs::path dir = fs::path(src ? src : ".") / "server/query/testdata";
  int ran = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".sql") continue;
    const std::string text = ReadFile(e.path());
    const std::string db = text.substr(7, text.find('\n') - 7);
    auto t = Translate(db, text, catalog_);
    if (!t.ok()) continue;  // error cases are golden too, but have nothing to run
    SCOPED_TRACE(e.path().filename().string());
    auto r = clickhouse_client().Query(t->sql, {{"readonly", "2"}});
    EXPECT_TRUE(r.ok()) << t->sql << "\n" << r.status().ToString();
    ++ran;
  }
  EXPECT_GE(ran, 18);
}

TEST_F(TranslatorClickHouseTest, IpColumnsRenderBothFamilies) {
  EXPECT_EQ(Run("SELECT ip_0, ip_1 FROM l7_request_log WHERE server_port IN (443, 5432) ORDER BY time"),
            (Rows{R"(["10.0.0.3","10.0.1.3"])", R"(["2001:db8::1","2001:db8::2"])"}));
  EXPECT_EQ(Run("SELECT count() FROM l7_request_log WHERE ip_1 = '10.0.1.1'"), (Rows{"[3]"}));
}

TEST_F(TranslatorClickHouseTest, TagFiltersUseDictionaryIds) {
  EXPECT_EQ(Run("SELECT count() FROM l7_request_log WHERE pod_1 = 'web-1'"), (Rows{"[3]"}));
  EXPECT_EQ(Run("SELECT count() FROM l7_request_log WHERE pod_1 IN ('web-1', 'db-0')"), (Rows{"[4]"}));
  EXPECT_EQ(Run("SELECT count() FROM l7_request_log WHERE pod_1 LIKE 'web-%' AND region_0 = 'eu-1'"),
            (Rows{"[2]"}));
  // The losing claim of id 7 does not match, the released one neither.
  EXPECT_EQ(Run("SELECT count() FROM l7_request_log WHERE pod_1 = 'zzz-loser' OR pod_1 = 'gone'"),
            (Rows{"[0]"}));
  EXPECT_EQ(Run("SELECT count() FROM l7_request_log WHERE pod_1 != 'web-1'"), (Rows{"[4]"}));
  EXPECT_EQ(Run("SELECT count() FROM l7_request_log WHERE pod_1 = ''"), (Rows{"[1]"}));
}

TEST_F(TranslatorClickHouseTest, TagsGroupAndOrderByName) {
  EXPECT_EQ(Run("SELECT pod_1, service_1, count() AS n, max(response_duration) AS worst "
                "FROM l7_request_log GROUP BY pod_1, service_1 ORDER BY pod_1"),
            (Rows{R"(["","",1,700])", R"(["db-0","db",1,600])", R"(["web-1","web",3,300])",
                  R"(["web-2","web",2,500])"}));
  // A tag in a non-literal WHERE predicate is evaluated after the join.
  EXPECT_EQ(Run("SELECT count() FROM l7_request_log WHERE upper(pod_1) = 'WEB-2'"), (Rows{"[2]"}));
  // Both sides in one query: one join per side.
  EXPECT_EQ(Run("SELECT region_0, service_1, count() AS n FROM l7_request_log "
                "WHERE service_1 != '' GROUP BY region_0, service_1 ORDER BY region_0, service_1"),
            (Rows{R"(["","db",1])", R"(["","web",3])", R"(["eu-1","web",2])"}));
  // Grouped by tags only: aggregated on the stored rows first (-State), joined per group, then
  // merged (-Merge); same answers as aggregating the joined rows.
  EXPECT_EQ(Run("SELECT service_1, count() AS n, countIf(response_status = 'server_error') AS errors, "
                "max(response_duration) AS worst, avg(response_duration) AS mean, count(DISTINCT endpoint) "
                "AS eps, percentile(response_duration, 50) AS p50 FROM l7_request_log GROUP BY service_1 "
                "HAVING n >= 1 ORDER BY n DESC, service_1"),
            (Rows{R"(["web",5,1,500,300,2,300])", R"(["",1,0,700,700,1,700])", R"(["db",1,0,600,600,1,600])"}));
  EXPECT_EQ(Run("SELECT time(time, 60) AS t, service_1, count() AS n FROM l7_request_log "
                "GROUP BY t, service_1 ORDER BY t, service_1"),
            (Rows{R"([1699999980,"web",2])", R"([1700000040,"db",1])", R"([1700000040,"web",3])",
                  R"([1700000100,"",1])"}));
  // A tag inside an aggregate needs the joined rows (no pushdown).
  EXPECT_EQ(Run("SELECT service_1, count(DISTINCT pod_1) AS pods FROM l7_request_log GROUP BY service_1 "
                "ORDER BY service_1"),
            (Rows{R"(["",1])", R"(["db",1])", R"(["web",2])"}));
  // Dimension ids come out of the tag set too.
  EXPECT_EQ(Run("SELECT pod_id_1, pod_ns_id_1, count() AS n FROM l7_request_log GROUP BY pod_id_1, pod_ns_id_1 "
                "ORDER BY pod_id_1"),
            (Rows{R"([0,0,1])", R"([5,1,3])", R"([6,1,2])", R"([7,1,1])"}));
}

TEST_F(TranslatorClickHouseTest, KubernetesLabelsJoinAtQueryTime) {
  EXPECT_EQ(Run("SELECT k8s.label.app_1 AS app, count() AS n FROM l7_request_log "
                "GROUP BY app ORDER BY app"),
            (Rows{R"(["",1])", R"(["db",1])", R"(["web",5])"}));
  EXPECT_EQ(Run("SELECT count() FROM l7_request_log WHERE k8s.label.app_1 = 'web'"), (Rows{"[5]"}));
  EXPECT_EQ(Run("SELECT count() FROM l7_request_log "
                "WHERE `k8s.label.app.kubernetes.io/name_1` = 'postgres'"),
            (Rows{"[1]"}));
}

TEST_F(TranslatorClickHouseTest, AggregatesPercentilesAndTimeBuckets) {
  EXPECT_EQ(Run("SELECT time(time, 60) AS t, count() AS n FROM l7_request_log GROUP BY t ORDER BY t"),
            (Rows{R"([1699999980,2])", R"([1700000040,4])", R"([1700000100,1])"}));
  EXPECT_EQ(Run("SELECT percentile(response_duration, 50), max(response_duration), "
                "count(DISTINCT endpoint) FROM l7_request_log"),
            (Rows{R"([400,700,4])"}));
  EXPECT_EQ(Run("SELECT count() FROM l7_request_log WHERE NOT (response_status = 'ok') "
                "AND response_duration BETWEEN 300 AND 500"),
            (Rows{"[2]"}));
}

TEST_F(TranslatorClickHouseTest, DiscoveryRuns) {
  EXPECT_EQ(Run("SHOW TABLES"), (Rows{R"(["l4_flow_log"])", R"(["l7_request_log"])"}));
  const Rows desc = Run("DESCRIBE l7_request_log");
  ASSERT_FALSE(desc.empty());
  EXPECT_EQ(desc.front().substr(0, 19), R"(["time","DateTime",)");
}

}  // namespace
}  // namespace sonde::server::query
