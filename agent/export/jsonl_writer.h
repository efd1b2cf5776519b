// RecordSink that prints one JSON object per record (the `--output jsonl` mode): field names are
// the stored column names, enums print as their schema names (HTTP1, ok, ...), addresses as text,
// plus "record" = l4_flow | l7_request | metric | process (and "table" for metrics).
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

#include <google/protobuf/message.h>

#include "agent/export/record_sink.h"
#include "schema/tables.h"

namespace sonde::agent::exporting {

class JsonlWriter : public RecordSink {
 public:
  // Does not own `out`.
  explicit JsonlWriter(std::FILE* out) : out_(out) {}

  void Emit(v1::L7RequestLog&& r) override;
  void Emit(v1::L4FlowLog&& r) override;
  void Emit(v1::NetworkMetric&& r) override;
  void Emit(v1::ApplicationMetric&& r) override;
  void Emit(v1::ProcessInfo&& r) override;
  void Flush() override;

  // One JSON line (without newline) for a record of `table` (nullptr: no schema, plain fields).
  static std::string ToJson(const google::protobuf::Message& m, const schema::Table* table,
                            std::string_view record_kind);

 private:
  void Write(const std::string& line);

  std::FILE* out_;
  std::mutex mu_;
};

}  // namespace sonde::agent::exporting
