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
#include "server/storage/record_sides.h"

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

  // Optional outputs for a caller that tags rows after encoding them (ClickHouseStorage::Write):
  // the one pass over the wire bytes also yields what tagging reads.
  struct RowTaps {
    // [2]: the record's client and server side, exactly as storage::AppendWireSides reads them
    // (zero sides when the record is malformed). Descriptors other than the four record types
    // give zero sides.
    RecordSide* sides = nullptr;
    // [tag columns]: offset in *out of each tag column's 4 bytes (written from ServerColumns),
    // SIZE_MAX when the table has no such column or no row was written.
    size_t* tag_offsets = nullptr;
  };
  Status AppendRow(const schema::Table& table, const google::protobuf::Descriptor* descriptor,
                   std::string_view wire, const ServerColumns& server, std::string* out, EncodeStats* stats,
                   const RowTaps& taps);

 private:
  enum class Source : uint8_t { kField, kAgentId, kTag, kDefault };
  // How a proto field's value is read off the wire (protobuf's own narrowing).
  enum class FieldKind : uint8_t { kInt32, kInt64, kUInt32, kUInt64, kBool, kEnum, kDouble, kFloat, kBytes };
  struct Slot {
    FieldKind kind = FieldKind::kInt64;
    uint8_t wire_type = 0;
  };
  // What pass 2 does for a column, decided at plan time (one switch per column).
  enum class Op : uint8_t { kAgentId, kTag, kDefault, kInteger, kEnum8, kFloat64, kFloat64FromFloat, kString, kIPv6 };
  // Pass 1's work for one field: store the value only (String columns, side-only fields), or
  // also write the column's bytes into the row image.
  enum class Action : uint8_t {
    kStoreVarint, kStoreBytes, kStoreFixed64, kStoreFixed32,
    kInt1, kInt2, kInt4, kInt8, kEnum8, kDouble, kFloat, kIPv6,
    // kInt* for a field whose every value fits the column (no range check, no stats to keep).
    kFit1, kFit2, kFit4, kFit8
  };
  struct ColumnStep {
    Op op = Op::kDefault;
    Source source = Source::kDefault;
    schema::ColumnType type = schema::ColumnType::kUInt8;
    int slot = -1;       // kField: index into Plan::slots
    int tag_index = -1;  // kTag
    std::string default_bytes;  // kDefault and unset fields
    int8_t enum_default = 0;
    uint64_t enum_known[4] = {0, 0, 0, 0};  // bit (v + 128) set when Enum8 value v is declared
    // Integer columns (fixed at plan time): bytes written, and the range a value must be in to
    // fit (as a signed value when the field is signed, else as an unsigned one).
    bool integer = false;
    bool signed_field = false;
    uint8_t width = 0;
    int64_t min_signed = 0, max_signed = 0;
    uint64_t max_unsigned = 0;
  };
  struct Plan {
    std::vector<ColumnStep> steps;
    std::vector<Slot> slots;
    std::vector<int> slot_of_field;  // by field number; -1 = not a column
    // The row as pass 2 writes it: every column that is not a String from a field has a fixed
    // width, so those columns live in an image (their bytes in column order) that starts as
    // default_image (every field unset), is patched in pass 1 as fields are read (by
    // slot_writes) and copied out in runs between the String columns (segments).
    struct SlotWrite {
      Op op = Op::kDefault;  // kDefault: not in the image (a String column or a side-only slot)
      uint8_t width = 0;     // kInteger: bytes written
      bool signed_field = false;
      bool zero_unknown = false;  // kEnum8: 0 is not a declared value (unset counts as unknown)
      int8_t enum_default = 0;
      uint32_t image_offset = 0;
      int64_t min_signed = 0, max_signed = 0;
      uint64_t max_unsigned = 0;
      uint64_t enum_known[4] = {0, 0, 0, 0};
    };
    std::vector<SlotWrite> slot_writes;  // by slot
    // Pass 1's lookup, by field number: everything reading and writing the field needs, with
    // the slot kind and column op folded into one action (one switch per field).
    struct FieldEntry {
      int32_t slot = -1;
      uint8_t wire_type = 0;
      Action action = Action::kStoreVarint;
      // Varints as protobuf narrows them: bits & mask, then sign-extended from 32 bits
      // (int32, enum) or turned into 0/1 (bool).
      bool sign32 = false;
      bool boolean = false;
      uint64_t mask = ~uint64_t{0};
      // The image write (Action::kInt*, kEnum8, kDouble, kFloat, kIPv6).
      uint32_t image_offset = 0;
      bool zero_unknown = false;
      int8_t enum_default = 0;
      // kInt*: a value fits its column when bits - lo <= span (mod 2^64): PutInt's range check.
      uint64_t lo = 0, span = 0;
      uint64_t enum_known[4] = {0, 0, 0, 0};
    };
    std::vector<FieldEntry> fields;
    // By key (field number << 3 | wire type): the index in `fields` of a field read with that
    // wire type, -1 for every other key (pass 1 then checks and skips the field).
    std::vector<int32_t> field_of_key;
    struct Segment {
      uint32_t image_offset = 0;  // fixed run: its bytes in the image
      uint32_t bytes = 0;
      int32_t string_slot = -1;   // >= 0: one String column read from this value (field number)
    };
    std::vector<Segment> segments;
    std::string default_image;
    std::vector<uint32_t> agent_id_offsets;  // in the image
    struct TagWrite {
      int tag_index = 0;
      uint32_t image_offset = 0;
      uint32_t segment = 0;
    };
    std::vector<TagWrite> tag_writes;
    uint32_t zero_unknown_enums = 0;  // kEnum8 columns counted unknown when unset
    size_t string_columns = 0;
    Status status;
    // RecordTaps::sides: the value (field number) of each side field (SideField order), -1
    // when the message has none; when a field cannot be read like record_sides reads it, sides
    // come from storage::AppendWireSides on the record instead (side_kind: its RecordBatchWire
    // kind).
    std::array<int, 8> side_slots{-1, -1, -1, -1, -1, -1, -1, -1};
    bool sides_from_values = true;
    size_t side_kind = 4;
  };
  // The value of one field; it belongs to the current row only when row == row_.
  struct Value {
    uint64_t bits = 0;  // integers (already narrowed), double bits, or float bits
    const char* data = nullptr;
    uint32_t size = 0;
    uint32_t row = 0;
    // What this occurrence added to EncodeStats (a later occurrence of the field takes it back).
    uint8_t truncated = 0;
    uint8_t unknown_enum = 0;
  };

  // Side fields, in Plan::side_slots order.
  static constexpr size_t kSideTime = 0, kSideIsIpv4 = 1, kSideIp4_0 = 2, kSideIp4_1 = 3, kSideIp6_0 = 4,
                          kSideIp6_1 = 5, kSidePid0 = 6, kSidePid1 = 7;

  const Plan& PlanFor(const schema::Table& table, const google::protobuf::Descriptor* descriptor);
  static void PlanSides(const google::protobuf::Descriptor* d, Plan* plan);
  // RowTaps::sides from the values pass 1 read (or from the wire bytes, see Plan).
  void ReadSides(const Plan& plan, std::string_view wire, RecordSide* sides) const;

  std::map<std::pair<const schema::Table*, const google::protobuf::Descriptor*>, Plan> plans_;
  // The plan of the previous row (rows come in runs of one table); map nodes never move.
  std::pair<const schema::Table*, const google::protobuf::Descriptor*> last_key_{nullptr, nullptr};
  const Plan* last_plan_ = nullptr;
  std::vector<std::string> tag_columns_;
  std::vector<Value> values_;  // scratch, one per field number, reused across rows without clearing
  std::string image_;          // scratch: the current row's fixed-width columns (Plan::default_image)
  std::vector<char> row_scratch_;       // scratch: the row being written
  std::vector<size_t> segment_starts_;  // scratch: where each segment went in *out
  uint32_t row_ = 0;           // rows encoded so far (mod 2^32); 0 is never a current row
};

}  // namespace sonde::server::storage::clickhouse
