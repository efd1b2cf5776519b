// Fuzzes the server's RecordBatch wire readers (split, protobuf-equivalent check, sides for the
// tagger, RowBinary encoding of every record) on arbitrary bytes. Beyond not crashing, the check
// must agree with protobuf's parser and the readers with each other.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "schema/tables.h"
#include "server/storage/clickhouse/wire_row_encoder.h"
#include "server/storage/record_batch_wire.h"
#include "server/storage/record_sides.h"
#include "sonde/agent/v1/records.pb.h"

using namespace sonde::server::storage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  RecordBatchWire checked, split;
  const bool ok_check = CheckRecordBatch(bytes, &checked);
  const bool ok_split = SplitRecordBatch(bytes, &split);
  sonde::agent::v1::RecordBatch parsed;
  if (parsed.ParseFromArray(data, static_cast<int>(size)) != ok_check) std::abort();
  if (ok_check && (!ok_split || split.RecordCount() != checked.RecordCount())) std::abort();

  AgentBatch batch;
  batch.wire.assign(bytes);
  std::vector<RecordSide> sides;
  const bool ok_sides = !batch.wire.empty() ? ExtractSides(batch, &sides).ok() : true;
  if (!batch.wire.empty() && ok_sides != ok_split) std::abort();
  if (ok_split && !batch.wire.empty() && sides.size() != 2 * split.RecordCount()) std::abort();
  if (!ok_split) return 0;

  static const sonde::schema::Table* const kTables[4] = {
      sonde::schema::FindTable("flow_log", "l7_request_log"), sonde::schema::FindTable("flow_log", "l4_flow_log"),
      sonde::schema::FindTable("flow_metrics", "network_1s"),
      sonde::schema::FindTable("flow_metrics", "application_1s")};
  static const google::protobuf::Descriptor* const kDescriptors[4] = {
      sonde::agent::v1::L7RequestLog::descriptor(), sonde::agent::v1::L4FlowLog::descriptor(),
      sonde::agent::v1::NetworkMetric::descriptor(), sonde::agent::v1::ApplicationMetric::descriptor()};
  clickhouse::WireRowEncoder encoder;
  clickhouse::EncodeStats stats;
  std::string rows;
  for (size_t k = 0; k < 4; ++k) {
    if (kTables[k] == nullptr) continue;
    for (std::string_view record : split.records[k]) {
      const size_t before = rows.size();
      auto s = encoder.AppendRow(*kTables[k], kDescriptors[k], record, {1, nullptr}, &rows, &stats);
      // A record protobuf accepts is always encodable; a rejected one leaves no output.
      if (ok_check && !s.ok()) std::abort();
      if (!s.ok() && rows.size() != before) std::abort();
      (void)ReadVarintField(record, 1, 0);
    }
  }
  return 0;
}
