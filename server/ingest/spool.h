// Durable on-disk spool of accepted agent batches: appended to a segment file and fdatasynced
// before the Ack, deleted only after the storage write succeeded, replayed after a restart.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
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
  std::string dir;                   // created when missing; holds segment files
  uint64_t max_bytes = 1ull << 30;   // Append fails with kResourceExhausted beyond this
  bool fsync = true;                 // off only in tests that measure nothing about durability
  uint64_t segment_bytes = 0;        // a segment is closed beyond this; 0: max_bytes / 16 in [64 KiB, 64 MiB]
};

// One spooled batch read back for writing.
struct SpoolEntry {
  uint64_t seq = 0;
  uint64_t bytes = 0;  // bytes it holds in the spool (record header included)
  uint64_t records = 0;
  storage::AgentBatch batch;  // `wire` set: records are not parsed (see AgentBatch)
};

// On disk (little endian), dir/<id>.seg segment files:
//   segment header (24 B): "SSG2" | first_seq u64 | 8 zero bytes | crc32c of the previous 20 B
//   records, each: header (32 B) "SSR2" | kind u32 (1 batch, 2 end) | seq u64 | agent_id u32 |
//                  payload_bytes u32 | payload checksum u32 | crc32c of the previous 28 B
//                  then the payload (the agent's RecordBatch bytes)
//   an end record (kind 2, seq = the next one, no payload) after the last batch.
// Appends of concurrent connections are written together (one pwritev over the end record of the
// previous group, then one fdatasync: group commit); each Append returns once its batch is durable.
// Segments whose batches are all removed are reused in place (no inode, no directory update, no
// metadata journal commit per batch); their stale content is told apart by sequence numbers (a
// batch is valid only when seq >= the segment's first_seq and above the previous one). dir/head
// holds the lowest sequence number not yet removed (written without fsync on Remove: a power loss
// may replay, never lose, removed batches). Replay stops a segment at its end record; a damaged
// batch (bad checksum) is skipped by its length, damaged headers by scanning to the next valid
// one, and a tail without an end record (an append torn by a crash) is counted
// (sonde_server_spool_corrupt_total). Spools of the previous file-per-batch format (<seq>.batch,
// "SSP1" header) are replayed and their files deleted once stored. Thread-safe: many connection
// threads Append, one drainer reads.
class Spool {
 public:
  static constexpr size_t kRecordHeaderBytes = 32;
  static constexpr size_t kSegmentHeaderBytes = 24;

  // Opens (and replays) the spool directory.
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
  // Moves entries storage keeps rejecting to dir/quarantine/<seq>.batch ("SSP1" format, kept for an
  // operator, not retried).
  void Quarantine(std::span<const uint64_t> seqs);
  // Wakes a WaitReady caller (shutdown).
  void Wake();

  uint64_t bytes() const;
  size_t files() const;  // batches waiting (the name predates segments)
  uint64_t max_bytes() const { return options_.max_bytes; }
  size_t segment_files() const;  // segment files held, free ones included

 private:
  struct Segment {
    uint64_t id = 0;
    std::string path;
    int fd = -1;
    uint64_t first_seq = 0;
    uint64_t end_offset = 0;  // where the end record is (the next group goes there)
    uint64_t file_bytes = 0;  // size on disk
    uint64_t live = 0;        // batches not yet removed
    bool broken = false;      // a write failed: never appended to again, deleted when empty
  };
  struct Committed {
    uint64_t bytes;
    std::chrono::steady_clock::time_point at;
    Segment* segment;  // nullptr: a file of the previous format, PathFor(seq)
    uint64_t offset;   // of the payload in the segment
    uint32_t payload_bytes;
    uint32_t agent_id;
    uint32_t check;
  };
  struct PendingAppend;

  Spool(SpoolOptions options, metrics::Registry* registry);
  Status Replay();
  Status ReplaySegment(const std::string& path, uint64_t id, uint64_t head, uint64_t* max_seq);
  // Leader of a group commit: writes `group` (mu_ not held) after the segment's last batch.
  Status WriteGroup(std::span<PendingAppend* const> group, Segment* segment, bool fresh_header,
                    uint64_t offset);
  StatusOr<Segment*> NewSegment();  // mu_ not held; the leader only
  void Release(Segment* segment);   // requires mu_: the segment has no live batch left
  void RemoveLocked(uint64_t seq, bool quarantine);  // requires mu_
  void WriteHead();                  // requires mu_
  std::string PathFor(uint64_t seq) const;
  bool ReadPayload(uint64_t seq, const Committed& c, std::string* payload, uint32_t* agent_id) const;
  void UpdateGauges();  // requires mu_

  const SpoolOptions options_;
  const uint64_t segment_bytes_;
  int dir_fd_ = -1;
  int head_fd_ = -1;
  mutable std::mutex mu_;
  std::condition_variable cv_;        // entries committed (WaitReady)
  std::condition_variable write_cv_;  // a group was written
  uint64_t next_seq_ = 1;
  uint64_t committed_bytes_ = 0;
  uint64_t reserved_bytes_ = 0;  // appends in flight
  bool woken_ = false;
  std::map<uint64_t, Committed> entries_;
  std::set<uint64_t> in_flight_;          // sequence numbers of appends not yet committed
  std::vector<PendingAppend*> pending_;   // appends waiting for a leader
  bool writing_ = false;                  // a leader is writing a group
  std::map<uint64_t, std::unique_ptr<Segment>> segments_;  // by id
  Segment* active_ = nullptr;
  std::vector<Segment*> free_segments_;
  uint64_t next_segment_id_ = 1;
  uint64_t written_head_ = 0;

  metrics::Gauge* bytes_gauge_;
  metrics::Gauge* files_gauge_;
  metrics::Counter* full_rejections_;
  metrics::Counter* quarantined_;
  metrics::Counter* replayed_;
  metrics::Counter* corrupt_;
};

}  // namespace sonde::server::ingest
