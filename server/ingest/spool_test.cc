// Spool durability/bounds/replay and SpoolDrainer retry/quarantine, with a fake storage backend.
#include "server/ingest/spool.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "server/ingest/spool_drainer.h"

namespace sonde::server::ingest {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sonde-spool-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

agent::v1::RecordBatch Batch(uint32_t first_time, int n) {
  agent::v1::RecordBatch b;
  for (int i = 0; i < n; ++i) b.add_l4_flow_logs()->set_time(first_time + static_cast<uint32_t>(i));
  return b;
}

// Stores batches in memory; fails while `fail_code` is set.
class FakeBackend : public storage::StorageBackend {
 public:
  Status ApplySchema() override {
    ++schema_applied;
    return Status::Ok();
  }
  Status Write(std::span<const storage::AgentBatch> batches, storage::WriteProgress*) override {
    std::lock_guard lock(mu);
    ++attempts;
    if (fail_code != StatusCode::kOk) return Status(fail_code, "fake failure");
    for (const auto& b : batches) {
      // Spooled batches carry wire bytes; only their ProcessInfo records are parsed.
      agent::v1::RecordBatch records;
      if (!records.ParseFromString(b.wire)) return InvalidArgumentError("spool handed over bad bytes");
      for (const auto& r : records.l4_flow_logs()) times.push_back(r.time());
    }
    ++writes;
    return Status::Ok();
  }
  StatusOr<uint32_t> DropExpiredPartitions(std::chrono::system_clock::time_point) override { return 0u; }

  size_t stored() {
    std::lock_guard lock(mu);
    return times.size();
  }

  std::mutex mu;
  std::atomic<StatusCode> fail_code{StatusCode::kOk};
  std::vector<uint32_t> times;
  int attempts = 0;
  int writes = 0;
  std::atomic<int> schema_applied{0};
};

bool WaitFor(const std::function<bool()>& cond, int timeout_ms = 10000) {
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

TEST(SpoolTest, AppendReadRemoveAndReplay) {
  TempDir dir;
  metrics::Registry registry;
  {
    auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
    ASSERT_TRUE(spool.ok()) << spool.status().ToString();
    for (uint32_t i = 0; i < 5; ++i) ASSERT_TRUE((*spool)->Append(10 + i, Batch(i * 100, 3)).ok());
    EXPECT_EQ((*spool)->files(), 5u);
    EXPECT_GT((*spool)->bytes(), 0u);
    auto entries = (*spool)->ReadOldest(2, 1 << 20);
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_EQ(entries[0].batch.agent_id, 10u);
    agent::v1::RecordBatch second;
    ASSERT_TRUE(second.ParseFromString(entries[1].batch.wire));
    EXPECT_EQ(second.l4_flow_logs(0).time(), 100u);
    EXPECT_EQ(entries[1].batch.records.l4_flow_logs_size(), 0) << "records stay wire bytes";
    EXPECT_EQ(entries[0].records, 3u);
    std::vector<uint64_t> seqs = {entries[0].seq, entries[1].seq};
    (*spool)->Remove(seqs);
    EXPECT_EQ((*spool)->files(), 3u);
  }
  // A half-written append from a crash is not a batch.
  std::ofstream(dir.path() + "/00000000000000000099.batch.tmp") << "partial";
  auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
  ASSERT_TRUE(spool.ok());
  EXPECT_EQ((*spool)->files(), 3u);
  EXPECT_FALSE(fs::exists(dir.path() + "/00000000000000000099.batch.tmp"));
  auto entries = (*spool)->ReadOldest(10, 1 << 20);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].batch.agent_id, 12u) << "replayed in order";
  EXPECT_EQ(entries[2].batch.agent_id, 14u);
  // New appends continue after the replayed sequence numbers.
  auto seq = (*spool)->Append(1, Batch(0, 1));
  ASSERT_TRUE(seq.ok());
  EXPECT_GT(*seq, entries[2].seq);
  EXPECT_EQ(registry.CounterTotal("sonde_server_spool_replayed_total"), 3u);
  // Replayed entries are due at once.
  EXPECT_TRUE((*spool)->WaitReady(1ull << 40, std::chrono::hours(1), std::chrono::steady_clock::now()));
}

TEST(SpoolTest, BoundRefusesWithResourceExhausted) {
  TempDir dir;
  metrics::Registry registry;
  auto spool = Spool::Open({dir.path(), 4096, true}, &registry);
  ASSERT_TRUE(spool.ok());
  int accepted = 0;
  Status last;
  for (int i = 0; i < 100; ++i) {
    auto r = (*spool)->Append(1, Batch(0, 20));
    if (!r.ok()) {
      last = r.status();
      break;
    }
    ++accepted;
  }
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 100);
  EXPECT_EQ(last.code(), StatusCode::kResourceExhausted);
  EXPECT_LE((*spool)->bytes(), 4096u);
  EXPECT_EQ(registry.CounterTotal("sonde_server_spool_full_total"), 1u);
}

TEST(SpoolTest, CorruptFilesAreQuarantined) {
  TempDir dir;
  metrics::Registry registry;
  auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
  ASSERT_TRUE(spool.ok());
  ASSERT_TRUE((*spool)->Append(1, Batch(0, 1)).ok());
  auto seq2 = (*spool)->Append(2, Batch(5, 1));
  ASSERT_TRUE(seq2.ok());
  spool->reset();
  // Corrupt the second file on disk, then reopen.
  std::ofstream(fmt::format("{}/{:020d}.batch", dir.path(), *seq2), std::ios::trunc) << "SSP1garbage";
  spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
  ASSERT_TRUE(spool.ok());
  auto entries = (*spool)->ReadOldest(10, 1 << 20);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].batch.agent_id, 1u);
  EXPECT_EQ((*spool)->files(), 1u);
  EXPECT_TRUE(fs::exists(fmt::format("{}/quarantine/{:020d}.batch", dir.path(), *seq2)));
  EXPECT_EQ(registry.CounterTotal("sonde_server_spool_quarantined_total"), 1u);
}

TEST(SpoolTest, WireAppendKeepsTheAgentBytesAndParsesOnlyProcesses) {
  TempDir dir;
  metrics::Registry registry;
  auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
  ASSERT_TRUE(spool.ok());
  agent::v1::RecordBatch b = Batch(7, 4);
  b.add_processes()->set_name("java");
  b.add_processes()->set_pid(42);
  b.add_l7_request_logs()->set_endpoint("/x");
  const std::string wire = b.SerializeAsString();
  ASSERT_TRUE((*spool)->Append(9, std::string_view(wire)).ok());
  auto entries = (*spool)->ReadOldest(10, 1 << 20);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].batch.wire, wire) << "spooled and read back byte for byte";
  EXPECT_EQ(entries[0].batch.agent_id, 9u);
  EXPECT_EQ(entries[0].records, 7u) << "4 flows, 1 request log, 2 processes";
  ASSERT_EQ(entries[0].batch.records.processes_size(), 2);
  EXPECT_EQ(entries[0].batch.records.processes(0).name(), "java");
  EXPECT_EQ(entries[0].batch.records.processes(1).pid(), 42u);
  EXPECT_EQ(entries[0].batch.records.l4_flow_logs_size(), 0);
  EXPECT_EQ(entries[0].bytes, wire.size() + 12);
}

TEST(SpoolTest, RemovedFilesAreReusedAndNeverReplayed) {
  TempDir dir;
  metrics::Registry registry;
  auto count_prefix = [&](std::string_view prefix) {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir.path())) n += e.path().filename().string().rfind(prefix, 0) == 0;
    return n;
  };
  auto inode = [](const fs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
  };
  {
    auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
    ASSERT_TRUE(spool.ok());
    for (uint32_t i = 0; i < 3; ++i) ASSERT_TRUE((*spool)->Append(1, Batch(i, 20)).ok());
    auto entries = (*spool)->ReadOldest(10, 1 << 20);
    std::vector<uint64_t> seqs;
    for (const auto& e : entries) seqs.push_back(e.seq);
    (*spool)->Remove(seqs);
    EXPECT_EQ((*spool)->files(), 0u);
    ASSERT_EQ(count_prefix("free-"), 3u);
    std::set<ino_t> free_inodes;
    for (const auto& e : fs::directory_iterator(dir.path())) free_inodes.insert(inode(e.path()));
    auto seq = (*spool)->Append(2, Batch(100, 1));  // smaller than the file it reuses
    ASSERT_TRUE(seq.ok());
    EXPECT_EQ(count_prefix("free-"), 2u);
    const fs::path batch = fmt::format("{}/{:020d}.batch", dir.path(), *seq);
    EXPECT_TRUE(free_inodes.count(inode(batch))) << "written over a free file, not a new inode";
    EXPECT_EQ(fs::file_size(batch), (*spool)->bytes()) << "the old, longer content is cut";
  }
  // A free file is dead content (even when it looks like a batch): never replayed.
  auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
  ASSERT_TRUE(spool.ok());
  EXPECT_EQ((*spool)->files(), 1u);
  auto entries = (*spool)->ReadOldest(10, 1 << 20);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].batch.agent_id, 2u);
  EXPECT_EQ(entries[0].records, 1u);
  EXPECT_EQ(count_prefix("free-"), 2u) << "kept for reuse across restarts";
}

TEST(SpoolTest, FreeFilesStayWithinAnEighthOfTheBound) {
  TempDir dir;
  metrics::Registry registry;
  const uint64_t file_bytes = 12 + Batch(0, 30).ByteSizeLong();
  const uint64_t bound = 64 * file_bytes;  // room for 40 batches; free files: about 8 of them
  auto spool = Spool::Open({dir.path(), bound, false}, &registry);
  ASSERT_TRUE(spool.ok());
  for (uint32_t i = 0; i < 40; ++i) ASSERT_TRUE((*spool)->Append(1, Batch(i, 30)).ok());
  auto entries = (*spool)->ReadOldest(100, bound);
  ASSERT_EQ(entries.size(), 40u);
  std::vector<uint64_t> seqs;
  for (const auto& e : entries) seqs.push_back(e.seq);
  (*spool)->Remove(seqs);
  uint64_t free_bytes = 0;
  size_t free_files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    if (e.path().filename().string().rfind("free-", 0) != 0) continue;
    ++free_files;
    free_bytes += fs::file_size(e.path());
  }
  EXPECT_GT(free_files, 0u);
  EXPECT_LT(free_files, 40u) << "the rest were deleted";
  EXPECT_LE(free_bytes, bound / 8);
}

TEST(SpoolDrainerTest, RetriesTransientFailuresAndLosesNothing) {
  TempDir dir;
  metrics::Registry registry;
  auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
  ASSERT_TRUE(spool.ok());
  FakeBackend backend;
  backend.fail_code = StatusCode::kUnavailable;
  SpoolDrainerOptions options;
  options.flush_interval = std::chrono::milliseconds(20);
  options.backoff_min = std::chrono::milliseconds(10);
  options.backoff_max = std::chrono::milliseconds(50);
  options.max_files_per_write = 4;
  SpoolDrainer drainer(spool->get(), &backend, options, &registry);
  drainer.Start();
  for (uint32_t i = 0; i < 10; ++i) ASSERT_TRUE((*spool)->Append(1, Batch(i * 10, 10)).ok());
  ASSERT_TRUE(WaitFor([&] { return drainer.consecutive_failures() >= 3; }));
  EXPECT_EQ((*spool)->files(), 10u) << "nothing deleted while storage fails";
  backend.fail_code = StatusCode::kOk;
  ASSERT_TRUE(WaitFor([&] { return (*spool)->files() == 0; }));
  EXPECT_TRUE(drainer.Stop(std::chrono::milliseconds(1000)));
  ASSERT_EQ(backend.stored(), 100u);
  for (uint32_t i = 0; i < 100; ++i) EXPECT_EQ(backend.times[i], i) << "spool order kept";
  EXPECT_GE(registry.CounterTotal("sonde_server_storage_write_failures_total"), 3u);
  EXPECT_EQ(registry.CounterTotal("sonde_server_spool_batches_written_total"), 10u);
}

TEST(SpoolDrainerTest, QuarantinesBatchesStorageKeepsRejecting) {
  TempDir dir;
  metrics::Registry registry;
  auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
  ASSERT_TRUE(spool.ok());
  FakeBackend backend;
  backend.fail_code = StatusCode::kInvalidArgument;
  SpoolDrainerOptions options;
  options.flush_interval = std::chrono::milliseconds(10);
  options.backoff_min = std::chrono::milliseconds(1);
  options.backoff_max = std::chrono::milliseconds(5);
  options.max_rejections = 3;
  SpoolDrainer drainer(spool->get(), &backend, options, &registry);
  drainer.Start();
  ASSERT_TRUE((*spool)->Append(1, Batch(0, 7)).ok());
  ASSERT_TRUE(WaitFor([&] { return (*spool)->files() == 0; }));
  drainer.Stop(std::chrono::milliseconds(0));
  EXPECT_EQ(registry.CounterTotal("sonde_server_records_dropped_total"), 7u);
  EXPECT_GE(backend.schema_applied.load(), 2) << "schema re-applied before giving up";
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path() + "/quarantine"), fs::directory_iterator()), 1);
}

}  // namespace
}  // namespace sonde::server::ingest
