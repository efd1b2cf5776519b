// The ingest pipeline end to end inside one process: fake agents -> IngestServer -> Spool ->
// SpoolDrainer -> ClickHouseStorage -> a real ClickHouse (fixture), including a ClickHouse
// outage mid-stream, bad connections, the spool bound and the ingest token.
#include "server/ingest/ingest_server.h"

#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "server/ingest/spool_drainer.h"
#include "server/ingest/testing/fake_agent.h"
#include "server/storage/clickhouse/clickhouse_storage.h"
#include "server/storage/clickhouse/testing/clickhouse_fixture.h"

namespace sonde::server::ingest {
namespace {

namespace fs = std::filesystem;
using testing::FakeAgent;

agent::v1::RecordBatch FlowBatch(uint64_t first_id, int n) {
  agent::v1::RecordBatch b;
  for (int i = 0; i < n; ++i) {
    auto* r = b.add_l4_flow_logs();
    r->set_time(1700000000);
    r->set_flow_id(first_id + static_cast<uint64_t>(i));
    r->set_server_port(80);
  }
  return b;
}

bool WaitFor(const std::function<bool()>& cond, int timeout_ms = 20000) {
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

// The whole server-side pipeline against the fixture's ClickHouse.
class IngestTest : public storage::clickhouse::testing::ClickHouseTest {
 protected:
  void SetUp() override {
    ClickHouseTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    spool_dir_ = clickhouse_fixture().dir() + "/spool";
    storage_ = std::make_unique<storage::clickhouse::ClickHouseStorage>(&clickhouse_client(), &registry_);
    ASSERT_TRUE(storage_->ApplySchema().ok());
    StartPipeline(IngestServerOptions{});
  }
  void TearDown() override { StopPipeline(); }

  void StartPipeline(IngestServerOptions options, uint64_t spool_max_bytes = 64 << 20) {
    auto spool = Spool::Open({spool_dir_, spool_max_bytes, true}, &registry_);
    ASSERT_TRUE(spool.ok()) << spool.status().ToString();
    spool_ = std::move(*spool);
    SpoolDrainerOptions drain;
    drain.flush_interval = std::chrono::milliseconds(50);
    drain.backoff_min = std::chrono::milliseconds(50);
    drain.backoff_max = std::chrono::milliseconds(500);
    drainer_ = std::make_unique<SpoolDrainer>(spool_.get(), storage_.get(), drain, &registry_);
    drainer_->Start();
    options.listen_host = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<IngestServer>(options, spool_.get(), &agents_, &registry_);
    ASSERT_TRUE(server_->Start().ok());
  }
  void StopPipeline() {
    if (server_) server_->Stop();
    if (drainer_) drainer_->Stop(std::chrono::milliseconds(2000));
    server_.reset();
    drainer_.reset();
    spool_.reset();
  }

  int64_t Count(const std::string& sql) {
    auto r = clickhouse_client().Query(sql);
    if (!r.ok() || r->rows.empty()) return -1;
    return r->rows[0][0].get<int64_t>();
  }
  uint64_t Rejected(const std::string& reason) {
    return registry_.GetCounter("sonde_server_frames_rejected_total", "", {{"reason", reason}})->Value();
  }

  metrics::Registry registry_;
  AgentRegistry agents_;
  std::string spool_dir_;
  std::unique_ptr<storage::clickhouse::ClickHouseStorage> storage_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<SpoolDrainer> drainer_;
  std::unique_ptr<IngestServer> server_;
};

TEST_F(IngestTest, BatchesAreAckedAndQueryable) {
  FakeAgent a, b;
  ASSERT_TRUE(a.Connect(server_->port()).ok());
  ASSERT_TRUE(b.Connect(server_->port()).ok());
  auto id_a = a.Register("host-a", "boot-1");
  auto id_b = b.Register("host-b", "boot-1");
  ASSERT_TRUE(id_a.ok() && id_b.ok());
  EXPECT_NE(*id_a, *id_b);
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    auto r = a.SendBatch(seq, FlowBatch(seq * 100, 10), /*compress=*/seq % 2 == 0);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->has_ack()) << r->DebugString();
    EXPECT_EQ(r->ack().batch_seq(), seq);
  }
  auto rb = b.SendBatch(1, FlowBatch(1, 3));
  ASSERT_TRUE(rb.ok() && rb->has_ack());
  control::v1::AgentFrame hb;
  hb.mutable_heartbeat()->set_records_sent(53);
  auto hr = a.Call(hb);
  ASSERT_TRUE(hr.ok() && hr->has_heartbeat_reply());
  EXPECT_GT(hr->heartbeat_reply().server_time_us(), 0u);

  ASSERT_TRUE(WaitFor([&] { return Count("SELECT count() FROM flow_log.l4_flow_log") == 53; }));
  EXPECT_EQ(Count(fmt::format("SELECT count() FROM flow_log.l4_flow_log WHERE agent_id = {}", *id_a)), 50);
  EXPECT_EQ(Count("SELECT uniqExact(flow_id) FROM flow_log.l4_flow_log"), 53);
  auto snapshot = agents_.Snapshot();
  ASSERT_EQ(snapshot.size(), 2u);
  EXPECT_EQ(snapshot[0].records + snapshot[1].records, 53u);
  EXPECT_EQ(agents_.connected(), 2u);
  EXPECT_EQ(registry_.CounterTotal("sonde_server_records_received_total"), 53u);

  // Same hostname + boot id after a reconnect: same agent id.
  a.Close();
  FakeAgent again;
  ASSERT_TRUE(again.Connect(server_->port()).ok());
  auto id_again = again.Register("host-a", "boot-1");
  ASSERT_TRUE(id_again.ok());
  EXPECT_EQ(*id_again, *id_a);
}

TEST_F(IngestTest, BadConnectionsAreRejectedWhileAGoodAgentKeepsWorking) {
  FakeAgent good;
  ASSERT_TRUE(good.Connect(server_->port()).ok());
  ASSERT_TRUE(good.Register("good", "b").ok());
  uint64_t seq = 0;
  auto send_good = [&] {
    ++seq;
    auto r = good.SendBatch(seq, FlowBatch(seq * 1000, 5));
    return r.ok() && r->has_ack();
  };
  ASSERT_TRUE(send_good());

  auto expect_error_and_close = [&](FakeAgent& bad, const std::string& what) {
    auto reply = bad.Read(5000);
    ASSERT_TRUE(reply.ok()) << what << ": " << reply.status().ToString();
    EXPECT_TRUE(reply->has_error()) << what;
    char c;
    EXPECT_LE(::recv(bad.fd(), &c, 1, 0), 0) << what << ": connection should be closed (FIN or RST)";
  };
  {  // HTTP instead of frames
    FakeAgent bad;
    ASSERT_TRUE(bad.Connect(server_->port()).ok());
    ASSERT_TRUE(bad.SendRaw("GET / HTTP/1.1\r\nHost: x\r\n\r\n").ok());
    expect_error_and_close(bad, "garbage");
  }
  ASSERT_TRUE(send_good());
  {  // oversized length
    FakeAgent bad;
    ASSERT_TRUE(bad.Connect(server_->port()).ok());
    ASSERT_TRUE(bad.SendRaw(std::string("SND1\0\0\0\0\x7f\xff\xff\xff", 12)).ok());
    expect_error_and_close(bad, "oversized");
  }
  {  // valid header, body is not protobuf
    FakeAgent bad;
    ASSERT_TRUE(bad.Connect(server_->port()).ok());
    ASSERT_TRUE(bad.SendRaw(wire::EncodeFrame(std::string("\xff\xff\xff\xff", 4), false)).ok());
    expect_error_and_close(bad, "bad protobuf");
  }
  {  // a registered agent's batch whose envelope is fine but one record is not protobuf: records
     // are checked at receipt although they are never parsed, so nothing of it is spooled
    FakeAgent bad;
    ASSERT_TRUE(bad.Connect(server_->port()).ok());
    ASSERT_TRUE(bad.Register("bad-record", "b").ok());
    agent::v1::RecordBatch records = FlowBatch(0, 2);
    std::string inner = std::string("\x08\x07", 2) + "\x12";  // Batch{batch_seq: 7, records: ...}
    std::string rb = records.SerializeAsString() + std::string("\x0a\x03\x08\x80\x80", 5);  // cut varint
    inner += static_cast<char>(rb.size()) + rb;
    ASSERT_LT(rb.size(), 128u);
    std::string payload = std::string("\x1a", 1) + static_cast<char>(inner.size()) + inner;
    ASSERT_LT(inner.size(), 128u);
    ASSERT_TRUE(bad.SendRaw(wire::EncodeFrame(payload, false)).ok());
    expect_error_and_close(bad, "bad record");
  }
  {  // a string field that is not UTF-8 (proto3 requires it; ClickHouse answers would break)
    FakeAgent bad;
    ASSERT_TRUE(bad.Connect(server_->port()).ok());
    ASSERT_TRUE(bad.Register("bad-utf8", "b").ok());
    agent::v1::RecordBatch records;
    records.add_l7_request_logs()->set_endpoint(std::string("/\xff", 2));
    auto r = bad.SendBatch(1, records, false);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r->has_error());
  }
  {  // batch before register
    FakeAgent bad;
    ASSERT_TRUE(bad.Connect(server_->port()).ok());
    auto r = bad.SendBatch(1, FlowBatch(0, 1));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->has_error());
  }
  {  // truncated frame: header promises 100 bytes, 10 arrive, then the agent hangs up
    FakeAgent bad;
    ASSERT_TRUE(bad.Connect(server_->port()).ok());
    std::string frame = wire::EncodeFrame(std::string(100, 'x'), false);
    ASSERT_TRUE(bad.SendRaw(frame.substr(0, 22)).ok());
    ::shutdown(bad.fd(), SHUT_WR);
    ASSERT_TRUE(WaitFor([&] { return Rejected("truncated") == 1; }, 5000));
  }
  ASSERT_TRUE(send_good());
  EXPECT_EQ(Rejected("bad_magic"), 1u);
  EXPECT_EQ(Rejected("oversized"), 1u);
  EXPECT_EQ(Rejected("bad_protobuf"), 3u);
  EXPECT_EQ(Rejected("protocol"), 1u);
  EXPECT_EQ(Rejected("truncated"), 1u);
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT count() FROM flow_log.l4_flow_log") == 15; }));
  EXPECT_NE(registry_.RenderPrometheus().find("sonde_server_frames_rejected_total{reason=\"bad_magic\"} 1"),
            std::string::npos);
}

TEST_F(IngestTest, EveryAckedRecordSurvivesAClickHouseOutage) {
  FakeAgent agent;
  ASSERT_TRUE(agent.Connect(server_->port()).ok());
  ASSERT_TRUE(agent.Register("h", "b").ok());
  uint64_t acked_records = 0;
  uint64_t seq = 0;
  auto send = [&](int n) {
    for (int i = 0; i < n; ++i) {
      ++seq;
      auto r = agent.SendBatch(seq, FlowBatch(seq * 1000, 20));
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_TRUE(r->has_ack()) << r->DebugString();
      acked_records += 20;
    }
  };
  send(10);
  ASSERT_TRUE(clickhouse_fixture().Kill().ok());
  send(30);  // acked from the spool while ClickHouse is down
  ASSERT_TRUE(WaitFor([&] { return drainer_->consecutive_failures() > 0; }));
  EXPECT_GT(spool_->files(), 0u);
  ASSERT_TRUE(clickhouse_fixture().Restart().ok());
  send(10);
  ASSERT_TRUE(WaitFor([&] { return spool_->files() == 0; }));
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT uniqExact(flow_id) FROM flow_log.l4_flow_log") ==
                                   static_cast<int64_t>(acked_records); }))
      << Count("SELECT uniqExact(flow_id) FROM flow_log.l4_flow_log") << " of " << acked_records;
  // At least once: nothing lost; duplicates (none expected here) would only raise count().
  EXPECT_GE(Count("SELECT count() FROM flow_log.l4_flow_log"), static_cast<int64_t>(acked_records));
}

TEST_F(IngestTest, SpoolIsReplayedAfterAServerRestart) {
  FakeAgent agent;
  ASSERT_TRUE(agent.Connect(server_->port()).ok());
  ASSERT_TRUE(agent.Register("h", "b").ok());
  ASSERT_TRUE(clickhouse_fixture().Kill().ok());
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    auto r = agent.SendBatch(seq, FlowBatch(seq * 100, 10));
    ASSERT_TRUE(r.ok() && r->has_ack());
  }
  agent.Close();
  // The server goes down with ClickHouse unreachable: the acked batches stay on disk...
  server_->Stop();
  drainer_->Stop(std::chrono::milliseconds(100));
  server_.reset();
  drainer_.reset();
  spool_.reset();
  ASSERT_TRUE(clickhouse_fixture().Restart().ok());
  // ...and a new server instance replays them.
  StartPipeline(IngestServerOptions{});
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT count() FROM flow_log.l4_flow_log") == 50; }));
}

TEST_F(IngestTest, FullSpoolAnswersNackAndRecovers) {
  StopPipeline();
  fs::remove_all(spool_dir_);
  StartPipeline(IngestServerOptions{}, /*spool_max_bytes=*/8192);
  ASSERT_TRUE(clickhouse_fixture().Kill().ok());
  FakeAgent agent;
  ASSERT_TRUE(agent.Connect(server_->port()).ok());
  ASSERT_TRUE(agent.Register("h", "b").ok());
  uint64_t acked = 0;
  bool nacked = false;
  for (uint64_t seq = 1; seq <= 100 && !nacked; ++seq) {
    auto r = agent.SendBatch(seq, FlowBatch(seq * 100, 20), /*compress=*/false);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (r->has_ack()) {
      acked += 20;
    } else {
      ASSERT_TRUE(r->has_nack());
      EXPECT_EQ(r->nack().batch_seq(), seq);
      EXPECT_GT(r->nack().retry_after_ms(), 0u);
      EXPECT_FALSE(r->nack().permanent());
      nacked = true;
    }
  }
  ASSERT_TRUE(nacked);
  EXPECT_GT(acked, 0u);
  EXPECT_LE(spool_->bytes(), 8192u);
  ASSERT_TRUE(clickhouse_fixture().Restart().ok());
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT count() FROM flow_log.l4_flow_log") == static_cast<int64_t>(acked); }));
  // The rows are visible in ClickHouse before its answer reaches the drainer, which removes them
  // from the spool only then.
  ASSERT_TRUE(WaitFor([&] { return spool_->bytes() == 0; }));
  // Room again: the retried batch is accepted.
  auto r = agent.SendBatch(1000, FlowBatch(999999, 20));
  ASSERT_TRUE(r.ok() && r->has_ack());
}

TEST_F(IngestTest, IngestTokenIsEnforced) {
  StopPipeline();
  IngestServerOptions options;
  options.tokens = {"s3cret"};
  StartPipeline(options);
  FakeAgent bad;
  ASSERT_TRUE(bad.Connect(server_->port()).ok());
  auto r = bad.Register("h", "b", "wrong");
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(Rejected("unauthenticated"), 1u);
  FakeAgent good;
  ASSERT_TRUE(good.Connect(server_->port()).ok());
  EXPECT_TRUE(good.Register("h", "b", "s3cret").ok());
}

}  // namespace
}  // namespace sonde::server::ingest
