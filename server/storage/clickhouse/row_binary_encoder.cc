// RowBinaryEncoder: protobuf reflection -> ClickHouse RowBinary, driven by the schema catalog.
#include "server/storage/clickhouse/row_binary_encoder.h"

#include <cstring>
#include <limits>

#include <fmt/format.h>

namespace sonde::server::storage::clickhouse {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using schema::ColumnType;

template <typename T>
void PutLE(T v, std::string* out) {
  using U = std::make_unsigned_t<T>;
  U u = static_cast<U>(v);
  char buf[sizeof(U)];
  for (size_t i = 0; i < sizeof(U); ++i) buf[i] = static_cast<char>((u >> (8 * i)) & 0xff);
  out->append(buf, sizeof(U));
}

void PutVarUInt(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool IsIntegerField(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
    case FieldDescriptor::CPPTYPE_BOOL:
    case FieldDescriptor::CPPTYPE_ENUM:
      return true;
    default:
      return false;
  }
}

bool Compatible(ColumnType type, const FieldDescriptor* f) {
  if (f->is_repeated() || f->is_map()) return false;
  switch (type) {
    case ColumnType::kString:
    case ColumnType::kIPv6:
      return f->cpp_type() == FieldDescriptor::CPPTYPE_STRING;
    case ColumnType::kFloat64:
      return f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE || f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT;
    default:
      return IsIntegerField(f);
  }
}

// Reads any integer-like field as signed and unsigned 64-bit views of the same value.
struct IntValue {
  uint64_t u;
  int64_t s;
  bool is_signed;
};

IntValue ReadInt(const Message& m, const Reflection* r, const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int64_t v = r->GetInt32(m, f);
      return {static_cast<uint64_t>(v), v, true};
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v = r->GetInt64(m, f);
      return {static_cast<uint64_t>(v), v, true};
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint64_t v = r->GetUInt32(m, f);
      return {v, static_cast<int64_t>(v), false};
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v = r->GetUInt64(m, f);
      return {v, static_cast<int64_t>(v), false};
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      uint64_t v = r->GetBool(m, f) ? 1 : 0;
      return {v, static_cast<int64_t>(v), false};
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      int64_t v = r->GetEnumValue(m, f);
      return {static_cast<uint64_t>(v), v, true};
    }
    default:
      return {0, 0, false};
  }
}

template <typename T>
void PutInt(const IntValue& v, std::string* out, EncodeStats* stats) {
  bool fits;
  if constexpr (std::is_signed_v<T>) {
    fits = v.is_signed ? (v.s >= std::numeric_limits<T>::min() && v.s <= std::numeric_limits<T>::max())
                       : v.u <= static_cast<uint64_t>(std::numeric_limits<T>::max());
  } else {
    fits = v.is_signed ? (v.s >= 0 && static_cast<uint64_t>(v.s) <= std::numeric_limits<T>::max())
                       : v.u <= std::numeric_limits<T>::max();
  }
  if (!fits) ++stats->truncated_values;
  PutLE<T>(static_cast<T>(v.u), out);
}

int8_t DefaultEnumValue(const schema::Enum& e) {
  for (const auto& v : e.values) {
    if (v.name == "unknown") return v.value;
  }
  return e.values.empty() ? 0 : e.values.front().value;
}

void PutDefault(const schema::Column& c, std::string* out) {
  switch (c.type) {
    case ColumnType::kUInt8: case ColumnType::kInt8: out->push_back('\0'); break;
    case ColumnType::kEnum8: out->push_back(static_cast<char>(c.enumeration ? DefaultEnumValue(*c.enumeration) : 0)); break;
    case ColumnType::kUInt16: case ColumnType::kInt16: out->append(2, '\0'); break;
    case ColumnType::kUInt32: case ColumnType::kInt32: case ColumnType::kDateTime: case ColumnType::kIPv4:
      out->append(4, '\0');
      break;
    case ColumnType::kUInt64: case ColumnType::kInt64: case ColumnType::kFloat64: out->append(8, '\0'); break;
    case ColumnType::kString: out->push_back('\0'); break;
    case ColumnType::kIPv6: out->append(16, '\0'); break;
  }
}

}  // namespace

std::string RowBinaryEncoder::ColumnList(const schema::Table& table) {
  std::string out;
  for (const auto& c : table.columns) {
    if (!out.empty()) out += ", ";
    out += fmt::format("`{}`", c.name);
  }
  return out;
}

void RowBinaryEncoder::SetTagColumns(std::vector<std::string> names) {
  tag_columns_ = std::move(names);
  plans_.clear();
}

const RowBinaryEncoder::Plan& RowBinaryEncoder::PlanFor(const schema::Table& table,
                                                        const google::protobuf::Descriptor* d) {
  auto key = std::make_pair(&table, d);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan plan;
  for (const auto& c : table.columns) {
    Step step;
    step.field = d->FindFieldByName(std::string(c.name));
    if (step.field != nullptr && !Compatible(c.type, step.field)) {
      plan.status = InternalError(fmt::format("{}.{} column {} ({}) cannot come from proto field {}.{}",
                                              table.database, table.name, c.name, c.clickhouse_type,
                                              d->full_name(), step.field->name()));
    }
    if (step.field == nullptr && c.server_side && c.type == ColumnType::kUInt32) {
      step.agent_id = c.name == "agent_id";
      for (size_t i = 0; i < tag_columns_.size() && !step.agent_id; ++i) {
        if (tag_columns_[i] == c.name) step.tag_index = static_cast<int>(i);
      }
    }
    plan.steps.push_back(step);
  }
  return plans_.emplace(key, std::move(plan)).first->second;
}

Status RowBinaryEncoder::AppendRow(const schema::Table& table, const Message& record, const ServerColumns& server,
                                   std::string* out, EncodeStats* stats) {
  const Plan& plan = PlanFor(table, record.GetDescriptor());
  SONDE_RETURN_IF_ERROR(plan.status);
  const Reflection* r = record.GetReflection();
  size_t i = 0;
  for (const auto& c : table.columns) {
    const Step& step = plan.steps[i++];
    const FieldDescriptor* f = step.field;
    if (f == nullptr) {
      if (step.agent_id) {
        PutLE<uint32_t>(server.agent_id, out);
      } else if (step.tag_index >= 0) {
        PutLE<uint32_t>(server.tag_ids != nullptr ? server.tag_ids[step.tag_index] : 0, out);
      } else {
        PutDefault(c, out);
      }
      continue;
    }
    switch (c.type) {
      case ColumnType::kUInt8: PutInt<uint8_t>(ReadInt(record, r, f), out, stats); break;
      case ColumnType::kUInt16: PutInt<uint16_t>(ReadInt(record, r, f), out, stats); break;
      case ColumnType::kUInt32:
      case ColumnType::kDateTime:
      case ColumnType::kIPv4: PutInt<uint32_t>(ReadInt(record, r, f), out, stats); break;
      case ColumnType::kUInt64: PutInt<uint64_t>(ReadInt(record, r, f), out, stats); break;
      case ColumnType::kInt8: PutInt<int8_t>(ReadInt(record, r, f), out, stats); break;
      case ColumnType::kInt16: PutInt<int16_t>(ReadInt(record, r, f), out, stats); break;
      case ColumnType::kInt32: PutInt<int32_t>(ReadInt(record, r, f), out, stats); break;
      case ColumnType::kInt64: PutInt<int64_t>(ReadInt(record, r, f), out, stats); break;
      case ColumnType::kEnum8: {
        // An Enum8 value ClickHouse does not know fails the whole INSERT, so validate here.
        const IntValue v = ReadInt(record, r, f);
        bool known = false;
        if (c.enumeration != nullptr) {
          for (const auto& ev : c.enumeration->values) known |= (ev.value == v.s);
        }
        int8_t byte = static_cast<int8_t>(v.s);
        if (!known) {
          ++stats->unknown_enum_values;
          byte = c.enumeration ? DefaultEnumValue(*c.enumeration) : 0;
        }
        out->push_back(static_cast<char>(byte));
        break;
      }
      case ColumnType::kFloat64: {
        double d = f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE ? r->GetDouble(record, f) : r->GetFloat(record, f);
        uint64_t bits;
        std::memcpy(&bits, &d, sizeof(bits));
        PutLE<uint64_t>(bits, out);
        break;
      }
      case ColumnType::kString: {
        std::string scratch;
        const std::string& s = r->GetStringReference(record, f, &scratch);
        PutVarUInt(s.size(), out);
        out->append(s);
        break;
      }
      case ColumnType::kIPv6: {
        std::string scratch;
        const std::string& s = r->GetStringReference(record, f, &scratch);
        if (s.size() > 16) ++stats->truncated_values;
        const size_t n = std::min<size_t>(s.size(), 16);
        out->append(s.data(), n);
        out->append(16 - n, '\0');
        break;
      }
    }
  }
  return Status::Ok();
}

}  // namespace sonde::server::storage::clickhouse
