// L7Analyzer: the application layer behind flow::StreamHandler. Per connection it infers the
// protocol from content (registry.h), feeds a FrameParser, stitches records, fills connection
// fields and emits them; it also aggregates application RED metrics (1 s and 60 s).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "agent/export/record_sink.h"
#include "agent/flow/stream_handler.h"
#include "agent/protocols/common/app_metrics_aggregator.h"
#include "agent/protocols/common/connection_parser.h"
#include "agent/protocols/common/connection_table.h"
#include "agent/protocols/common/registry.h"
#include "common/metrics/registry.h"

namespace sonde::agent::protocols {

struct L7AnalyzerOptions {
  ParserOptions parser;
  uint32_t max_inference_chunks = 8;          // data chunks looked at before "unknown"
  size_t max_inference_bytes = 4096;          // per-direction prefix handed to Infer functions
  uint64_t idle_timeout_ns = 300'000'000'000ULL;  // connections without data are reaped
  uint64_t scan_interval_ns = 1'000'000'000ULL;   // request-timeout scans at most this often
  size_t max_connections = 1'000'000;
  bool app_metrics = true;                    // aggregate and emit ApplicationMetric
  // The protocols to recognise; empty = the registry table (AllProtocols()). Tests inject here.
  std::span<const ProtocolSpec> protocols;
};

// Not thread-safe: one instance per worker thread (all calls from that thread, in time order).
class L7Analyzer final : public flow::StreamHandler {
 public:
  // `sink` receives L7RequestLog and ApplicationMetric records; `metrics` receives self-metrics
  // (nullptr: kept in a private registry). Both must outlive the analyzer.
  L7Analyzer(exporting::RecordSink* sink, metrics::Registry* metrics,
             L7AnalyzerOptions options = {});
  ~L7Analyzer() override;

  void OnData(const flow::ConnectionInfo& conn, flow::StreamDirection dir,
              const flow::StreamChunk& chunk) override;
  void OnClose(const flow::ConnectionInfo& conn, uint64_t timestamp_ns) override;
  void OnTick(uint64_t now_ns) override;
  common::v1::L7Protocol ProtocolOf(uint64_t flow_id) const override;
  bool Abandoned(uint64_t flow_id) const override;

  // End of input: every open connection is closed (unanswered requests become timeout records)
  // and every metric interval is emitted. Does not call sink->Flush().
  void FlushAll(uint64_t now_ns);

  // Open connections, dormant ones included.
  size_t connection_count() const { return table_.open() + table_.dormant(); }

 private:
  struct Connection;

  Connection* FindOrCreate(const flow::ConnectionInfo& conn, uint64_t now_ns);
  void Infer(Connection* c, flow::StreamDirection dir, const flow::StreamChunk& chunk);
  void StartParser(Connection* c, const ProtocolSpec* spec);
  void StitchAndEmit(Connection* c, uint64_t now_ns, bool closed);
  void FillConnectionFields(const flow::ConnectionInfo& info, v1::L7RequestLog* rec) const;
  const ParserCounters* CountersFor(const ProtocolSpec* spec);
  void CloseConnection(uint64_t flow_id, uint64_t now_ns);
  // An open connection whose parser is idle and released becomes a dormant entry of table_
  // (and its object goes back to the pool); FindOrCreate resumes it.
  void Park(Connection* c);
  std::span<const ProtocolSpec> Protocols() const;
  void Recycle(std::unique_ptr<Connection> c);
  std::unique_ptr<ConnectionParser> AcquireParser(const ProtocolSpec* spec);
  void ReleaseParser(Connection* c);

  static constexpr size_t kMaxPooled = 1024;  // per pool
  // Idle TCP connections are parked only while more than this many are open.
  static constexpr size_t kParkTcpAbove = 16384;
  // A dormant entry's resume value: index + 1 of its protocol in Protocols(), and the swap bit.
  static constexpr uint16_t kResumeSpecMask = 0x7fff;
  static constexpr uint16_t kResumeSwapped = 0x8000;

  exporting::RecordSink* sink_;
  std::unique_ptr<metrics::Registry> own_metrics_;
  metrics::Registry* metrics_;
  L7AnalyzerOptions options_;
  AppMetricsAggregator app_metrics_;

  using Table = ConnectionTable<Connection>;
  // Every flow by id: open (pointing into open_), dormant (see Park) or recently closed (so
  // ProtocolOf works after OnClose; expired by OnTick).
  Table table_;
  // The open connections' objects, in no particular order (each knows its index): OnTick scans
  // them without walking the table's closed entries.
  std::vector<std::unique_ptr<Connection>> open_;
  std::unique_ptr<Connection> RemoveOpen(Connection* c);
  std::map<common::v1::L7Protocol, std::unique_ptr<ParserCounters>> counters_;
  std::map<common::v1::L7Protocol, metrics::Counter*> records_by_protocol_;
  RecordBuffer scratch_;  // message objects reused across Stitch calls
  // Reset parsers (per protocol: by index in Protocols(), which every spec a connection holds
  // points into) and connection objects of closed connections, for reuse.
  std::vector<std::vector<std::unique_ptr<ConnectionParser>>> free_parsers_;
  std::vector<std::unique_ptr<ConnectionParser>>& FreeParsers(const ProtocolSpec* spec) {
    return free_parsers_[static_cast<size_t>(spec - Protocols().data())];
  }
  std::vector<std::unique_ptr<Connection>> free_conns_;
  // Inference's port hints, worked out once (they cost a search of every protocol's hints per
  // new connection). Bit i stands for Protocols()[i], for the first 64: the protocols with an
  // Infer function on UDP [1] / TCP [0], and the server ports some protocol hints at (sorted).
  uint64_t inferable_[2] = {0, 0};
  std::vector<std::pair<uint16_t, uint64_t>> hinted_ports_;
  // The last port looked up and its protocols: new connections mostly go to a few ports.
  uint16_t last_hint_port_ = 0;
  uint64_t last_hint_mask_ = 0;
  uint64_t HintedAt(uint16_t server_port);
  uint64_t last_scan_ns_ = 0;

  metrics::Counter* inferred_ = nullptr;
  metrics::Counter* inference_failed_ = nullptr;
  metrics::Counter* connections_dropped_ = nullptr;
  metrics::Counter* roles_swapped_ = nullptr;
  metrics::Gauge* connections_ = nullptr;
};

}  // namespace sonde::agent::protocols
