// RecordSink that batches records and ships them to sonde-server over the framed TCP protocol
// (proto/sonde/control/v1/control.proto). Batches stay queued until the server acknowledges
// them (an Ack means durable on the server), are resent after reconnects, and wait out Nacks
// (server push back). The queue is bounded in bytes: when full, new batches are dropped and
// counted rather than growing memory without bound.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/export/record_sink.h"
#include "common/base/status.h"
#include "common/metrics/registry.h"
#include "sonde/control/v1/control.pb.h"

namespace sonde::agent::exporting {

struct ServerExporterConfig {
  std::string server_host = "127.0.0.1";
  uint16_t server_port = 20033;
  std::string hostname;           // reported at registration
  std::string boot_id;
  std::string token;              // ingest token, when the server requires one
  v1::HostInfo host;              // reported at registration (interfaces feed host tagging)
  uint32_t batch_max_records = 4096;
  uint32_t batch_max_delay_ms = 1000;
  uint64_t queue_max_bytes = 256ull << 20;
  uint32_t heartbeat_interval_ms = 5000;
  uint32_t reconnect_max_backoff_ms = 5000;
  int io_timeout_ms = 30000;
  bool compress = true;
};

// AgentFrame{batch: Batch{batch_seq, records}} bytes around an already serialized RecordBatch.
std::string EncodeBatchFrame(uint64_t batch_seq, std::string_view records);

class ServerExporter : public RecordSink {
 public:
  ServerExporter(ServerExporterConfig config, metrics::Registry* registry);
  ~ServerExporter() override;

  // Starts the sender thread.
  void Start();
  // Seals the current batch, waits up to `drain` for the queue to be acknowledged, then stops.
  // Returns false when records were still unacknowledged at the deadline.
  bool Stop(std::chrono::milliseconds drain);

  void Emit(v1::L7RequestLog&& r) override;
  void Emit(v1::L4FlowLog&& r) override;
  void Emit(v1::NetworkMetric&& r) override;
  void Emit(v1::ApplicationMetric&& r) override;
  void Emit(v1::ProcessInfo&& r) override;
  // Seals the current batch so it is sent now.
  void Flush() override;

  // Blocks until every sealed batch is acknowledged or the timeout passes.
  bool WaitAcked(std::chrono::milliseconds timeout);

  uint32_t agent_id() const { return agent_id_.load(); }
  bool connected() const { return connected_.load(); }

 private:
  struct PendingBatch {
    // Serialized v1::RecordBatch, shared so the sender can read it outside the lock while it
    // stays queued until acknowledged.
    std::shared_ptr<const std::string> records;
    uint64_t record_count = 0;
  };

  template <typename Fn>
  void Append(Fn&& add);
  void SealLocked();
  void SenderLoop();
  // One connected session: register, then send batches until an error. Returns the error.
  Status RunSession(int fd);

  const ServerExporterConfig config_;
  std::mutex mu_;
  std::condition_variable cv_;
  v1::RecordBatch current_;
  uint64_t current_count_ = 0;
  std::chrono::steady_clock::time_point current_started_;
  std::deque<PendingBatch> queue_;
  uint64_t queue_bytes_ = 0;
  uint64_t next_seq_ = 1;
  bool stopping_ = false;
  std::atomic<uint32_t> agent_id_{0};
  std::atomic<bool> connected_{false};
  std::thread sender_;

  metrics::Counter* records_enqueued_;
  metrics::Counter* records_acked_;
  metrics::Counter* records_dropped_;
  metrics::Counter* batches_sent_;
  metrics::Counter* invalid_utf8_fields_;
  metrics::Counter* batches_nacked_;
  metrics::Counter* connect_failures_;
  metrics::Gauge* queue_bytes_gauge_;
  metrics::Gauge* connected_gauge_;
};

}  // namespace sonde::agent::exporting
