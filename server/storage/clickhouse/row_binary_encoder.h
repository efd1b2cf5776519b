// Encodes record protobufs as ClickHouse RowBinary rows of a schema catalog table.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include "common/base/status.h"
#include "schema/tables.h"

namespace sonde::server::storage::clickhouse {

// Values of the columns the server fills (schema `source: server`). Columns not listed here
// are written as zero / empty.
struct ServerColumns {
  uint32_t agent_id = 0;
  // One value per name of RowBinaryEncoder::SetTagColumns, in that order; nullptr = all zero.
  const uint32_t* tag_ids = nullptr;
};

// Per-row encoding problems that did not stop the row (counted by the caller).
struct EncodeStats {
  uint64_t unknown_enum_values = 0;  // written as the enum's "unknown" (or zero) value
  uint64_t truncated_values = 0;     // integer wider than its column, or IPv6 longer than 16 bytes
};

// Maps proto fields to table columns by name (proto field names == column names), once per
// (table, message type), then appends rows with protobuf reflection:
//   UIntN/IntN/DateTime/IPv4 little endian of the field's integer value (IPv4 is host order);
//   Enum8 one signed byte, validated against the schema enum; IPv6 FixedString(16) zero padded;
//   String varint length + bytes; Float64 little endian IEEE.
// Not thread-safe (caches plans); use one per writer thread.
class RowBinaryEncoder {
 public:
  // Appends one row of `table` built from `record` to *out. Fails only when a column and its
  // proto field have incompatible kinds (a contract bug: schema_test should have caught it).
  Status AppendRow(const schema::Table& table, const google::protobuf::Message& record,
                   const ServerColumns& server, std::string* out, EncodeStats* stats);

  // "`a`, `b`, ..." in table order: the column list of the matching INSERT.
  static std::string ColumnList(const schema::Table& table);

  // Names of the UInt32 server columns ServerColumns::tag_ids carries (see RecordTagger). Call
  // before the first AppendRow; table columns with these names take their value from tag_ids.
  void SetTagColumns(std::vector<std::string> names);

 private:
  struct Step {
    const google::protobuf::FieldDescriptor* field = nullptr;  // nullptr: server value or default
    int tag_index = -1;                                        // into ServerColumns::tag_ids
    bool agent_id = false;
  };
  struct Plan {
    std::vector<Step> steps;  // per column
    Status status;
  };
  const Plan& PlanFor(const schema::Table& table, const google::protobuf::Descriptor* descriptor);

  std::map<std::pair<const schema::Table*, const google::protobuf::Descriptor*>, Plan> plans_;
  std::vector<std::string> tag_columns_;
};

}  // namespace sonde::server::storage::clickhouse
