// RecordSink decorator that reports each process named by a record (process_id_0/1) to the
// server as a ProcessInfo, once per refresh interval, so the server can tag by process. Records
// pass through unchanged. Thread-safe: pipelines on several threads share one reporter.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "agent/export/record_sink.h"
#include "agent/metadata/process_cache.h"

namespace sonde::agent {

class ProcessReporter : public exporting::RecordSink {
 public:
  using Reader = std::function<StatusOr<metadata::ProcessInfo>(uint32_t pid)>;
  using Clock = std::function<uint64_t()>;  // nanoseconds

  // `next` is not owned. `read` defaults to /proc; `now` to the wall clock.
  ProcessReporter(exporting::RecordSink* next, uint64_t refresh_ns = 300'000'000'000ull,
                  size_t max_tracked = 65536, Reader read = {}, Clock now = {});

  void Emit(v1::L7RequestLog&& r) override;
  void Emit(v1::L4FlowLog&& r) override;
  void Emit(v1::NetworkMetric&& r) override { next_->Emit(std::move(r)); }
  void Emit(v1::ApplicationMetric&& r) override { next_->Emit(std::move(r)); }
  void Emit(v1::ProcessInfo&& r) override { next_->Emit(std::move(r)); }
  void Flush() override { next_->Flush(); }

 private:
  void Report(uint32_t pid);

  exporting::RecordSink* next_;
  const uint64_t refresh_ns_;
  const size_t max_tracked_;
  Reader read_;
  Clock now_;
  std::mutex mu_;
  std::unordered_map<uint32_t, uint64_t> reported_ns_;  // pid -> when it was last reported
};

}  // namespace sonde::agent
