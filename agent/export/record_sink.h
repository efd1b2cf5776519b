// Where the agent's records go: the server exporter, the JSONL writer, or a test collector.
// Implementations are thread-safe; records are moved in.
#pragma once

#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::exporting {

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  virtual void Emit(v1::L7RequestLog&& record) = 0;
  virtual void Emit(v1::L4FlowLog&& record) = 0;
  virtual void Emit(v1::NetworkMetric&& record) = 0;
  virtual void Emit(v1::ApplicationMetric&& record) = 0;
  virtual void Emit(v1::ProcessInfo&& record) = 0;
  // Pushes out whatever is buffered (end of a pcap, shutdown).
  virtual void Flush() {}
};

}  // namespace sonde::agent::exporting
