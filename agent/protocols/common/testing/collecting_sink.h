// A RecordSink that keeps what it receives, for tests.
#pragma once

#include <vector>

#include "agent/export/record_sink.h"

namespace sonde::agent::protocols::testing {

class CollectingSink final : public exporting::RecordSink {
 public:
  void Emit(v1::L7RequestLog&& r) override { l7.push_back(std::move(r)); }
  void Emit(v1::L4FlowLog&& r) override { l4.push_back(std::move(r)); }
  void Emit(v1::NetworkMetric&& r) override { net.push_back(std::move(r)); }
  void Emit(v1::ApplicationMetric&& r) override { app.push_back(std::move(r)); }
  void Emit(v1::ProcessInfo&& r) override { procs.push_back(std::move(r)); }

  std::vector<v1::L7RequestLog> l7;
  std::vector<v1::L4FlowLog> l4;
  std::vector<v1::NetworkMetric> net;
  std::vector<v1::ApplicationMetric> app;
  std::vector<v1::ProcessInfo> procs;
};

}  // namespace sonde::agent::protocols::testing
