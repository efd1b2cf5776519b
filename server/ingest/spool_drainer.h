// Drains the spool into the StorageBackend in order, in large writes, retrying with backoff.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <thread>
#include <vector>

#include "common/metrics/registry.h"
#include "server/ingest/spool.h"
#include "server/storage/storage_backend.h"

namespace sonde::server::ingest {

struct SpoolDrainerOptions {
  // A write starts when this many bytes are spooled or the oldest batch waited flush_interval.
  uint64_t flush_bytes = 8ull << 20;
  std::chrono::milliseconds flush_interval{1000};
  size_t max_files_per_write = 512;
  uint64_t max_bytes_per_write = 32ull << 20;
  std::chrono::milliseconds backoff_min{100};
  std::chrono::milliseconds backoff_max{5000};
  // Non-transient failures (ClickHouse rejects the data) allowed before the set is split to find
  // the batches storage rejects on their own, which are quarantined so they stop blocking the
  // spool (the others are stored). Transient failures (ClickHouse down) retry forever.
  uint32_t max_rejections = 10;
};

// One thread: WaitReady -> ReadOldest -> backend Write (with WriteProgress across retries) ->
// Remove. Files are deleted only after a successful write, so a crash replays them (at-least-once).
class SpoolDrainer {
 public:
  // `spool`, `backend` and `registry` must outlive this object.
  SpoolDrainer(Spool* spool, storage::StorageBackend* backend, SpoolDrainerOptions options,
               metrics::Registry* registry);
  ~SpoolDrainer();

  void Start();
  // Keeps writing until the spool is empty or `drain` passed, then stops. What is left stays
  // on disk for the next start. Returns true when the spool was emptied.
  bool Stop(std::chrono::milliseconds drain);

  // Consecutive failed writes of the current set (0 while healthy).
  uint32_t consecutive_failures() const { return consecutive_failures_.load(); }

 private:
  void Loop();
  enum class Outcome { kStored, kRejected, kStopping };
  // Writes one set of entries until it is stored (or its rejected batches quarantined), or we
  // must stop.
  void WriteSet(std::vector<SpoolEntry>& entries);
  // Writes `batches` until stored, rejected `max_rejections` times (non-transient errors; the
  // schema is applied again between them when `reapply_schema`), or stopping past the deadline.
  // Transient errors retry with backoff.
  Outcome Attempt(std::span<const storage::AgentBatch> batches, storage::WriteProgress* progress,
                  uint32_t max_rejections, bool reapply_schema);
  // `entries` (with their `batches`) were rejected together: writes each half on its own,
  // recursing into rejected halves, and quarantines single batches that are rejected.
  void Isolate(std::span<const SpoolEntry> entries, std::span<const storage::AgentBatch> batches,
               const storage::WriteProgress& progress);
  // Removes stored entries from the spool.
  void Stored(std::span<const SpoolEntry> entries);

  Spool* spool_;
  storage::StorageBackend* backend_;
  const SpoolDrainerOptions options_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> running_{false};
  std::atomic<int64_t> drain_deadline_ns_{0};
  std::atomic<uint32_t> consecutive_failures_{0};
  std::thread thread_;
  Status last_rejection_;  // the drainer thread's

  metrics::Counter* batches_written_;
  metrics::Counter* write_failures_;
  metrics::Counter* records_quarantined_;
  metrics::Gauge* failing_gauge_;
};

}  // namespace sonde::server::ingest
