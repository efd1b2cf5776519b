// Durable on-disk spool of accepted agent batches: written (fsync + rename) before the Ack,
// deleted only after the storage write succeeded, replayed after a restart.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/metrics/registry.h"
#include "server/storage/record_batch_wire.h"
#include "server/storage/storage_backend.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::server::ingest {

struct SpoolOptions {
  std::string dir;                   // created when missing; holds <seq>.batch files
  uint64_t max_bytes = 1ull << 30;   // Append fails with kResourceExhausted beyond this
  bool fsync = true;                 // off only in tests that measure nothing about durability
};

// One spooled batch read back for writing.
struct SpoolEntry {
  uint64_t seq = 0;
  uint64_t bytes = 0;  // size on disk
  uint64_t records = 0;
  storage::AgentBatch batch;  // `wire` set: records are not parsed (see AgentBatch)
};

// File format (little endian): "SSP1" | agent_id u32 | payload_bytes u32 | RecordBatch bytes.
// A file exists under its final name only once complete (written as .tmp or over a recycled
// free-N file, fsynced, renamed, directory fsynced), so replay never sees a partial batch; removed
// batches' files are renamed to free-N and reused (no inode created or freed per batch); unreadable files are moved to
// dir/quarantine/ and counted. Thread-safe: many connection threads Append, one drainer reads.
class Spool {
 public:
  // Opens (and replays) the spool directory: leftover *.tmp files are deleted, *.batch files are
  // queued in sequence order.
  static StatusOr<std::unique_ptr<Spool>> Open(SpoolOptions options, metrics::Registry* registry);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Durably stores one serialized RecordBatch (the caller checked it: CheckRecordBatch) and returns its sequence number. kResourceExhausted when the spool
  // would exceed max_bytes (push back: nothing was stored); kUnavailable on disk errors.
  StatusOr<uint64_t> Append(uint32_t agent_id, std::string_view records_wire);
  // The same for a parsed batch (serialized first).
  StatusOr<uint64_t> Append(uint32_t agent_id, const agent::v1::RecordBatch& records);

  // Blocks until at least `min_bytes` are spooled, or the oldest entry waited `max_delay`, or
  // `deadline` passes, or Wake() is called. Returns true when entries are ready to read.
  bool WaitReady(uint64_t min_bytes, std::chrono::milliseconds max_delay,
                 std::chrono::steady_clock::time_point deadline);
  // Reads the oldest entries (at most max_files and about max_bytes; at least one when any).
  std::vector<SpoolEntry> ReadOldest(size_t max_files, uint64_t max_bytes);
  // Deletes entries whose records are stored.
  void Remove(std::span<const uint64_t> seqs);
  // Moves entries storage keeps rejecting to dir/quarantine/ (kept for an operator, not retried).
  void Quarantine(std::span<const uint64_t> seqs);
  // Wakes a WaitReady caller (shutdown).
  void Wake();

  uint64_t bytes() const;
  size_t files() const;
  uint64_t max_bytes() const { return options_.max_bytes; }

 private:
  Spool(SpoolOptions options, metrics::Registry* registry);
  Status Replay();
  std::string PathFor(uint64_t seq) const;
  void UpdateGauges();  // requires mu_

  struct Committed {
    uint64_t bytes;
    std::chrono::steady_clock::time_point at;
  };

  const SpoolOptions options_;
  int dir_fd_ = -1;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_seq_ = 1;
  uint64_t committed_bytes_ = 0;
  uint64_t reserved_bytes_ = 0;  // appends in flight
  bool woken_ = false;
  std::map<uint64_t, Committed> entries_;
  struct FreeFile {
    std::string path;
    uint64_t bytes;
  };
  std::vector<FreeFile> free_files_;  // removed batches' files, reused by Append
  uint64_t free_bytes_ = 0;           // their sizes (disk the spool holds beyond its bound)
  uint64_t next_free_ = 1;            // numbers the free files

  metrics::Gauge* bytes_gauge_;
  metrics::Gauge* files_gauge_;
  metrics::Counter* full_rejections_;
  metrics::Counter* quarantined_;
  metrics::Counter* replayed_;
};

}  // namespace sonde::server::ingest
