// StorageBackend: where accepted agent records end up (ClickHouse; a fake in tests).
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <span>
#include <string>

#include "common/base/status.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::server::storage {

// The records of one accepted agent Batch, tagged with the agent the server assigned.
struct AgentBatch {
  uint32_t agent_id = 0;
  agent::v1::RecordBatch records;
  // The serialized RecordBatch, when the reader kept it (the spool does). When set it is the
  // authority: `records` then holds only its `processes` (parsed: few, and the tagger needs them);
  // L7/L4/metric records are read from these bytes (record_batch_wire.h) and never parsed.
  // Empty: everything is in `records`.
  std::string wire;
};

// Names ("db.table") of the tables a multi-table Write already stored, so a retry of the same
// batches skips them instead of duplicating their rows.
using WriteProgress = std::set<std::string>;

class StorageBackend {
 public:
  virtual ~StorageBackend() = default;

  // Creates databases and tables (idempotent; adds columns that newer schemas introduced).
  virtual Status ApplySchema() = 0;

  // Stores every record of `batches`, grouped into one write per table. On error some tables may
  // already be stored (listed in *progress): the caller retries later with the same batches and the
  // same *progress. kUnavailable/kDeadlineExceeded are transient; other codes mean the data or the
  // schema is wrong and retrying may not help.
  virtual Status Write(std::span<const AgentBatch> batches, WriteProgress* progress) = 0;

  // Drops whole partitions older than each table's retention. Returns how many were dropped.
  virtual StatusOr<uint32_t> DropExpiredPartitions(std::chrono::system_clock::time_point now) = 0;
};

}  // namespace sonde::server::storage
