// StorageBackend on ClickHouse: schema from the catalog, RowBinary inserts, partition retention.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "common/metrics/registry.h"
#include "server/storage/clickhouse/clickhouse_client.h"
#include "server/storage/clickhouse/row_binary_encoder.h"
#include "server/storage/storage_backend.h"

namespace sonde::server::storage::clickhouse {

// Routes each record type to its table (metrics by granularity_s: 1 -> *_1s, 60 -> *_1m; other
// granularities are dropped and counted), encodes rows with RowBinaryEncoder and sends one
// INSERT per table. ProcessInfo records have no table yet and are skipped (counted).
// Write() may be called from one thread at a time; ApplySchema/DropExpiredPartitions from any.
class ClickHouseStorage : public StorageBackend {
 public:
  // `client` and `registry` must outlive this object.
  ClickHouseStorage(const ClickHouseClient* client, metrics::Registry* registry);

  Status ApplySchema() override;
  Status Write(std::span<const AgentBatch> batches, WriteProgress* progress) override;
  StatusOr<uint32_t> DropExpiredPartitions(std::chrono::system_clock::time_point now) override;

 private:
  const ClickHouseClient* client_;
  metrics::Registry* registry_;
  std::mutex write_mu_;
  RowBinaryEncoder encoder_;
  metrics::Histogram* write_seconds_;
  metrics::Counter* partitions_dropped_;
};

}  // namespace sonde::server::storage::clickhouse
