// FlowTracker: decodes packets, keeps the bidirectional flow table, measures TCP behaviour per
// direction, reassembles byte streams for the protocol layer, and emits L4 flow logs and network
// metrics. Single-threaded: one tracker per capture worker, fed by one EventSource.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "agent/capture/event_source.h"
#include "agent/export/record_sink.h"
#include "agent/flow/flow_table.h"
#include "agent/flow/network_metrics_aggregator.h"
#include "agent/flow/packet_decoder.h"
#include "agent/flow/stream_handler.h"
#include "agent/flow/stream_reassembler.h"
#include "common/metrics/registry.h"

namespace sonde::agent::flow {

struct FlowTrackerConfig {
  size_t max_flows = 1u << 20;
  uint64_t tcp_established_timeout_ns = 300'000'000'000ull;
  uint64_t tcp_syn_timeout_ns = 5'000'000'000ull;          // SYN never answered
  uint64_t tcp_half_closed_timeout_ns = 30'000'000'000ull; // one FIN, then silence
  uint64_t tcp_closing_linger_ns = 2'000'000'000ull;       // after FIN+FIN or RST: catch stragglers
  uint64_t udp_timeout_ns = 30'000'000'000ull;
  uint64_t other_timeout_ns = 30'000'000'000ull;           // ICMP
  uint32_t max_reassembly_bytes = 256u << 10;              // per flow direction
  uint64_t max_total_reassembly_bytes = 256ull << 20;      // whole tracker
  uint64_t reassembly_hole_timeout_ns = 1'000'000'000ull;  // skip a hole that old
  uint64_t report_interval_ns = 60'000'000'000ull;         // periodic L4 rows for long flows
  uint64_t tick_interval_ns = 1'000'000'000ull;            // timeout scan / metric flush period
  uint64_t out_of_order_threshold_ns = 3'000'000ull;       // hole filled sooner = reordering
  bool emit_network_metrics = true;
  uint16_t worker_id = 0;                                  // high bits of flow_id
  PacketDecoderConfig decoder;
};

class FlowTracker : public capture::EventSink {
 public:
  // `sink` receives L4FlowLog/NetworkMetric records; `handler` (may be null) receives streams;
  // `registry` (may be null) gets self-metrics. None are owned; all must outlive the tracker.
  FlowTracker(FlowTrackerConfig config, exporting::RecordSink* sink, StreamHandler* handler,
              metrics::Registry* registry);
  ~FlowTracker() override;

  void OnPacket(const capture::PacketView& packet) override;
  // Decodes up to kLookahead packets ahead and prefetches their flows' index slots before
  // handling them in order, as OnPacket would (the index of a large flow table misses the caches
  // on nearly every lookup otherwise).
  void OnPackets(std::span<const capture::PacketView> packets) override;
  void OnIdle(uint64_t now_ns) override;

  // End of input: closes every flow (its real close type if it had one, else agent_exit),
  // flushes pending stream bytes and every metric interval.
  void FlushAll(uint64_t now_ns);

  size_t active_flows() const { return flows_.size(); }
  uint64_t dropped_flows() const { return dropped_flows_; }
  uint64_t decode_count(DecodeResult r) const { return decode_counts_[static_cast<int>(r)]; }
  // Bytes held by the flow table itself (index + flow slab), for memory accounting.
  size_t table_memory_bytes() const;

  struct Flow;  // defined in the .cc

 private:
  // Timeouts and periodic reports: a lazy timer wheel with one slot per tick interval. A flow
  // sits in the slot of the earliest moment it may need attention (deadline or report); when
  // its slot comes up it is closed, reported, or moved to the slot of its new due time. Packets
  // only move a flow when its deadline gets earlier, so most packets never touch the wheel.
  static constexpr uint32_t kWheelSlots = 1024;

  static constexpr size_t kLookahead = 16;
  // A decoded packet's flow key, its hash and which endpoint sent it.
  struct KeyedPacket {
    FlowKey key;
    uint64_t hash = 0;
    bool src_is_a = true;
  };
  static KeyedPacket KeyOf(const DecodedPacket& p);
  // Everything OnPacket does after decoding; `k` is set when `r` is kOk.
  void Handle(uint64_t now, DecodeResult r, const DecodedPacket& p, const KeyedPacket& k);
  Flow* CreateFlow(const FlowKey& key, uint64_t hash, bool src_is_a, const DecodedPacket& p);
  void ProcessTcp(Flow& f, int dir, const DecodedPacket& p);
  void ProcessUdp(Flow& f, int dir, const DecodedPacket& p);
  void Tick(uint64_t now_ns);
  // `erase` false: FlushAll, which closes every flow and then clears the table and the wheel
  // at once instead of unlinking and erasing flows one by one.
  void CloseFlow(Flow& f, common::v1::CloseType type, uint64_t now_ns, bool erase = true);
  void Report(Flow& f, common::v1::CloseType type, uint64_t now_ns);
  void FlushStreams(Flow& f, uint64_t now_ns, uint64_t hole_timeout_ns);
  void FlushFlowMetrics(Flow& f);
  // The flow's pending metric deltas for the second of `now_ns` (flushing an older second).
  struct PendingMetrics;
  PendingMetrics& MetricsAt(Flow& f, uint64_t now_ns);
  NetworkKey MetricKeyOf(const Flow& f) const;
  // The connection of `f`, valid until the next call (one object refilled each time).
  const ConnectionInfo& ConnOf(const Flow& f);
  void SetDeadline(Flow& f, uint64_t deadline_ns);
  void WheelInsert(Flow& f, uint64_t tick);
  void WheelRemove(Flow& f);
  void PublishCounters();

  FlowTrackerConfig config_;
  exporting::RecordSink* sink_;
  StreamHandler* handler_;
  PacketDecoder decoder_;
  NetworkMetricsAggregator metrics_;
  ReassemblyBudget budget_;
  FlowTable<Flow> flows_;
  std::vector<uint32_t> wheel_;           // kWheelSlots list heads (flow indices)
  uint64_t wheel_tick_ = 0;               // last tick number the wheel was advanced to
  bool wheel_started_ = false;
  std::vector<uint32_t> dirty_metrics_;   // flows with packet counts not yet in metrics_
  std::vector<uint32_t> buffering_;       // flows whose reassemblers hold out-of-order bytes
  ConnectionInfo conn_;                   // ConnOf's result
  uint64_t next_flow_seq_ = 0;
  size_t closed_not_erased_ = 0;          // FlushAll: flows closed, still in the table
  uint64_t next_tick_ns_ = 0;
  uint64_t last_time_ns_ = 0;
  uint64_t dropped_flows_ = 0;
  uint64_t decode_counts_[kDecodeResultCount] = {};
  uint64_t published_ok_ = 0;             // decode_counts_[kOk] already added to the registry

  // Self-metrics (owned by the registry).
  metrics::Counter* packets_by_result_[kDecodeResultCount] = {};
  metrics::Counter* flows_created_ = nullptr;
  metrics::Counter* flows_dropped_ = nullptr;
  metrics::Counter* drop_reassembly_gap_ = nullptr;
  metrics::Counter* drop_reassembly_overflow_ = nullptr;
  metrics::Gauge* flows_active_ = nullptr;
};

}  // namespace sonde::agent::flow
