// WireRowEncoder: protobuf wire bytes -> ClickHouse RowBinary through a per-table column plan.
#include "server/storage/clickhouse/wire_row_encoder.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <type_traits>

#include <fmt/format.h>

#include "server/storage/record_batch_wire.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::server::storage::clickhouse {

namespace {

using google::protobuf::FieldDescriptor;
using schema::ColumnType;

// Fixed bytes a column takes in RowBinary; strings take a varint (<= 10 bytes) plus their bytes.
size_t FixedWidth(ColumnType t) {
  switch (t) {
    case ColumnType::kUInt8: case ColumnType::kInt8: case ColumnType::kEnum8: return 1;
    case ColumnType::kUInt16: case ColumnType::kInt16: return 2;
    case ColumnType::kUInt32: case ColumnType::kInt32: case ColumnType::kDateTime: case ColumnType::kIPv4: return 4;
    case ColumnType::kUInt64: case ColumnType::kInt64: case ColumnType::kFloat64: return 8;
    case ColumnType::kString: return 10;
    case ColumnType::kIPv6: return 16;
  }
  return 16;
}

template <typename T>
char* PutLE(T v, char* p) {
  using U = std::make_unsigned_t<T>;
  U u = static_cast<U>(v);
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(p, &u, sizeof(U));
  } else {
    for (size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<char>((u >> (8 * i)) & 0xff);
  }
  return p + sizeof(U);
}

char* PutVarUInt(uint64_t v, char* p) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

int8_t DefaultEnumValue(const schema::Enum& e) {
  for (const auto& v : e.values) {
    if (v.name == "unknown") return v.value;
  }
  return e.values.empty() ? 0 : e.values.front().value;
}

std::string DefaultBytes(const schema::Column& c) {
  switch (c.type) {
    case ColumnType::kEnum8: return std::string(1, static_cast<char>(c.enumeration ? DefaultEnumValue(*c.enumeration) : 0));
    case ColumnType::kString: return std::string(1, '\0');
    default: return std::string(FixedWidth(c.type), '\0');
  }
}

}  // namespace

void WireRowEncoder::SetTagColumns(std::vector<std::string> names) {
  tag_columns_ = std::move(names);
  plans_.clear();
  last_key_ = {nullptr, nullptr};
  last_plan_ = nullptr;
}

void WireRowEncoder::PlanSides(const google::protobuf::Descriptor* d, Plan* plan) {
  const google::protobuf::Descriptor* kinds[4] = {
      agent::v1::L7RequestLog::descriptor(), agent::v1::L4FlowLog::descriptor(),
      agent::v1::NetworkMetric::descriptor(), agent::v1::ApplicationMetric::descriptor()};
  for (size_t k = 0; k < 4; ++k) {
    if (kinds[k] == d) plan->side_kind = k;
  }
  if (plan->side_kind == 4) {
    plan->sides_from_values = false;  // not a record: zero sides, as AppendWireSides gives
    return;
  }
  static constexpr const char* kSideFields[8] = {"time",  "is_ipv4", "ip4_0",        "ip4_1",
                                                 "ip6_0", "ip6_1",   "process_id_0", "process_id_1"};
  for (size_t i = 0; i < 8; ++i) {
    const FieldDescriptor* f = d->FindFieldByName(kSideFields[i]);
    // record_sides looks at field numbers below 64 only.
    if (f == nullptr || f->number() >= 64) continue;
    const bool bytes = i == kSideIp6_0 || i == kSideIp6_1;
    if (f->is_repeated()) {
      plan->sides_from_values = false;
      continue;
    }
    const size_t number = static_cast<size_t>(f->number());
    int index = number < plan->slot_of_field.size() ? plan->slot_of_field[number] : -1;
    if (index < 0) {  // not a column: a slot of its own, read in pass 1 and never written
      Slot slot;
      if (bytes && (f->type() == FieldDescriptor::TYPE_BYTES || f->type() == FieldDescriptor::TYPE_STRING)) {
        slot = {FieldKind::kBytes, 2};
      } else if (!bytes && f->type() == FieldDescriptor::TYPE_UINT32) {
        slot = {FieldKind::kUInt32, 0};
      } else {
        plan->sides_from_values = false;
        continue;
      }
      index = static_cast<int>(plan->slots.size());
      plan->slots.push_back(slot);
      if (plan->slot_of_field.size() <= number) plan->slot_of_field.resize(number + 1, -1);
      plan->slot_of_field[number] = index;
    } else {
      // record_sides reads varints' low 32 bits and length-delimited ip6 values.
      const FieldKind kind = plan->slots[static_cast<size_t>(index)].kind;
      const bool same = bytes ? kind == FieldKind::kBytes
                              : (kind == FieldKind::kInt32 || kind == FieldKind::kInt64 || kind == FieldKind::kUInt32 ||
                                 kind == FieldKind::kUInt64 || kind == FieldKind::kEnum);
      if (!same) {
        plan->sides_from_values = false;
        continue;
      }
    }
    plan->side_slots[i] = index;
  }
}

const WireRowEncoder::Plan& WireRowEncoder::PlanFor(const schema::Table& table,
                                                    const google::protobuf::Descriptor* d) {
  auto key = std::make_pair(&table, d);
  if (last_plan_ != nullptr && key == last_key_) return *last_plan_;
  auto it = plans_.find(key);
  if (it != plans_.end()) {
    last_key_ = key;
    last_plan_ = &it->second;
    return it->second;
  }
  Plan plan;
  for (const auto& c : table.columns) {
    ColumnStep step;
    step.type = c.type;
    step.default_bytes = DefaultBytes(c);
    if (c.type == ColumnType::kEnum8 && c.enumeration != nullptr) {
      step.enum_default = DefaultEnumValue(*c.enumeration);
      for (const auto& ev : c.enumeration->values) {
        const int bit = static_cast<int>(ev.value) + 128;
        if (bit >= 0 && bit < 256) step.enum_known[bit / 64] |= uint64_t{1} << (bit % 64);
      }
    }
    const FieldDescriptor* f = d->FindFieldByName(std::string(c.name));
    if (f != nullptr) {
      const bool is_string = f->cpp_type() == FieldDescriptor::CPPTYPE_STRING;
      const bool is_float = f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE || f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT;
      bool compatible = !f->is_repeated() && !f->is_map() && f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE;
      if (c.type == ColumnType::kString || c.type == ColumnType::kIPv6) {
        compatible = compatible && is_string;
      } else if (c.type == ColumnType::kFloat64) {
        compatible = compatible && is_float;
      } else {
        compatible = compatible && !is_string && !is_float;
      }
      Slot slot;
      switch (f->type()) {
        case FieldDescriptor::TYPE_INT32: slot = {FieldKind::kInt32, 0}; break;
        case FieldDescriptor::TYPE_INT64: slot = {FieldKind::kInt64, 0}; break;
        case FieldDescriptor::TYPE_UINT32: slot = {FieldKind::kUInt32, 0}; break;
        case FieldDescriptor::TYPE_UINT64: slot = {FieldKind::kUInt64, 0}; break;
        case FieldDescriptor::TYPE_BOOL: slot = {FieldKind::kBool, 0}; break;
        case FieldDescriptor::TYPE_ENUM: slot = {FieldKind::kEnum, 0}; break;
        case FieldDescriptor::TYPE_DOUBLE: slot = {FieldKind::kDouble, 1}; break;
        case FieldDescriptor::TYPE_FLOAT: slot = {FieldKind::kFloat, 5}; break;
        case FieldDescriptor::TYPE_STRING:
        case FieldDescriptor::TYPE_BYTES: slot = {FieldKind::kBytes, 2}; break;
        default: compatible = false; break;  // sint/fixed/sfixed: not used by records; add when needed
      }
      if (!compatible) {
        plan.status = InternalError(fmt::format("{}.{} column {} ({}) cannot come from proto field {}.{}",
                                                table.database, table.name, c.name, c.clickhouse_type,
                                                d->full_name(), f->name()));
      } else {
        step.source = Source::kField;
        step.slot = static_cast<int>(plan.slots.size());
        plan.slots.push_back(slot);
        const size_t number = static_cast<size_t>(f->number());
        if (plan.slot_of_field.size() <= number) plan.slot_of_field.resize(number + 1, -1);
        plan.slot_of_field[number] = step.slot;
      }
    } else if (c.server_side && c.type == ColumnType::kUInt32) {
      if (c.name == "agent_id") {
        step.source = Source::kAgentId;
      } else {
        for (size_t i = 0; i < tag_columns_.size(); ++i) {
          if (tag_columns_[i] == c.name) {
            step.source = Source::kTag;
            step.tag_index = static_cast<int>(i);
            break;
          }
        }
      }
    }
    plan.steps.push_back(std::move(step));
  }
  PlanSides(d, &plan);
  for (ColumnStep& step : plan.steps) {
    if (step.source != Source::kField) continue;
    const FieldKind kind = plan.slots[static_cast<size_t>(step.slot)].kind;
    step.signed_field = kind == FieldKind::kInt32 || kind == FieldKind::kInt64 || kind == FieldKind::kEnum;
    auto range = [&step]<typename T>(T) {
      step.integer = true;
      step.width = sizeof(T);
      // What RowBinaryEncoder's PutInt accepts without counting a truncation.
      step.min_signed = std::is_signed_v<T> ? static_cast<int64_t>(std::numeric_limits<T>::min()) : 0;
      step.max_signed = static_cast<int64_t>(std::min<uint64_t>(std::numeric_limits<T>::max(),
                                                                 std::numeric_limits<int64_t>::max()));
      step.max_unsigned = static_cast<uint64_t>(std::numeric_limits<T>::max());
    };
    switch (step.type) {
      case ColumnType::kUInt8: range(uint8_t{}); break;
      case ColumnType::kUInt16: range(uint16_t{}); break;
      case ColumnType::kUInt32: case ColumnType::kDateTime: case ColumnType::kIPv4: range(uint32_t{}); break;
      case ColumnType::kUInt64: range(uint64_t{}); break;
      case ColumnType::kInt8: range(int8_t{}); break;
      case ColumnType::kInt16: range(int16_t{}); break;
      case ColumnType::kInt32: range(int32_t{}); break;
      case ColumnType::kInt64: range(int64_t{}); break;
      default: break;
    }
  }
  for (ColumnStep& step : plan.steps) {
    switch (step.source) {
      case Source::kAgentId: step.op = Op::kAgentId; continue;
      case Source::kTag: step.op = Op::kTag; continue;
      case Source::kDefault: step.op = Op::kDefault; continue;
      case Source::kField: break;
    }
    if (step.integer) {
      step.op = Op::kInteger;
      continue;
    }
    switch (step.type) {
      case ColumnType::kEnum8: step.op = Op::kEnum8; break;
      case ColumnType::kFloat64:
        step.op = plan.slots[static_cast<size_t>(step.slot)].kind == FieldKind::kFloat ? Op::kFloat64FromFloat
                                                                                        : Op::kFloat64;
        break;
      case ColumnType::kString: step.op = Op::kString; break;
      case ColumnType::kIPv6: step.op = Op::kIPv6; break;
      default:
        // Every integer column type sets step.integer above; nothing else reaches here.
        plan.status = InternalError(fmt::format("{}.{}: no encoding for a column of type {}", table.database,
                                                table.name, static_cast<int>(step.type)));
        break;
    }
  }
  // The image of the fixed-width columns and the segments pass 2 copies (see Plan).
  plan.slot_writes.resize(plan.slots.size());
  bool in_run = false;
  Plan::Segment run;
  for (const ColumnStep& step : plan.steps) {
    if (step.op == Op::kString) {
      if (in_run) plan.segments.push_back(run);
      in_run = false;
      Plan::Segment string_segment;
      string_segment.string_slot = step.slot;
      plan.segments.push_back(string_segment);
      ++plan.string_columns;
      continue;
    }
    const auto image_offset = static_cast<uint32_t>(plan.default_image.size());
    if (!in_run) {
      run = Plan::Segment{image_offset, 0, -1};
      in_run = true;
    }
    std::string bytes;
    switch (step.op) {
      case Op::kAgentId:
        plan.agent_id_offsets.push_back(image_offset);
        bytes.assign(4, '\0');
        break;
      case Op::kTag:
        plan.tag_writes.push_back({step.tag_index, image_offset, static_cast<uint32_t>(plan.segments.size())});
        bytes.assign(4, '\0');
        break;
      case Op::kDefault: bytes = step.default_bytes; break;
      case Op::kInteger: bytes.assign(step.width, '\0'); break;
      case Op::kEnum8: {
        const bool zero_known = ((step.enum_known[128 / 64] >> (128 % 64)) & 1) != 0;
        bytes.assign(1, static_cast<char>(zero_known ? 0 : step.enum_default));
        if (!zero_known) ++plan.zero_unknown_enums;
        break;
      }
      case Op::kFloat64: case Op::kFloat64FromFloat: bytes.assign(8, '\0'); break;
      case Op::kIPv6: bytes.assign(16, '\0'); break;
      case Op::kString: break;
    }
    if (step.slot >= 0) {
      Plan::SlotWrite& w = plan.slot_writes[static_cast<size_t>(step.slot)];
      w.op = step.op;
      w.width = step.width;
      w.signed_field = step.signed_field;
      w.zero_unknown = step.op == Op::kEnum8 && ((step.enum_known[128 / 64] >> (128 % 64)) & 1) == 0;
      w.enum_default = step.enum_default;
      w.image_offset = image_offset;
      w.min_signed = step.min_signed;
      w.max_signed = step.max_signed;
      w.max_unsigned = step.max_unsigned;
      std::copy(std::begin(step.enum_known), std::end(step.enum_known), std::begin(w.enum_known));
    }
    plan.default_image += bytes;
    run.bytes += static_cast<uint32_t>(bytes.size());
  }
  if (in_run) plan.segments.push_back(run);
  plan.fields.resize(plan.slot_of_field.size());
  for (size_t number = 0; number < plan.slot_of_field.size(); ++number) {
    const int slot = plan.slot_of_field[number];
    if (slot < 0) continue;
    const Slot& read = plan.slots[static_cast<size_t>(slot)];
    const Plan::SlotWrite& w = plan.slot_writes[static_cast<size_t>(slot)];
    Plan::FieldEntry& e = plan.fields[number];
    e.slot = slot;
    e.wire_type = read.wire_type;
    e.sign32 = read.kind == FieldKind::kInt32 || read.kind == FieldKind::kEnum;
    e.boolean = read.kind == FieldKind::kBool;
    e.mask = e.sign32 || read.kind == FieldKind::kUInt32 ? 0xffffffffull : ~uint64_t{0};
    e.image_offset = w.image_offset;
    e.zero_unknown = w.zero_unknown;
    e.enum_default = w.enum_default;
    e.lo = w.signed_field ? static_cast<uint64_t>(w.min_signed) : 0;
    e.span = w.signed_field ? static_cast<uint64_t>(w.max_signed) - static_cast<uint64_t>(w.min_signed)
                            : w.max_unsigned;
    std::copy(std::begin(w.enum_known), std::end(w.enum_known), std::begin(e.enum_known));
    switch (w.op) {
      case Op::kInteger: {
        // The field's narrowed values, as a range in the same modular order as [lo, lo + span].
        uint64_t first = 0, last = ~uint64_t{0};
        switch (read.kind) {
          case FieldKind::kInt32: case FieldKind::kEnum:
            first = static_cast<uint64_t>(int64_t{std::numeric_limits<int32_t>::min()});
            last = std::numeric_limits<int32_t>::max();
            break;
          case FieldKind::kInt64:
            first = static_cast<uint64_t>(std::numeric_limits<int64_t>::min());
            last = std::numeric_limits<int64_t>::max();
            break;
          case FieldKind::kUInt32: last = std::numeric_limits<uint32_t>::max(); break;
          case FieldKind::kBool: last = 1; break;
          default: break;
        }
        const bool fits = first - e.lo <= e.span && last - e.lo <= e.span && first - e.lo <= last - e.lo;
        if (fits) {
          e.action = w.width == 1 ? Action::kFit1 : w.width == 2 ? Action::kFit2 : w.width == 4 ? Action::kFit4
                                                                                              : Action::kFit8;
        } else {
          e.action = w.width == 1 ? Action::kInt1 : w.width == 2 ? Action::kInt2 : w.width == 4 ? Action::kInt4
                                                                                              : Action::kInt8;
        }
        break;
      }
      case Op::kEnum8: e.action = Action::kEnum8; break;
      case Op::kFloat64: e.action = Action::kDouble; break;
      case Op::kFloat64FromFloat: e.action = Action::kFloat; break;
      case Op::kIPv6: e.action = Action::kIPv6; break;
      default:  // not in the image
        e.action = read.kind == FieldKind::kBytes    ? Action::kStoreBytes
                   : read.kind == FieldKind::kDouble ? Action::kStoreFixed64
                   : read.kind == FieldKind::kFloat  ? Action::kStoreFixed32
                                                     : Action::kStoreVarint;
        break;
    }
  }
  plan.field_of_key.assign(plan.fields.size() * 8, -1);
  for (size_t number = 0; number < plan.fields.size(); ++number) {
    const Plan::FieldEntry& e = plan.fields[number];
    if (e.slot >= 0) plan.field_of_key[number << 3 | e.wire_type] = static_cast<int32_t>(number);
  }
  // Values are kept by field number (one field per slot), so pass 1 finds a field's value from
  // the index it already has instead of through its entry's slot.
  std::vector<int> number_of_slot(plan.slots.size(), -1);
  for (size_t number = 0; number < plan.slot_of_field.size(); ++number) {
    const int slot = plan.slot_of_field[number];
    if (slot >= 0) number_of_slot[static_cast<size_t>(slot)] = static_cast<int>(number);
  }
  for (auto& seg : plan.segments) {
    if (seg.string_slot >= 0) seg.string_slot = number_of_slot[static_cast<size_t>(seg.string_slot)];
  }
  for (int& side : plan.side_slots) {
    if (side >= 0) side = number_of_slot[static_cast<size_t>(side)];
  }
  it = plans_.emplace(key, std::move(plan)).first;
  last_key_ = key;
  last_plan_ = &it->second;
  return it->second;
}

Status WireRowEncoder::AppendRow(const schema::Table& table, const google::protobuf::Descriptor* descriptor,
                                 std::string_view wire, const ServerColumns& server, std::string* out,
                                 EncodeStats* stats) {
  return AppendRow(table, descriptor, wire, server, out, stats, RowTaps{});
}

Status WireRowEncoder::AppendRow(const schema::Table& table, const google::protobuf::Descriptor* descriptor,
                                 std::string_view wire, const ServerColumns& server, std::string* out,
                                 EncodeStats* stats, const RowTaps& taps) {
  const Plan& plan = PlanFor(table, descriptor);
  SONDE_RETURN_IF_ERROR(plan.status);
  if (taps.sides != nullptr) taps.sides[0] = taps.sides[1] = ZeroSide();
  if (taps.tag_offsets != nullptr) {
    std::fill(taps.tag_offsets, taps.tag_offsets + tag_columns_.size(), std::numeric_limits<size_t>::max());
  }
  if (wire.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return InvalidArgumentError("record too large");
  }

  // Pass 1: the wire bytes into one value per slot (last occurrence wins, as in proto3), and
  // the fixed-width columns' bytes into the row image as they are read.
  if (values_.size() < plan.fields.size()) values_.resize(plan.fields.size());
  if (++row_ == 0) {  // wrapped: stale values could look current
    for (auto& v : values_) v.row = 0;
    row_ = 1;
  }
  if (image_.size() < plan.default_image.size()) image_.resize(plan.default_image.size());
  // Plain pointers: the stores through char* below would otherwise make the compiler reload
  // every vector's data pointer after each of them.
  char* const image = image_.data();
  std::memcpy(image, plan.default_image.data(), plan.default_image.size());
  Value* const values = values_.data();
  const Plan::FieldEntry* const fields = plan.fields.data();
  const int32_t* const field_of_key = plan.field_of_key.data();
  const size_t key_count = plan.field_of_key.size();
  const uint32_t row = row_;
  // Stats of this row, added to *stats only when the row is written.
  uint64_t truncated = 0;
  uint64_t unknown_enums = plan.zero_unknown_enums;
  WireReader in(wire);
  size_t string_bytes = 0;
  while (!in.done()) {
    uint32_t key;
    if (!in.ReadShortKey(&key)) {
      uint32_t number, wire_type;
      if (!in.ReadTag(&number, &wire_type)) return InvalidArgumentError("malformed record: bad tag");
      key = number << 3 | wire_type;
    }
    const int32_t index = key < key_count ? field_of_key[key] : -1;
    if (index < 0) {  // not a column or side field, or another wire type: checked, then skipped
      const uint32_t number = key >> 3, wire_type = key & 7;
      if (number == 0 || wire_type > WireReader::kFixed32) return InvalidArgumentError("malformed record: bad tag");
      if (!in.SkipValue(number, wire_type)) return InvalidArgumentError("malformed record: bad field");
      continue;
    }
    const Plan::FieldEntry& e = fields[index];
    Value& v = values[index];
    const bool again = v.row == row;  // an earlier occurrence in this row: this one replaces it
    v.row = row;
    // Reads a varint narrowed as protobuf's parser narrows the field's type.
    auto read_varint = [&in, &e](uint64_t* bits) {
      uint64_t raw;
      if (!in.ReadVarint(&raw)) return false;
      uint64_t b = raw & e.mask;
      if (e.sign32) b = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(b))));
      if (e.boolean) b = raw != 0 ? 1 : 0;
      *bits = b;
      return true;
    };
    switch (e.action) {
      case Action::kStoreVarint:
        if (!read_varint(&v.bits)) return InvalidArgumentError("malformed record: bad varint");
        continue;
      case Action::kStoreBytes: {
        std::string_view bytes;
        if (!in.ReadLengthDelimited(&bytes)) return InvalidArgumentError("malformed record: truncated string");
        if (again) string_bytes -= v.size;
        v.data = bytes.data();
        v.size = static_cast<uint32_t>(bytes.size());
        string_bytes += bytes.size();
        continue;
      }
      case Action::kStoreFixed64:
        if (!in.ReadFixed64(&v.bits)) return InvalidArgumentError("malformed record: truncated double");
        continue;
      case Action::kStoreFixed32: {
        uint32_t bits;
        if (!in.ReadFixed32(&bits)) return InvalidArgumentError("malformed record: truncated float");
        v.bits = bits;
        continue;
      }
      case Action::kFit1: case Action::kFit2: case Action::kFit4: case Action::kFit8: {
        if (!read_varint(&v.bits)) return InvalidArgumentError("malformed record: bad varint");
        char* const dst = image + e.image_offset;
        switch (e.action) {  // the low bytes, little endian
          case Action::kFit1: *dst = static_cast<char>(v.bits); break;
          case Action::kFit2: PutLE<uint16_t>(static_cast<uint16_t>(v.bits), dst); break;
          case Action::kFit4: PutLE<uint32_t>(static_cast<uint32_t>(v.bits), dst); break;
          default: PutLE<uint64_t>(v.bits, dst); break;
        }
        continue;
      }
      default: break;
    }
    // A column in the image: its bytes, and what it adds to the stats (replacing an earlier
    // occurrence's share, or the unset value's).
    if (again) {
      truncated -= v.truncated;
      unknown_enums -= v.unknown_enum;
    } else if (e.zero_unknown) {
      --unknown_enums;
    }
    v.truncated = 0;
    v.unknown_enum = 0;
    char* const dst = image + e.image_offset;
    switch (e.action) {
      case Action::kInt1: case Action::kInt2: case Action::kInt4: case Action::kInt8: {
        if (!read_varint(&v.bits)) return InvalidArgumentError("malformed record: bad varint");
        const uint64_t bits = v.bits;
        v.truncated = bits - e.lo <= e.span ? 0 : 1;
        switch (e.action) {  // the low bytes, little endian
          case Action::kInt1: *dst = static_cast<char>(bits); break;
          case Action::kInt2: PutLE<uint16_t>(static_cast<uint16_t>(bits), dst); break;
          case Action::kInt4: PutLE<uint32_t>(static_cast<uint32_t>(bits), dst); break;
          default: PutLE<uint64_t>(bits, dst); break;
        }
        break;
      }
      case Action::kEnum8: {
        if (!read_varint(&v.bits)) return InvalidArgumentError("malformed record: bad varint");
        // An Enum8 value ClickHouse does not know fails the whole INSERT (see RowBinaryEncoder).
        const auto s = static_cast<int64_t>(v.bits);
        const bool known = s >= -128 && s <= 127 && ((e.enum_known[(s + 128) / 64] >> ((s + 128) % 64)) & 1) != 0;
        v.unknown_enum = known ? 0 : 1;
        *dst = static_cast<char>(known ? static_cast<int8_t>(s) : e.enum_default);
        break;
      }
      case Action::kDouble:
        if (!in.ReadFixed64(&v.bits)) return InvalidArgumentError("malformed record: truncated double");
        PutLE<uint64_t>(v.bits, dst);
        break;
      case Action::kFloat: {
        uint32_t fbits;
        if (!in.ReadFixed32(&fbits)) return InvalidArgumentError("malformed record: truncated float");
        v.bits = fbits;
        float f;
        std::memcpy(&f, &fbits, sizeof(f));
        const double d = f;
        uint64_t bits;
        std::memcpy(&bits, &d, sizeof(bits));
        PutLE<uint64_t>(bits, dst);
        break;
      }
      case Action::kIPv6: {
        std::string_view bytes;
        if (!in.ReadLengthDelimited(&bytes)) return InvalidArgumentError("malformed record: truncated string");
        v.data = bytes.data();
        v.size = static_cast<uint32_t>(bytes.size());
        v.truncated = v.size > 16 ? 1 : 0;
        const size_t n = std::min<size_t>(v.size, 16);
        if (n != 0) std::memcpy(dst, v.data, n);
        std::memset(dst + n, 0, 16 - n);
        break;
      }
      default: break;
    }
    truncated += v.truncated;
    unknown_enums += v.unknown_enum;
  }
  stats->truncated_values += truncated;
  stats->unknown_enum_values += unknown_enums;
  for (const uint32_t at : plan.agent_id_offsets) PutLE<uint32_t>(server.agent_id, image + at);
  for (const Plan::TagWrite& t : plan.tag_writes) {
    PutLE<uint32_t>(server.tag_ids != nullptr ? server.tag_ids[t.tag_index] : 0, image + t.image_offset);
  }

  if (taps.sides != nullptr) ReadSides(plan, wire, taps.sides);

  // Pass 2: the image's runs and the String columns between them, in column order, written
  // through a pointer into a scratch row that is then appended to *out in one go (resizing *out
  // up front instead would zero-fill the space first).
  const size_t max_row = plan.default_image.size() + plan.string_columns * 10 + string_bytes;
  const size_t start = out->size();
  if (row_scratch_.size() < max_row) row_scratch_.resize(std::max(max_row, 2 * row_scratch_.size()));
  char* const row_begin = row_scratch_.data();
  char* p = row_begin;
  if (segment_starts_.size() < plan.segments.size()) segment_starts_.resize(plan.segments.size());
  size_t* const segment_starts = segment_starts_.data();
  const Plan::Segment* const segments = plan.segments.data();
  const size_t segment_count = plan.segments.size();
  for (size_t i = 0; i < segment_count; ++i) {
    const Plan::Segment& seg = segments[i];
    if (seg.string_slot < 0) {
      segment_starts[i] = start + static_cast<size_t>(p - row_begin);
      std::memcpy(p, image + seg.image_offset, seg.bytes);
      p += seg.bytes;
      continue;
    }
    const Value& v = values[seg.string_slot];
    const uint32_t size = v.row == row ? v.size : 0;
    p = PutVarUInt(size, p);
    if (size != 0) std::memcpy(p, v.data, size);
    p += size;
  }
  if (taps.tag_offsets != nullptr) {
    for (const Plan::TagWrite& t : plan.tag_writes) {
      taps.tag_offsets[t.tag_index] =
          segment_starts_[t.segment] + (t.image_offset - plan.segments[t.segment].image_offset);
    }
  }
  out->append(row_begin, static_cast<size_t>(p - row_begin));
  return Status::Ok();
}

void WireRowEncoder::ReadSides(const Plan& plan, std::string_view wire, RecordSide* sides) const {
  if (!plan.sides_from_values) {
    std::vector<RecordSide> read;
    AppendWireSides(plan.side_kind, wire, &read);
    sides[0] = read[0];
    sides[1] = read[1];
    return;
  }
  auto u32 = [&](size_t field) -> uint32_t {
    const int slot = plan.side_slots[field];
    if (slot < 0) return 0;
    const Value& v = values_[static_cast<size_t>(slot)];
    return v.row == row_ ? static_cast<uint32_t>(v.bits) : 0;
  };
  auto bytes = [&](size_t field) -> std::string_view {
    const int slot = plan.side_slots[field];
    if (slot < 0) return {};
    const Value& v = values_[static_cast<size_t>(slot)];
    return v.row == row_ ? std::string_view(v.data, v.size) : std::string_view();
  };
  const bool is_ipv4 = u32(kSideIsIpv4) != 0;
  auto address = [&](uint32_t ip4, std::string_view ip6) {
    if (is_ipv4 || ip6.size() != 16) return net::IpAddress::V4(ip4);
    return net::IpAddress::V6(reinterpret_cast<const uint8_t*>(ip6.data()));
  };
  const uint32_t time = u32(kSideTime);
  sides[0] = {address(u32(kSideIp4_0), bytes(kSideIp6_0)), time, u32(kSidePid0)};
  sides[1] = {address(u32(kSideIp4_1), bytes(kSideIp6_1)), time, u32(kSidePid1)};
}

}  // namespace sonde::server::storage::clickhouse
