// Encodes serialized record protobufs straight into ClickHouse RowBinary rows, without parsing
// them into messages: the fast path of RowBinaryEncoder (same output, byte for byte).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <google/protobuf/descriptor.h>

#include "common/base/status.h"
#include "schema/tables.h"
#include "server/storage/clickhouse/row_binary_encoder.h"

namespace sonde::server::storage::clickhouse {

// Walks the protobuf wire format of one record with CodedInputStream. Field numbers map to
// column slots through a plan computed once per (table, message type) from the descriptors;
// every column's encoding is decided at plan time, so a row costs one pass over the wire bytes
// plus one pass over the columns. Semantics equal RowBinaryEncoder's (proto3: last value of a
// field wins, unknown fields and fields with an unexpected wire type are skipped, integers are
// narrowed as protobuf's parser narrows them, then range-checked against the column).
// Not thread-safe (caches plans); use one per writer thread.
class WireRowEncoder {
 public:
  // Same contract as RowBinaryEncoder::SetTagColumns.
  void SetTagColumns(std::vector<std::string> names);

  // Appends one row of `table` built from `wire` (a serialized message of type `descriptor`).
  // kInternal for a column/field kind mismatch (as RowBinaryEncoder); kInvalidArgument for
  // malformed wire bytes, in which case *out is left unchanged.
  Status AppendRow(const schema::Table& table, const google::protobuf::Descriptor* descriptor,
                   std::string_view wire, const ServerColumns& server, std::string* out, EncodeStats* stats);

 private:
  enum class Source : uint8_t { kField, kAgentId, kTag, kDefault };
  // How a proto field's value is read off the wire (protobuf's own narrowing).
  enum class FieldKind : uint8_t { kInt32, kInt64, kUInt32, kUInt64, kBool, kEnum, kDouble, kFloat, kBytes };
  struct Slot {
    FieldKind kind = FieldKind::kInt64;
    uint8_t wire_type = 0;
  };
  struct ColumnStep {
    Source source = Source::kDefault;
    schema::ColumnType type = schema::ColumnType::kUInt8;
    int slot = -1;       // kField: index into Plan::slots
    int tag_index = -1;  // kTag
    std::string default_bytes;  // kDefault and unset fields
    int8_t enum_default = 0;
    uint64_t enum_known[4] = {0, 0, 0, 0};  // bit (v + 128) set when Enum8 value v is declared
  };
  struct Plan {
    std::vector<ColumnStep> steps;
    std::vector<Slot> slots;
    std::vector<int> slot_of_field;  // by field number; -1 = not a column
    size_t fixed_bytes = 0;          // upper bound of a row without its string bytes
    Status status;
  };
  // The value of one field; it belongs to the current row only when row == row_.
  struct Value {
    uint64_t bits = 0;  // integers (already narrowed), double bits, or float bits
    const char* data = nullptr;
    uint32_t size = 0;
    uint32_t row = 0;
  };

  const Plan& PlanFor(const schema::Table& table, const google::protobuf::Descriptor* descriptor);

  std::map<std::pair<const schema::Table*, const google::protobuf::Descriptor*>, Plan> plans_;
  std::vector<std::string> tag_columns_;
  std::vector<Value> values_;  // scratch, one per slot, reused across rows without clearing
  uint32_t row_ = 0;           // rows encoded so far (mod 2^32); 0 is never a current row
};

}  // namespace sonde::server::storage::clickhouse
