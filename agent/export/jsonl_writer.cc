// JSON rendering of records by protobuf reflection, guided by the schema catalog.
#include "agent/export/jsonl_writer.h"

#include <fmt/format.h>

#include "common/net/ip_address.h"

namespace sonde::agent::exporting {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

void AppendEscaped(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          // Payload-derived strings may hold any byte: escape everything outside printable ASCII
          // so every line is valid JSON whatever the capture contained.
          out->append(fmt::format("\\u{:04x}", c));
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

const schema::Table* MetricTable(std::string_view base, uint32_t granularity_s) {
  std::string name = fmt::format("{}_{}", base, granularity_s == 60 ? "1m" : "1s");
  return schema::FindTable("flow_metrics", name);
}

}  // namespace

std::string JsonlWriter::ToJson(const Message& m, const schema::Table* table,
                                std::string_view record_kind) {
  std::string out = "{\"record\":";
  AppendEscaped(&out, record_kind);
  if (table) {
    out += ",\"table\":";
    AppendEscaped(&out, table->name);
  }
  const Reflection* refl = m.GetReflection();
  const auto* desc = m.GetDescriptor();
  // Fields come in the order of the table's columns (schema_test keeps proto and yaml aligned):
  // try the column after the last one found before searching by name.
  size_t next_column = 0;
  auto column_of = [&](const std::string& name) -> const schema::Column* {
    if (!table) return nullptr;
    if (next_column < table->columns.size() && table->columns[next_column].name == name) {
      return &table->columns[next_column++];
    }
    const schema::Column* c = schema::FindColumn(*table, name);
    if (c) next_column = static_cast<size_t>(c - table->columns.data()) + 1;
    return c;
  };
  for (int i = 0; i < desc->field_count(); ++i) {
    const FieldDescriptor* f = desc->field(i);
    if (f->is_repeated()) continue;
    const schema::Column* col = column_of(f->name());
    out += ",\"";
    out += f->name();
    out += "\":";
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint32_t v = refl->GetUInt32(m, f);
        if (col && col->type == schema::ColumnType::kIPv4) {
          AppendEscaped(&out, net::IpAddress::V4(v).ToString());
        } else {
          out += std::to_string(v);
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT64: out += std::to_string(refl->GetUInt64(m, f)); break;
      case FieldDescriptor::CPPTYPE_INT32: out += std::to_string(refl->GetInt32(m, f)); break;
      case FieldDescriptor::CPPTYPE_INT64: out += std::to_string(refl->GetInt64(m, f)); break;
      case FieldDescriptor::CPPTYPE_BOOL: out += refl->GetBool(m, f) ? "true" : "false"; break;
      case FieldDescriptor::CPPTYPE_DOUBLE: out += fmt::format("{}", refl->GetDouble(m, f)); break;
      case FieldDescriptor::CPPTYPE_FLOAT: out += fmt::format("{}", refl->GetFloat(m, f)); break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        int v = refl->GetEnumValue(m, f);
        std::string_view name = col && col->enumeration ? schema::EnumName(*col->enumeration, v) : "";
        if (name.empty()) {
          out += std::to_string(v);
        } else {
          AppendEscaped(&out, name);
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string scratch;
        const std::string& v = refl->GetStringReference(m, f, &scratch);
        if (col && col->type == schema::ColumnType::kIPv6) {
          if (v.size() == 16) {
            AppendEscaped(&out, net::IpAddress::V6(reinterpret_cast<const uint8_t*>(v.data())).ToString());
          } else {
            out += "\"\"";
          }
        } else {
          AppendEscaped(&out, v);
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE: out += "null"; break;
    }
  }
  out += '}';
  return out;
}

void JsonlWriter::Write(const std::string& line) {
  std::lock_guard lock(mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fputc('\n', out_);
}

void JsonlWriter::Emit(v1::L7RequestLog&& r) {
  Write(ToJson(r, schema::FindTable("flow_log", "l7_request_log"), "l7_request"));
}
void JsonlWriter::Emit(v1::L4FlowLog&& r) {
  Write(ToJson(r, schema::FindTable("flow_log", "l4_flow_log"), "l4_flow"));
}
void JsonlWriter::Emit(v1::NetworkMetric&& r) {
  Write(ToJson(r, MetricTable("network", r.granularity_s()), "metric"));
}
void JsonlWriter::Emit(v1::ApplicationMetric&& r) {
  Write(ToJson(r, MetricTable("application", r.granularity_s()), "metric"));
}
void JsonlWriter::Emit(v1::ProcessInfo&& r) { Write(ToJson(r, nullptr, "process")); }

void JsonlWriter::Flush() {
  std::lock_guard lock(mu_);
  std::fflush(out_);
}

}  // namespace sonde::agent::exporting
