// ClickHouseStorage: per-table RowBinary buffers, one INSERT each, and retention by partition.
#include "server/storage/clickhouse/clickhouse_storage.h"

#include <cstring>
#include <ctime>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace sonde::server::storage::clickhouse {

namespace {

const schema::Table* TableFor(std::string_view database, std::string_view family, uint32_t granularity_s) {
  for (const auto& t : schema::AllTables()) {
    if (t.database == database && t.granularity_s == granularity_s && t.name.size() > family.size() &&
        t.name.substr(0, family.size()) == family && t.name[family.size()] == '_') {
      return &t;
    }
  }
  return nullptr;
}

std::string FullName(const schema::Table& t) { return fmt::format("{}.{}", t.database, t.name); }

// YYYYMMDD of a UTC time.
uint32_t Yyyymmdd(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  return static_cast<uint32_t>((tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday);
}

std::string SqlString(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "'";
}

constexpr size_t kCacheLineBytes = 64;

struct TableBuffer {
  std::string* rows = nullptr;  // one of ClickHouseStorage::row_buffers_
  uint64_t count = 0;
};

}  // namespace

ClickHouseStorage::ClickHouseStorage(const ClickHouseClient* client, metrics::Registry* registry)
    : client_(client),
      registry_(registry),
      write_seconds_(registry->GetHistogram("sonde_server_clickhouse_write_seconds",
                                            "Latency of one INSERT into ClickHouse",
                                            {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})),
      partitions_dropped_(registry->GetCounter("sonde_server_retention_partitions_dropped_total",
                                               "Partitions dropped because they passed their table's retention")) {}

void ClickHouseStorage::SetTagger(RecordTagger* tagger) {
  std::lock_guard lock(write_mu_);
  tagger_ = tagger;
  wire_encoder_.SetTagColumns(tagger != nullptr ? tagger->Columns() : std::vector<std::string>{});
}

Status ClickHouseStorage::ApplySchema() {
  for (std::string_view sql : schema::CreateDatabaseSql()) {
    SONDE_RETURN_IF_ERROR(client_->Execute(sql).status());
  }
  for (const auto& t : schema::AllTables()) {
    SONDE_RETURN_IF_ERROR(client_->Execute(t.create_sql).status());
    // Tables created by an older schema get the columns added since (additive changes only).
    SONDE_ASSIGN_OR_RETURN(QueryResult existing,
                           client_->Query(fmt::format("SELECT name FROM system.columns WHERE database = {} AND "
                                                      "table = {}",
                                                      SqlString(t.database), SqlString(t.name))));
    std::set<std::string> have;
    for (const auto& row : existing.rows) have.insert(row[0].get<std::string>());
    std::string_view previous;
    for (const auto& c : t.columns) {
      if (!have.count(std::string(c.name))) {
        std::string where = previous.empty() ? "FIRST" : fmt::format("AFTER `{}`", previous);
        if (previous.empty()) where.clear();  // 18.16 has no FIRST; appending is fine
        spdlog::info("adding column {}.{}.{} {}", t.database, t.name, c.name, c.clickhouse_type);
        SONDE_RETURN_IF_ERROR(client_
                                  ->Execute(fmt::format("ALTER TABLE {}.{} ADD COLUMN `{}` {} {}", t.database,
                                                        t.name, c.name, c.clickhouse_type, where))
                                  .status());
      }
      previous = c.name;
    }
  }
  return Status::Ok();
}

Status ClickHouseStorage::Write(std::span<const AgentBatch> batches, WriteProgress* progress) {
  std::lock_guard lock(write_mu_);
  std::map<const schema::Table*, TableBuffer> buffers;
  EncodeStats stats;
  uint64_t dropped_granularity = 0;
  uint64_t skipped_processes = 0;
  static const schema::Table* const kL7 = schema::FindTable("flow_log", "l7_request_log");
  static const schema::Table* const kL4 = schema::FindTable("flow_log", "l4_flow_log");
  SONDE_CHECK(kL7 != nullptr && kL4 != nullptr);

  const size_t tag_width = tagger_ != nullptr ? tagger_->Columns().size() : 0;
  static const google::protobuf::Descriptor* const kDescriptors[4] = {
      agent::v1::L7RequestLog::descriptor(), agent::v1::L4FlowLog::descriptor(),
      agent::v1::NetworkMetric::descriptor(), agent::v1::ApplicationMetric::descriptor()};
  static const uint32_t kGranularityField[4] = {
      0, 0, static_cast<uint32_t>(agent::v1::NetworkMetric::descriptor()->FindFieldByName("granularity_s")->number()),
      static_cast<uint32_t>(agent::v1::ApplicationMetric::descriptor()->FindFieldByName("granularity_s")->number())};
  static const char* const kFamilies[4] = {"", "", "network", "application"};
  uint64_t malformed = 0;
  const schema::Table* last_table = nullptr;
  TableBuffer* last_buffer = nullptr;  // std::map nodes do not move
  for (size_t batch_index = 0; batch_index < batches.size(); ++batch_index) {
    const AgentBatch& batch = batches[batch_index];
    // Rows are always encoded from wire bytes: the spool's, or the parsed records serialized.
    std::string_view wire = batch.wire;
    if (wire.empty()) {
      serialized_.clear();
      if (!batch.records.AppendToString(&serialized_)) return InternalError("cannot serialize a batch");
      wire = serialized_;
    }
    if (!SplitRecordBatch(wire, &split_)) {
      return InvalidArgumentError(fmt::format("malformed RecordBatch bytes from agent {}", batch.agent_id));
    }
    const size_t records = split_.RecordCount();
    // The spool's batches were read long before they are written (cold in cache). While this
    // batch is encoded, the next one's bytes are fetched a few lines per record, so that its
    // split and its encoding find them in cache instead of waiting on memory.
    const char* prefetch_at = nullptr;
    const char* prefetch_end = nullptr;
    size_t prefetch_step = 0;
    if (batch_index + 1 < batches.size() && records != 0) {
      const std::string& next = batches[batch_index + 1].wire;
      prefetch_at = next.data();
      prefetch_end = next.data() + next.size();
      prefetch_step = (next.size() / records + 2 * kCacheLineBytes - 1) / kCacheLineBytes * kCacheLineBytes;
    }
    // Tagging reads each record's sides; the encoder reads them in its own pass over the record,
    // writes the rows with tag ids 0 and says where they are, and the ids are written there once
    // the tagger has them (one pass over the wire bytes instead of two).
    if (tagger_ != nullptr) {
      sides_.assign(records * 2, ZeroSide());
      tag_offsets_.assign(records * tag_width, std::numeric_limits<size_t>::max());
      row_buffer_of_.assign(records, nullptr);
    }
    size_t record_index = 0;  // in the tagger's record order
    for (size_t kind = 0; kind < 4; ++kind) {
      for (std::string_view m : split_.records[kind]) {
        if (prefetch_at < prefetch_end) {
          for (size_t at = 0; at < prefetch_step; at += kCacheLineBytes) __builtin_prefetch(prefetch_at + at);
          prefetch_at += prefetch_step;
        }
        const schema::Table* table = kind == kL7RequestLogs ? kL7 : kind == kL4FlowLogs ? kL4 : nullptr;
        if (table == nullptr) {
          const uint64_t g = ReadVarintField(m, kGranularityField[kind], 0);
          table = TableFor("flow_metrics", kFamilies[kind], static_cast<uint32_t>(g));
          if (table == nullptr) {
            ++dropped_granularity;
            if (tagger_ != nullptr) {  // not stored, but tagged all the same (as ExtractSides sees it)
              read_sides_.clear();
              AppendWireSides(kind, m, &read_sides_);
              sides_[record_index * 2] = read_sides_[0];
              sides_[record_index * 2 + 1] = read_sides_[1];
            }
            ++record_index;
            continue;
          }
        }
        if (table != last_table) {  // one map lookup per run of same-table records, not per row
          last_table = table;
          last_buffer = &buffers[table];
          if (last_buffer->rows == nullptr) {
            last_buffer->rows = &row_buffers_[table];
            last_buffer->rows->clear();
          }
        }
        TableBuffer& b = *last_buffer;
        const ServerColumns server{batch.agent_id, nullptr};
        WireRowEncoder::RowTaps taps;
        if (tagger_ != nullptr) {
          taps.sides = sides_.data() + record_index * 2;
          taps.tag_offsets = tag_offsets_.data() + record_index * tag_width;
          row_buffer_of_[record_index] = b.rows;
        }
        ++record_index;
        Status s = wire_encoder_.AppendRow(*table, kDescriptors[kind], m, server, b.rows, &stats, taps);
        if (s.code() == StatusCode::kInvalidArgument) {
          // Not protobuf (the ingest server checks every record, so only a damaged spool file
          // gets here): that row is dropped and counted, the others are stored.
          ++malformed;
          continue;
        }
        SONDE_RETURN_IF_ERROR(s);
        ++b.count;
      }
    }
    if (tagger_ != nullptr) {
      tag_ids_.clear();
      SONDE_RETURN_IF_ERROR(tagger_->TagSides(batch, sides_, &tag_ids_));
      if (tag_ids_.size() != records * tag_width) {
        return InternalError(fmt::format("tagger returned {} ids for {} records", tag_ids_.size(), records));
      }
      for (size_t i = 0; i < records; ++i) {
        std::string* rows = row_buffer_of_[i];
        if (rows == nullptr) continue;
        for (size_t t = 0; t < tag_width; ++t) {
          const size_t at = tag_offsets_[i * tag_width + t];
          if (at == std::numeric_limits<size_t>::max()) continue;
          const uint32_t id = tag_ids_[i * tag_width + t];
          char le[4] = {static_cast<char>(id & 0xff), static_cast<char>((id >> 8) & 0xff),
                        static_cast<char>((id >> 16) & 0xff), static_cast<char>(id >> 24)};
          std::memcpy(rows->data() + at, le, 4);
        }
      }
    }
    skipped_processes += split_.processes.size();
  }
  // Counted once per batch set: a retry re-encodes but skips this on tables already done.
  if (progress->empty()) {
    if (dropped_granularity) {
      registry_->GetCounter("sonde_server_records_dropped_total", "Records the server could not store",
                            {{"table", "metrics"}, {"reason", "bad_granularity"}})
          ->Inc(dropped_granularity);
    }
    if (malformed) {
      registry_->GetCounter("sonde_server_records_dropped_total", "Records the server could not store",
                            {{"table", "any"}, {"reason", "malformed"}})
          ->Inc(malformed);
    }
    if (skipped_processes) {
      registry_->GetCounter("sonde_server_records_unstored_total", "Records with no table (used for tagging only)",
                            {{"type", "process"}})
          ->Inc(skipped_processes);
    }
    if (stats.unknown_enum_values) {
      registry_->GetCounter("sonde_server_encode_fixups_total", "Values changed to fit their column",
                            {{"kind", "unknown_enum"}})
          ->Inc(stats.unknown_enum_values);
    }
    if (stats.truncated_values) {
      registry_->GetCounter("sonde_server_encode_fixups_total", "Values changed to fit their column",
                            {{"kind", "truncated"}})
          ->Inc(stats.truncated_values);
    }
  }

  Status first_error;
  for (auto& [table, buffer] : buffers) {
    const std::string name = FullName(*table);
    if (progress->count(name)) continue;
    const auto start = std::chrono::steady_clock::now();
    Status s = client_->InsertRowBinary(table->database, table->name, RowBinaryEncoder::ColumnList(*table),
                                        *buffer.rows);
    write_seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!s.ok()) {
      registry_->GetCounter("sonde_server_clickhouse_write_errors_total", "Failed INSERTs", {{"table", name}})->Inc();
      if (first_error.ok()) first_error = Status(s.code(), fmt::format("insert into {}: {}", name, s.message()));
      continue;
    }
    progress->insert(name);
    registry_->GetCounter("sonde_server_records_written_total", "Records stored in ClickHouse", {{"table", name}})
        ->Inc(buffer.count);
  }
  return first_error;
}

StatusOr<uint32_t> ClickHouseStorage::DropExpiredPartitions(std::chrono::system_clock::time_point now) {
  uint32_t dropped = 0;
  const std::time_t now_s = std::chrono::system_clock::to_time_t(now);
  for (const auto& t : schema::AllTables()) {
    if (t.retention_days == 0 || t.partition_by != "toYYYYMMDD(time)") continue;
    // Keep today and the previous retention_days - 1 days.
    const uint32_t cutoff = Yyyymmdd(now_s - static_cast<std::time_t>(t.retention_days) * 86400 + 86400);
    SONDE_ASSIGN_OR_RETURN(QueryResult parts,
                           client_->Query(fmt::format("SELECT DISTINCT partition FROM system.parts WHERE database = "
                                                      "{} AND table = {} AND active",
                                                      SqlString(t.database), SqlString(t.name))));
    for (const auto& row : parts.rows) {
      const std::string partition = row[0].get<std::string>();
      uint32_t day = 0;
      if (partition.size() != 8 || partition.find_first_not_of("0123456789") != std::string::npos) continue;
      day = static_cast<uint32_t>(std::stoul(partition));
      if (day >= cutoff) continue;
      SONDE_RETURN_IF_ERROR(
          client_->Execute(fmt::format("ALTER TABLE {}.{} DROP PARTITION {}", t.database, t.name, day)).status());
      spdlog::info("retention: dropped {}.{} partition {}", t.database, t.name, day);
      partitions_dropped_->Inc();
      ++dropped;
    }
  }
  return dropped;
}

}  // namespace sonde::server::storage::clickhouse
