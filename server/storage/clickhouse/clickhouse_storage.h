// StorageBackend on ClickHouse: schema from the catalog, RowBinary inserts, partition retention.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/metrics/registry.h"
#include "server/storage/clickhouse/clickhouse_client.h"
#include "server/storage/clickhouse/row_binary_encoder.h"
#include "server/storage/clickhouse/wire_row_encoder.h"
#include "server/storage/record_batch_wire.h"
#include "server/storage/record_tagger.h"
#include "server/storage/storage_backend.h"

namespace sonde::server::storage::clickhouse {

// Routes each record type to its table (metrics by granularity_s: 1 -> *_1s, 60 -> *_1m; other
// granularities are dropped and counted), encodes rows with WireRowEncoder from the batch's wire
// bytes (batches without them are serialized first; records are never parsed here) and sends one
// INSERT per table. With a RecordTagger the server tag columns (host_id_0, pod_id_1, ...) of
// every row come from it; ProcessInfo records have no table and only feed the tagger (counted).
// Write() may be called from one thread at a time; ApplySchema/DropExpiredPartitions from any.
class ClickHouseStorage : public StorageBackend {
 public:
  // `client` and `registry` must outlive this object.
  ClickHouseStorage(const ClickHouseClient* client, metrics::Registry* registry);

  // Fills the tag id columns of every row from now on; `tagger` must outlive this object. Call
  // before the first Write.
  void SetTagger(RecordTagger* tagger);

  Status ApplySchema() override;
  Status Write(std::span<const AgentBatch> batches, WriteProgress* progress) override;
  StatusOr<uint32_t> DropExpiredPartitions(std::chrono::system_clock::time_point now) override;

 private:
  const ClickHouseClient* client_;
  metrics::Registry* registry_;
  std::mutex write_mu_;
  WireRowEncoder wire_encoder_;
  RecordBatchWire split_;    // scratch: records of one batch per kind
  std::string serialized_;   // scratch: a batch without wire bytes, serialized
  RecordTagger* tagger_ = nullptr;
  std::vector<uint32_t> tag_ids_;  // scratch of Write, reused
  std::vector<RecordSide> sides_;             // scratch: two per record of the batch being written
  std::vector<RecordSide> read_sides_;        // scratch: sides of a record with no table
  std::vector<size_t> tag_offsets_;           // scratch: per record and tag column, in its table's rows
  std::vector<std::string*> row_buffer_of_;   // scratch: per record, the rows it went to (null: none)
  // RowBinary of each table, kept between writes so that their capacity is reused (regrowing
  // tens of MiB per write costs more page faults and copies than encoding the rows).
  std::map<const schema::Table*, std::string> row_buffers_;
  metrics::Histogram* write_seconds_;
  metrics::Counter* partitions_dropped_;
};

}  // namespace sonde::server::storage::clickhouse
