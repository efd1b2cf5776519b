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
    std::vector<uint32_t> got;
    for (const auto& b : batches) {
      // Spooled batches carry wire bytes; only their ProcessInfo records are parsed.
      agent::v1::RecordBatch records;
      if (!records.ParseFromString(b.wire)) return InvalidArgumentError("spool handed over bad bytes");
      for (const auto& r : records.l4_flow_logs()) {
        // Like a row ClickHouse cannot take: the whole write is refused.
        if (r.time() == poison_time) return InvalidArgumentError("fake rejection of a poisoned row");
        got.push_back(r.time());
      }
    }
    times.insert(times.end(), got.begin(), got.end());
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
  uint32_t poison_time = UINT32_MAX;  // a write holding a record of this time is rejected
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

// Writes a batch file of the previous format (one file per batch, "SSP1" header), as the previous
// release left them.
void WriteLegacyBatch(const std::string& dir, uint64_t seq, uint32_t agent_id, const std::string& wire) {
  std::string header = "SSP1";
  for (uint32_t v : {agent_id, static_cast<uint32_t>(wire.size())}) {
    for (int i = 0; i < 4; ++i) header.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::ofstream(fmt::format("{}/{:020d}.batch", dir, seq), std::ios::binary) << header << wire;
}

std::vector<fs::path> Segments(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".seg") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint32_t> AgentsOf(const std::vector<SpoolEntry>& entries) {
  std::vector<uint32_t> out;
  for (const auto& e : entries) out.push_back(e.batch.agent_id);
  return out;
}

// Offset of the k-th batch record (0-based) of a segment written by this test's appends.
uint64_t RecordOffset(const std::vector<uint64_t>& payload_sizes, size_t k) {
  uint64_t off = Spool::kSegmentHeaderBytes;
  for (size_t i = 0; i < k; ++i) off += Spool::kRecordHeaderBytes + payload_sizes[i];
  return off;
}

// Appends n batches (batch i: agent i + 1, `records` records from time i * time_step) and returns
// their payload sizes, or nothing when an append failed.
std::vector<uint64_t> AppendBatches(Spool* spool, uint32_t n, int records, uint32_t time_step) {
  std::vector<uint64_t> sizes;
  for (uint32_t i = 0; i < n; ++i) {
    const agent::v1::RecordBatch batch = Batch(i * time_step, records);
    if (!spool->Append(i + 1, batch).ok()) return {};
    sizes.push_back(batch.ByteSizeLong());
  }
  return sizes;
}

void FlipByte(const fs::path& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

TEST(SpoolTest, PreviousFormatIsReplayedAndDeletedOnceStored) {
  TempDir dir;
  metrics::Registry registry;
  const std::string a = Batch(100, 2).SerializeAsString();
  const std::string b = Batch(200, 3).SerializeAsString();
  WriteLegacyBatch(dir.path(), 41, 7, a);
  WriteLegacyBatch(dir.path(), 42, 8, b);
  WriteLegacyBatch(dir.path(), 43, 9, "garbage that is no RecordBatch");
  std::ofstream(dir.path() + "/free-3") << "SSP1 dead content of a removed batch";
  std::ofstream(dir.path() + "/00000000000000000044.batch.tmp") << "partial";
  auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
  ASSERT_TRUE(spool.ok()) << spool.status().ToString();
  EXPECT_EQ((*spool)->files(), 3u);
  EXPECT_FALSE(fs::exists(dir.path() + "/free-3")) << "dead content of the previous format is dropped";
  EXPECT_FALSE(fs::exists(dir.path() + "/00000000000000000044.batch.tmp"));
  // New appends come after the old batches.
  auto seq = (*spool)->Append(5, Batch(300, 1));
  ASSERT_TRUE(seq.ok());
  EXPECT_GT(*seq, 43u);
  auto entries = (*spool)->ReadOldest(10, 1 << 20);
  ASSERT_EQ(entries.size(), 3u) << "the unreadable old file is quarantined";
  EXPECT_EQ(AgentsOf(entries), (std::vector<uint32_t>{7, 8, 5}));
  EXPECT_EQ(entries[0].batch.wire, a);
  EXPECT_EQ(entries[1].batch.wire, b);
  EXPECT_EQ(entries[1].records, 3u);
  EXPECT_TRUE(fs::exists(fmt::format("{}/quarantine/{:020d}.batch", dir.path(), 43)));
  EXPECT_EQ(registry.CounterTotal("sonde_server_spool_quarantined_total"), 1u);
  std::vector<uint64_t> seqs = {entries[0].seq, entries[1].seq};
  (*spool)->Remove(seqs);
  EXPECT_FALSE(fs::exists(fmt::format("{}/{:020d}.batch", dir.path(), 41)));
  EXPECT_FALSE(fs::exists(fmt::format("{}/{:020d}.batch", dir.path(), 42)));
  spool->reset();
  spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
  ASSERT_TRUE(spool.ok());
  entries = (*spool)->ReadOldest(10, 1 << 20);
  EXPECT_EQ(AgentsOf(entries), (std::vector<uint32_t>{5})) << "only the batch not stored is replayed";
}

TEST(SpoolTest, TornTailIsCountedAndEarlierBatchesSurvive) {
  TempDir dir;
  metrics::Registry registry;
  std::vector<uint64_t> sizes;
  {
    auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
    ASSERT_TRUE(spool.ok());
    sizes = AppendBatches(spool->get(), 3, 5, 10);
    ASSERT_EQ(sizes.size(), 3u);
  }
  auto segs = Segments(dir.path());
  ASSERT_EQ(segs.size(), 1u);
  // A crash in the middle of the third batch's write: the file ends inside its payload.
  fs::resize_file(segs[0], RecordOffset(sizes, 2) + Spool::kRecordHeaderBytes + sizes[2] / 2);
  metrics::Registry after;
  auto spool = Spool::Open({dir.path(), 1 << 20, true}, &after);
  ASSERT_TRUE(spool.ok());
  EXPECT_EQ(after.CounterTotal("sonde_server_spool_corrupt_total"), 1u);
  auto entries = (*spool)->ReadOldest(10, 1 << 20);
  EXPECT_EQ(AgentsOf(entries), (std::vector<uint32_t>{1, 2}));
  // The spool goes on: new batches are durable and replayed next to the survivors.
  ASSERT_TRUE((*spool)->Append(9, Batch(0, 1)).ok());
  spool->reset();
  metrics::Registry again;
  spool = Spool::Open({dir.path(), 1 << 20, true}, &again);
  ASSERT_TRUE(spool.ok());
  EXPECT_EQ(AgentsOf((*spool)->ReadOldest(10, 1 << 20)), (std::vector<uint32_t>{1, 2, 9}));
  // The torn tail is still there (never overwritten) and counted again, nothing else is.
  EXPECT_EQ(again.CounterTotal("sonde_server_spool_corrupt_total"), 1u);

  // A tail cut inside a record header, and a segment cut right after its header.
  fs::resize_file(segs[0], RecordOffset(sizes, 1) + 10);
  metrics::Registry third;
  spool = Spool::Open({dir.path(), 1 << 20, true}, &third);
  ASSERT_TRUE(spool.ok());
  EXPECT_EQ(AgentsOf((*spool)->ReadOldest(10, 1 << 20)), (std::vector<uint32_t>{1, 9}));
  EXPECT_EQ(third.CounterTotal("sonde_server_spool_corrupt_total"), 1u);
}

TEST(SpoolTest, DamagedBatchInTheMiddleIsSkippedAndTheRestKept) {
  for (const bool in_header : {false, true}) {
    TempDir dir;
    metrics::Registry registry;
    std::vector<uint64_t> sizes;
    {
      auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
      ASSERT_TRUE(spool.ok());
      sizes = AppendBatches(spool->get(), 4, 5, 10);
      ASSERT_EQ(sizes.size(), 4u);
    }
    auto segs = Segments(dir.path());
    ASSERT_EQ(segs.size(), 1u);
    // The second batch: a byte of its payload, or of its header (its length is then unknown).
    FlipByte(segs[0], RecordOffset(sizes, 1) + (in_header ? 21 : Spool::kRecordHeaderBytes + 3));
    metrics::Registry after;
    auto spool = Spool::Open({dir.path(), 1 << 20, true}, &after);
    ASSERT_TRUE(spool.ok());
    EXPECT_EQ(after.CounterTotal("sonde_server_spool_corrupt_total"), 1u) << in_header;
    auto entries = (*spool)->ReadOldest(10, 1 << 20);
    EXPECT_EQ(AgentsOf(entries), (std::vector<uint32_t>{1, 3, 4})) << in_header;
    for (size_t i = 0; i < entries.size(); ++i) {
      agent::v1::RecordBatch parsed;
      ASSERT_TRUE(parsed.ParseFromString(entries[i].batch.wire));
      EXPECT_EQ(parsed.l4_flow_logs(0).time(), (entries[i].batch.agent_id - 1) * 10);
    }
  }
}

TEST(SpoolTest, DamageFoundAtReadIsQuarantined) {
  TempDir dir;
  metrics::Registry registry;
  auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
  ASSERT_TRUE(spool.ok());
  const std::vector<uint64_t> sizes = AppendBatches(spool->get(), 2, 1, 1);
  ASSERT_EQ(sizes.size(), 2u);
  auto segs = Segments(dir.path());
  ASSERT_EQ(segs.size(), 1u);
  FlipByte(segs[0], RecordOffset(sizes, 1) + Spool::kRecordHeaderBytes + 1);
  auto entries = (*spool)->ReadOldest(10, 1 << 20);
  EXPECT_EQ(AgentsOf(entries), (std::vector<uint32_t>{1}));
  EXPECT_EQ((*spool)->files(), 1u);
  EXPECT_EQ(registry.CounterTotal("sonde_server_spool_quarantined_total"), 1u);
  EXPECT_TRUE(fs::exists(fmt::format("{}/quarantine/{:020d}.batch", dir.path(), entries[0].seq + 1)));
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
  EXPECT_EQ(entries[0].bytes, wire.size() + Spool::kRecordHeaderBytes);
}

TEST(SpoolTest, SegmentsAreReusedAndRemovedBatchesNeverReplayed) {
  TempDir dir;
  metrics::Registry registry;
  auto inode = [](const fs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
  };
  SpoolOptions options{dir.path(), 1 << 20, true, 4096};
  std::set<ino_t> inodes_seen;
  uint32_t next_agent = 1;
  {
    auto spool = Spool::Open(options, &registry);
    ASSERT_TRUE(spool.ok());
    // Rounds of ~3 segments written then drained: segments are recycled, not created.
    for (int round = 0; round < 6; ++round) {
      for (int i = 0; i < 30; ++i) ASSERT_TRUE((*spool)->Append(next_agent++, Batch(0, 30)).ok());
      auto entries = (*spool)->ReadOldest(1000, 1 << 20);
      ASSERT_EQ(entries.size(), 30u);
      EXPECT_EQ(entries.front().batch.agent_id, next_agent - 30) << "in order, removed ones never read again";
      std::vector<uint64_t> seqs;
      for (const auto& e : entries) seqs.push_back(e.seq);
      (*spool)->Remove(seqs);
      for (const auto& p : Segments(dir.path())) inodes_seen.insert(inode(p));
    }
    EXPECT_EQ((*spool)->files(), 0u);
    EXPECT_LE(inodes_seen.size(), 8u) << "segment files are reused";
    // Some batches left, some removed, in a segment that also holds removed ones.
    for (int i = 0; i < 5; ++i) ASSERT_TRUE((*spool)->Append(next_agent++, Batch(0, 3)).ok());
    auto entries = (*spool)->ReadOldest(2, 1 << 20);
    std::vector<uint64_t> seqs = {entries[0].seq, entries[1].seq};
    (*spool)->Remove(seqs);
  }
  metrics::Registry after;
  auto spool = Spool::Open(options, &after);
  ASSERT_TRUE(spool.ok());
  auto entries = (*spool)->ReadOldest(100, 1 << 20);
  EXPECT_EQ(AgentsOf(entries), (std::vector<uint32_t>{next_agent - 3, next_agent - 2, next_agent - 1}))
      << "stale batches of reused segments and removed ones are not replayed";
  EXPECT_EQ(after.CounterTotal("sonde_server_spool_corrupt_total"), 0u) << "a clean shutdown has no torn tail";
  EXPECT_EQ(after.CounterTotal("sonde_server_spool_replayed_total"), 3u);
}

TEST(SpoolTest, ConcurrentAppendsAreAllDurableAndInOrder) {
  TempDir dir;
  metrics::Registry registry;
  SpoolOptions options{dir.path(), 64 << 20, true, 64 << 10};
  constexpr int kThreads = 4, kPerThread = 40;
  std::vector<std::vector<uint64_t>> seqs(kThreads);
  {
    auto spool = Spool::Open(options, &registry);
    ASSERT_TRUE(spool.ok());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          auto s = (*spool)->Append(static_cast<uint32_t>(t + 1), Batch(static_cast<uint32_t>(t * 1000 + i), 20));
          if (s.ok()) seqs[t].push_back(*s);
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ((*spool)->files(), static_cast<size_t>(kThreads * kPerThread));
  }
  auto spool = Spool::Open(options, &registry);
  ASSERT_TRUE(spool.ok());
  auto entries = (*spool)->ReadOldest(1000, 1ull << 30);
  ASSERT_EQ(entries.size(), static_cast<size_t>(kThreads * kPerThread));
  std::vector<int> next(kThreads, 0);
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) {
      EXPECT_LT(entries[i - 1].seq, entries[i].seq);
    }
    const uint32_t t = entries[i].batch.agent_id - 1;
    ASSERT_LT(t, static_cast<uint32_t>(kThreads));
    agent::v1::RecordBatch parsed;
    ASSERT_TRUE(parsed.ParseFromString(entries[i].batch.wire));
    EXPECT_EQ(parsed.l4_flow_logs(0).time(), t * 1000 + static_cast<uint32_t>(next[t]));
    EXPECT_EQ(entries[i].seq, seqs[t][static_cast<size_t>(next[t])]);
    ++next[t];
  }
  EXPECT_EQ(registry.CounterTotal("sonde_server_spool_corrupt_total"), 0u);
}

TEST(SpoolTest, FreeSegmentsStayWithinAnEighthOfTheBound) {
  TempDir dir;
  metrics::Registry registry;
  const uint64_t bound = 256 << 10;
  SpoolOptions options{dir.path(), bound, false, 8 << 10};
  auto spool = Spool::Open(options, &registry);
  ASSERT_TRUE(spool.ok());
  for (uint32_t i = 0; i < 200; ++i) ASSERT_TRUE((*spool)->Append(1, Batch(i, 100)).ok());
  const size_t held = (*spool)->segment_files();
  EXPECT_GT(held, 10u);
  auto entries = (*spool)->ReadOldest(1000, bound);
  ASSERT_EQ(entries.size(), 200u);
  std::vector<uint64_t> seqs;
  for (const auto& e : entries) seqs.push_back(e.seq);
  (*spool)->Remove(seqs);
  uint64_t disk = 0;
  for (const auto& p : Segments(dir.path())) disk += fs::file_size(p);
  EXPECT_LT(Segments(dir.path()).size(), held) << "the rest were deleted";
  EXPECT_LE(disk, bound / 8 + 2 * (8 << 10)) << "free segments plus the active one";
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

TEST(SpoolDrainerTest, QuarantinesOnlyTheBatchStorageRejectsNotItsNeighbours) {
  TempDir dir;
  metrics::Registry registry;
  auto spool = Spool::Open({dir.path(), 1 << 20, true}, &registry);
  ASSERT_TRUE(spool.ok());
  // Eight batches of 10 records read as one set; the sixth holds a row storage refuses.
  for (uint32_t i = 0; i < 8; ++i) ASSERT_TRUE((*spool)->Append(1, Batch(i * 10, 10)).ok());
  FakeBackend backend;
  backend.poison_time = 57;
  SpoolDrainerOptions options;
  options.flush_interval = std::chrono::milliseconds(10);
  options.backoff_min = std::chrono::milliseconds(1);
  options.backoff_max = std::chrono::milliseconds(5);
  options.max_rejections = 3;
  options.max_files_per_write = 8;
  SpoolDrainer drainer(spool->get(), &backend, options, &registry);
  drainer.Start();
  ASSERT_TRUE(WaitFor([&] { return (*spool)->files() == 0; }));
  drainer.Stop(std::chrono::milliseconds(0));
  std::vector<uint32_t> expected;
  for (uint32_t t = 0; t < 80; ++t) {
    if (t / 10 != 5) expected.push_back(t);
  }
  EXPECT_EQ(backend.times, expected) << "the seven good batches are stored, in order, once";
  EXPECT_EQ(registry.CounterTotal("sonde_server_records_dropped_total"), 10u);
  EXPECT_EQ(registry.CounterTotal("sonde_server_spool_quarantined_total"), 1u);
  EXPECT_EQ(registry.CounterTotal("sonde_server_spool_batches_written_total"), 7u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path() + "/quarantine"), fs::directory_iterator()), 1);
  // 3 rejections of the set, then halves: [0,4) ok, [4,8) no, [4,6) no, [4] ok, [5] no, [6,8) ok.
  EXPECT_EQ(backend.attempts, 3 + 6);
}

}  // namespace
}  // namespace sonde::server::ingest
