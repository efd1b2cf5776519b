// ClickHouseStorage against a real ClickHouse: schema, routing, values read back, retention.
#include "server/storage/clickhouse/clickhouse_storage.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "server/storage/clickhouse/testing/clickhouse_fixture.h"
#include "server/storage/record_sides.h"

namespace sonde::server::storage::clickhouse {
namespace {

using StorageTest = testing::ClickHouseTest;

// Runs a test with rows encoded from the parsed records (false) and from their wire bytes, as
// the spool hands batches over (true): both must store the same values.
class StorageEncodingTest : public testing::ClickHouseTest, public ::testing::WithParamInterface<bool> {
 protected:
  void MaybeSetWire(std::vector<AgentBatch>* batches) {
    if (!GetParam()) return;
    for (auto& b : *batches) {
      // As the spool hands them over: the bytes, and only the ProcessInfo records parsed.
      b.wire = b.records.SerializeAsString();
      auto processes = b.records.processes();
      b.records.Clear();
      *b.records.mutable_processes() = processes;
    }
  }
};
INSTANTIATE_TEST_SUITE_P(FromMessagesAndWire, StorageEncodingTest, ::testing::Bool());

QueryResult MustQuery(const ClickHouseClient& c, const std::string& sql) {
  auto r = c.Query(sql);
  EXPECT_TRUE(r.ok()) << sql << ": " << r.status().ToString();
  return r.ok() ? *r : QueryResult{};
}

TEST_P(StorageEncodingTest, RoundTripsEveryRecordType) {
  metrics::Registry registry;
  ClickHouseStorage storage(&clickhouse_client(), &registry);
  ASSERT_TRUE(storage.ApplySchema().ok());
  ASSERT_TRUE(storage.ApplySchema().ok()) << "idempotent";

  std::vector<AgentBatch> batches(2);
  batches[0].agent_id = 7;
  batches[1].agent_id = 9;
  auto* l7 = batches[0].records.add_l7_request_logs();
  l7->set_time(1700000000);
  l7->set_is_ipv4(1);
  l7->set_ip4_0(0xC6120001);
  l7->set_ip4_1(0xC6120002);
  l7->set_server_port(443);
  l7->set_l7_protocol(common::v1::L7_PROTOCOL_HTTP2);
  l7->set_response_status(common::v1::RESPONSE_STATUS_SERVER_ERROR);
  l7->set_request_resource("/api/\xe2\x9c\x93?q='x'");
  l7->set_response_code(503);
  l7->set_request_length(-1);
  auto* l4 = batches[1].records.add_l4_flow_logs();
  l4->set_time(1700000001);
  l4->set_is_ipv4(0);
  l4->set_ip6_0(std::string("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16));
  l4->set_bytes_0(1ull << 40);
  l4->set_close_type(common::v1::CLOSE_TYPE_SERVER_RST);
  for (uint32_t g : {1u, 60u, 60u, 5u}) {  // 5 s has no table: dropped and counted
    auto* nm = batches[1].records.add_network_metrics();
    nm->set_time(1700000040);
    nm->set_granularity_s(g);
    nm->set_packets_0(g);
    auto* am = batches[0].records.add_application_metrics();
    am->set_time(1700000040);
    am->set_granularity_s(g);
    am->set_requests(g * 10);
  }
  batches[0].records.add_processes()->set_pid(1);
  MaybeSetWire(&batches);

  WriteProgress progress;
  Status s = storage.Write(batches, &progress);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(progress.size(), 6u);

  const auto& c = clickhouse_client();
  auto r = MustQuery(c, "SELECT agent_id, IPv4NumToString(ip4_0), server_port, l7_protocol, response_status, "
                        "request_resource, response_code, request_length, toUnixTimestamp(time) "
                        "FROM flow_log.l7_request_log");
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0], 7);
  EXPECT_EQ(r.rows[0][1], "198.18.0.1");
  EXPECT_EQ(r.rows[0][2], 443);
  EXPECT_EQ(r.rows[0][3], "HTTP2");
  EXPECT_EQ(r.rows[0][4], "server_error");
  EXPECT_EQ(r.rows[0][5], "/api/\xe2\x9c\x93?q='x'");
  EXPECT_EQ(r.rows[0][6], 503);
  EXPECT_EQ(r.rows[0][7], -1);
  EXPECT_EQ(r.rows[0][8], 1700000000);

  r = MustQuery(c, "SELECT agent_id, IPv6NumToString(ip6_0), bytes_0, close_type FROM flow_log.l4_flow_log");
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0], 9);
  EXPECT_EQ(r.rows[0][1], "2001:db8::1");
  EXPECT_EQ(r.rows[0][2], 1ull << 40);
  EXPECT_EQ(r.rows[0][3], "server_rst");

  EXPECT_EQ(MustQuery(c, "SELECT sum(packets_0), count() FROM flow_metrics.network_1s").rows[0],
            nlohmann::json::parse("[1, 1]"));
  EXPECT_EQ(MustQuery(c, "SELECT sum(packets_0), count() FROM flow_metrics.network_1m").rows[0],
            nlohmann::json::parse("[120, 2]"));
  EXPECT_EQ(MustQuery(c, "SELECT sum(requests) FROM flow_metrics.application_1m").rows[0][0], 1200);
  EXPECT_EQ(MustQuery(c, "SELECT sum(requests) FROM flow_metrics.application_1s").rows[0][0], 10);

  EXPECT_EQ(registry.CounterTotal("sonde_server_records_written_total"), 8u);
  EXPECT_EQ(registry.CounterTotal("sonde_server_records_dropped_total"), 2u);
  EXPECT_EQ(registry.CounterTotal("sonde_server_records_unstored_total"), 1u);
  EXPECT_NE(registry.RenderPrometheus().find("sonde_server_clickhouse_write_seconds_count"), std::string::npos);

  // A retry with the same progress writes nothing twice.
  ASSERT_TRUE(storage.Write(batches, &progress).ok());
  EXPECT_EQ(MustQuery(c, "SELECT count() FROM flow_log.l7_request_log").rows[0][0], 1);
}

// Two server-side UInt32 columns every record table has (tag columns, whatever the schema names
// them), so the test follows the schema's tag layout.
std::vector<std::string> TwoTagColumns() {
  std::vector<std::string> out;
  const schema::Table* l7 = schema::FindTable("flow_log", "l7_request_log");
  for (const auto& c : l7->columns) {
    if (!c.server_side || c.type != schema::ColumnType::kUInt32 || c.name == "agent_id") continue;
    bool everywhere = true;
    for (const auto& [db, name] : {std::pair{"flow_log", "l4_flow_log"}, std::pair{"flow_metrics", "network_1s"},
                                   std::pair{"flow_metrics", "application_1m"}}) {
      bool has = false;
      for (const auto& o : schema::FindTable(db, name)->columns) has |= o.name == c.name;
      everywhere &= has;
    }
    if (everywhere && out.size() < 2) out.emplace_back(c.name);
  }
  return out;
}

// Tags each record with (batch agent id * 1000 + record index) for the first column and 1 for the
// second. Counts records through ExtractSides, as real taggers do.
class CountingTagger : public RecordTagger {
 public:
  const std::vector<std::string>& Columns() const override { return columns_; }
  Status Tag(const AgentBatch& batch, std::vector<uint32_t>* ids) override {
    std::vector<RecordSide> sides;
    SONDE_RETURN_IF_ERROR(ExtractSides(batch, &sides));
    processes += static_cast<uint32_t>(batch.records.processes_size());
    for (size_t i = 0; i < sides.size() / 2; ++i) {
      ids->push_back(batch.agent_id * 1000 + static_cast<uint32_t>(i));
      ids->push_back(1);
    }
    return fail ? UnavailableError("dictionary down") : Status::Ok();
  }
  // Storage hands over the sides it read while encoding: they must be ExtractSides' exactly.
  Status TagSides(const AgentBatch& batch, std::span<const RecordSide> sides, std::vector<uint32_t>* ids) override {
    std::vector<RecordSide> want;
    SONDE_RETURN_IF_ERROR(ExtractSides(batch, &want));
    bool same = want.size() == sides.size();
    for (size_t i = 0; same && i < want.size(); ++i) {
      same = want[i].ip == sides[i].ip && want[i].time_s == sides[i].time_s && want[i].pid == sides[i].pid;
    }
    if (!same) ++sides_mismatches;
    ++tag_sides_calls;
    return Tag(batch, ids);
  }
  std::vector<std::string> columns_ = TwoTagColumns();
  uint32_t sides_mismatches = 0;
  uint32_t tag_sides_calls = 0;
  uint32_t processes = 0;
  bool fail = false;
};

TEST_P(StorageEncodingTest, TaggerFillsTagColumnsOfEveryTable) {
  metrics::Registry registry;
  ClickHouseStorage storage(&clickhouse_client(), &registry);
  CountingTagger tagger;
  storage.SetTagger(&tagger);
  ASSERT_TRUE(storage.ApplySchema().ok());
  std::vector<AgentBatch> batches(2);
  batches[0].agent_id = 3;
  batches[1].agent_id = 4;
  batches[0].records.add_l7_request_logs()->set_time(1700000000);
  batches[0].records.add_l4_flow_logs()->set_time(1700000000);
  batches[0].records.add_processes()->set_pid(9);
  auto* dropped = batches[1].records.add_network_metrics();  // no 5 s table: still indexed
  dropped->set_time(1700000000);
  dropped->set_granularity_s(5);
  auto* nm = batches[1].records.add_network_metrics();
  nm->set_time(1700000000);
  nm->set_granularity_s(1);
  auto* am = batches[1].records.add_application_metrics();
  am->set_time(1700000000);
  am->set_granularity_s(60);
  MaybeSetWire(&batches);
  WriteProgress progress;
  tagger.fail = true;
  EXPECT_EQ(storage.Write(batches, &progress).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(progress.empty());
  tagger.fail = false;
  Status s = storage.Write(batches, &progress);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const auto& c = clickhouse_client();
  ASSERT_EQ(tagger.columns_.size(), 2u);
  const std::string& a = tagger.columns_[0];
  const std::string& b = tagger.columns_[1];
  EXPECT_EQ(MustQuery(c, fmt::format("SELECT {}, {} FROM flow_log.l7_request_log", a, b)).rows[0],
            nlohmann::json::parse("[3000, 1]"));
  EXPECT_EQ(MustQuery(c, fmt::format("SELECT {}, {} FROM flow_log.l4_flow_log", a, b)).rows[0],
            nlohmann::json::parse("[3001, 1]"));
  EXPECT_EQ(MustQuery(c, fmt::format("SELECT {} FROM flow_metrics.network_1s", a)).rows[0][0], 4001);
  EXPECT_EQ(MustQuery(c, fmt::format("SELECT {} FROM flow_metrics.application_1m", a)).rows[0][0], 4002);
  EXPECT_EQ(tagger.processes, 2u);  // seen by both attempts
  EXPECT_EQ(tagger.tag_sides_calls, 3u);  // the failing attempt stops at its first batch
  EXPECT_EQ(tagger.sides_mismatches, 0u);
}

TEST_F(StorageTest, MalformedRecordBytesAreDroppedAndCountedOthersStored) {
  metrics::Registry registry;
  ClickHouseStorage storage(&clickhouse_client(), &registry);
  CountingTagger tagger;
  storage.SetTagger(&tagger);
  ASSERT_TRUE(storage.ApplySchema().ok());
  agent::v1::RecordBatch good;
  good.add_l7_request_logs()->set_time(1700000000);
  good.mutable_l7_request_logs(0)->set_endpoint("/ok");
  std::vector<AgentBatch> batches(1);
  batches[0].agent_id = 5;
  // A record whose bytes are not protobuf (a damaged spool file), then a good one.
  batches[0].wire = std::string("\x0a\x02\xff\xff", 4) + good.SerializeAsString();
  WriteProgress progress;
  Status s = storage.Write(batches, &progress);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const auto& c = clickhouse_client();
  EXPECT_EQ(MustQuery(c, "SELECT count() FROM flow_log.l7_request_log WHERE endpoint = '/ok'").rows[0][0], 1);
  EXPECT_EQ(MustQuery(c, fmt::format("SELECT {} FROM flow_log.l7_request_log WHERE endpoint = '/ok'",
                                     tagger.columns_[0])).rows[0][0],
            5001) << "the good record keeps its own tags";
  EXPECT_EQ(registry.CounterTotal("sonde_server_records_dropped_total"), 1u);
}

TEST_F(StorageTest, LargeWritesAreStreamedWhole) {
  // Bodies of 64 KiB and more are streamed from the row buffer instead of copied into the request.
  metrics::Registry registry;
  ClickHouseStorage storage(&clickhouse_client(), &registry);
  ASSERT_TRUE(storage.ApplySchema().ok());
  std::vector<AgentBatch> batches(1);
  batches[0].agent_id = 8;
  for (int i = 0; i < 3000; ++i) {
    auto* m = batches[0].records.add_l7_request_logs();
    m->set_time(1700000000);
    m->set_endpoint(fmt::format("/large/{:0>100}", i));
  }
  WriteProgress progress;
  Status s = storage.Write(batches, &progress);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const auto& c = clickhouse_client();
  EXPECT_EQ(MustQuery(c, "SELECT count(), uniqExact(endpoint) FROM flow_log.l7_request_log WHERE agent_id = 8").rows[0],
            nlohmann::json::parse("[3000, 3000]"));
  // A streamed body into a table that does not exist: ClickHouse's answer, not a hang.
  std::string rows(100000, '\0');
  Status bad = c.InsertRowBinary("flow_log", "no_such_table", "`time`", rows);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.ToString().find("no_such_table"), std::string::npos) << bad.ToString();
}

TEST_F(StorageTest, WriteFailsWhileClickHouseIsDownAndResumes) {
  metrics::Registry registry;
  ClickHouseStorage storage(&clickhouse_client(), &registry);
  ASSERT_TRUE(storage.ApplySchema().ok());
  std::vector<AgentBatch> batches(1);
  batches[0].records.add_l4_flow_logs()->set_time(1700000000);
  ASSERT_TRUE(clickhouse_fixture().Kill().ok());
  WriteProgress progress;
  Status s = storage.Write(batches, &progress);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_TRUE(progress.empty());
  ASSERT_TRUE(clickhouse_fixture().Restart().ok());
  ASSERT_TRUE(storage.Write(batches, &progress).ok());
  EXPECT_EQ(MustQuery(clickhouse_client(), "SELECT count() FROM flow_log.l4_flow_log").rows[0][0], 1);
}

TEST_F(StorageTest, AddsColumnsMissingFromAnOlderTable) {
  // An older l4_flow_log without most columns: ApplySchema adds them, then inserts work.
  ASSERT_TRUE(clickhouse_client().Execute("CREATE DATABASE flow_log").ok());
  ASSERT_TRUE(clickhouse_client()
                  .Execute("CREATE TABLE flow_log.l4_flow_log (time DateTime, agent_id UInt32) ENGINE = MergeTree "
                           "PARTITION BY toYYYYMMDD(time) ORDER BY time")
                  .ok());
  metrics::Registry registry;
  ClickHouseStorage storage(&clickhouse_client(), &registry);
  Status s = storage.ApplySchema();
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::vector<AgentBatch> batches(1);
  batches[0].records.add_l4_flow_logs()->set_rtt_us(123);
  WriteProgress progress;
  ASSERT_TRUE(storage.Write(batches, &progress).ok());
  EXPECT_EQ(MustQuery(clickhouse_client(), "SELECT rtt_us FROM flow_log.l4_flow_log").rows[0][0], 123);
}

TEST_F(StorageTest, RetentionDropsOnlyExpiredPartitions) {
  metrics::Registry registry;
  ClickHouseStorage storage(&clickhouse_client(), &registry);
  ASSERT_TRUE(storage.ApplySchema().ok());
  const uint32_t day = 86400;
  const uint32_t now = 1700000000;  // 2023-11-14 22:13:20 UTC
  std::vector<AgentBatch> batches(1);
  // l4_flow_log keeps 3 days (today and the two before); network_1s keeps 1 day.
  for (uint32_t age_days : {0u, 1u, 2u, 3u, 10u}) {
    batches[0].records.add_l4_flow_logs()->set_time(now - age_days * day);
    auto* nm = batches[0].records.add_network_metrics();
    nm->set_time(now - age_days * day);
    nm->set_granularity_s(1);
  }
  WriteProgress progress;
  ASSERT_TRUE(storage.Write(batches, &progress).ok());
  const schema::Table* l4 = schema::FindTable("flow_log", "l4_flow_log");
  const schema::Table* n1 = schema::FindTable("flow_metrics", "network_1s");
  ASSERT_EQ(l4->retention_days, 3u);
  ASSERT_EQ(n1->retention_days, 1u);

  auto dropped = storage.DropExpiredPartitions(std::chrono::system_clock::from_time_t(now));
  ASSERT_TRUE(dropped.ok()) << dropped.status().ToString();
  EXPECT_EQ(*dropped, 2u + 4u);
  EXPECT_EQ(MustQuery(clickhouse_client(), "SELECT count() FROM flow_log.l4_flow_log").rows[0][0], 3);
  EXPECT_EQ(MustQuery(clickhouse_client(), "SELECT count() FROM flow_metrics.network_1s").rows[0][0], 1);
  EXPECT_EQ(registry.CounterTotal("sonde_server_retention_partitions_dropped_total"), 6u);
}

}  // namespace
}  // namespace sonde::server::storage::clickhouse
