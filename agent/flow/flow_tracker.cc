// Flow table, TCP per-direction analysis, timeouts and L4 flow log emission.
#include "agent/flow/flow_tracker.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "common/log/log.h"

namespace sonde::agent::flow {

using common::v1::CloseType;
using common::v1::RoleSource;

namespace {

constexpr uint64_t kNsPerUs = 1000;

enum class TcpState : uint8_t {
  kSynSent,      // client SYN seen, no SYN-ACK yet
  kSynReceived,  // SYN-ACK seen, final ACK not yet
  kEstablished,
  kHalfClosed,   // one side sent FIN
  kClosing,      // both FINs (or RST): lingering before the row is emitted
};

// Counters reported per row (reset after a periodic report).
struct PeriodCounters {
  uint64_t packets[2] = {};
  uint64_t bytes[2] = {};
  uint64_t payload_bytes[2] = {};
  uint32_t retrans[2] = {};
  uint32_t out_of_order[2] = {};
  uint32_t zero_win[2] = {};
  uint32_t rst[2] = {};
  uint32_t fin[2] = {};
  uint32_t syn_count = 0, synack_count = 0, syn_retrans = 0, synack_retrans = 0;
  uint32_t rtt_client_us = 0, rtt_server_us = 0;
  bool has_rtt = false;
  uint64_t first_ns = 0, last_ns = 0;
};

struct Hole {
  uint32_t begin = 0, end = 0;
  uint64_t created_ns = 0;
};

constexpr uint8_t kMaxHoles = 3;

// Sequence-space tracking of one direction (retransmission / reordering detection). Its holes
// live in the flow's TcpHoles, allocated at the flow's first hole: most flows never have one,
// and 2 x 3 holes inline made up a fifth of every flow.
struct TcpDirection {
  bool seq_init = false;
  bool fin_seen = false;
  uint8_t hole_count = 0;
  uint32_t max_end = 0;  // highest seq + len seen (SYN and FIN count one)
};
using TcpHoles = std::array<std::array<Hole, kMaxHoles>, 2>;  // per direction

constexpr uint32_t kNoFlow = 0xFFFFFFFFu;
constexpr uint64_t kNotScheduled = ~0ull;

// Signed distance a - b in sequence space.
int32_t SeqDiff(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b); }

bool WellKnownPort(uint16_t port) {
  if (port > 0 && port < 1024) return true;
  switch (port) {
    case 1433: case 1521: case 1883: case 2181: case 2379: case 3000: case 3306: case 4222:
    case 5000: case 5432: case 5672: case 6379: case 6443: case 8000: case 8080: case 8081:
    case 8443: case 8883: case 9000: case 9042: case 9090: case 9092: case 9200: case 9300:
    case 11211: case 20880: case 27017:
      return true;
    default:
      return false;
  }
}

// True when `dst` looks like the server side of a packet src -> dst, the first packet seen of a
// flow without handshake evidence. A well-known port is the server's. Otherwise a TCP flow
// picked up mid-stream takes the lower port for the server (listening ports are usually below
// the ephemeral range), but a UDP flow takes its first sender for the client: resolvers and
// other UDP clients draw source ports from the whole 1024-65535 range, so the lower-port rule
// reversed every exchange from a port below the server's and keyed its network metrics per
// client port; a UDP conversation nearly always starts with the client's datagram.
bool DstLooksLikeServer(uint16_t src_port, uint16_t dst_port, bool udp) {
  bool src_known = WellKnownPort(src_port);
  bool dst_known = WellKnownPort(dst_port);
  if (src_known != dst_known) return dst_known;
  if (udp && !src_known) return true;  // neither well known: the first sender is the client
  if (src_port != dst_port) return dst_port < src_port;
  return true;  // no evidence: the first sender is the client
}

}  // namespace

// The per-flow part of NetworkCounters, summed per flow and second before it reaches the
// aggregator (one aggregator update per flow and second instead of several per packet).
struct FlowTracker::PendingMetrics {
  uint64_t bytes_0 = 0, bytes_1 = 0;
  uint32_t packets_0 = 0, packets_1 = 0;
  uint32_t retrans_0 = 0, retrans_1 = 0;
  uint32_t zero_win_0 = 0, zero_win_1 = 0;
  uint32_t rst_0 = 0, rst_1 = 0;
  uint32_t rtt_sum_us = 0, rtt_max_us = 0;
  uint16_t rtt_count = 0;
  uint8_t new_flows = 0, closed_flows = 0;
  uint8_t syn_unanswered = 0, rst_on_syn = 0, timeouts = 0;
};

// One flow. Lives in the FlowTable slab; `index` is its slab position, also used by the timer
// wheel and the dirty lists. The client/server tuple is derived from `key` + `client_is_a`.
struct FlowTracker::Flow {
  FlowKey key;
  uint32_t index = kNoFlow;
  uint32_t wheel_prev = kNoFlow, wheel_next = kNoFlow;
  uint64_t wheel_tick = kNotScheduled;  // tick number of the wheel slot holding the flow
  uint64_t flow_id = 0;
  uint64_t start_ns = 0;
  uint64_t last_ns = 0;
  uint64_t last_report_ns = 0;
  uint64_t syn_ns = 0;
  uint64_t synack_ns = 0;
  uint64_t deadline_ns = 0;  // when the current state times out
  // Network metric deltas of second `metric_second` not yet added to the aggregator.
  PendingMetrics pm;
  uint32_t metric_second = 0;
  NetworkRowHint metric_rows;  // the flow's rows in the metric intervals it last went to
  uint32_t tunnel_id = 0;
  common::v1::TunnelType tunnel_type = common::v1::TUNNEL_TYPE_NONE;
  RoleSource role_source = common::v1::ROLE_SOURCE_UNKNOWN;
  CloseType close_type = common::v1::CLOSE_TYPE_UNKNOWN;  // decided, not yet emitted
  TcpState state = TcpState::kEstablished;
  bool is_tcp = false;
  bool client_is_a = true;
  bool is_ipv4 = true;
  bool reported_once = false;
  bool saw_syn = false;
  bool saw_synack = false;
  bool rtt_server_done = false;
  bool rtt_client_done = false;
  bool synack_since_syn = false;  // synack_ns belongs to the current handshake attempt
  bool metric_dirty = false;
  bool buffering = false;
  PeriodCounters period;
  TcpDirection tcp[2];
  std::unique_ptr<TcpHoles> holes;  // from the first hole on
  // Only when a stream handler is attached: in-order byte streams per direction.
  std::unique_ptr<std::array<StreamReassembler, 2>> streams;

  net::FiveTuple Tuple() const {
    net::FiveTuple t;
    net::IpAddress a = net::IpAddress::V6(key.ip_a.data());
    net::IpAddress b = net::IpAddress::V6(key.ip_b.data());
    t.src_ip = client_is_a ? a : b;
    t.dst_ip = client_is_a ? b : a;
    t.src_port = client_is_a ? key.port_a : key.port_b;
    t.dst_port = client_is_a ? key.port_b : key.port_a;
    t.protocol = static_cast<net::IpProtocol>(key.protocol);
    return t;
  }
};

FlowTracker::FlowTracker(FlowTrackerConfig config, exporting::RecordSink* sink,
                         StreamHandler* handler, metrics::Registry* registry)
    : config_(config),
      sink_(sink),
      handler_(handler),
      decoder_(config.decoder),
      metrics_(config.emit_network_metrics ? sink : nullptr),
      flows_(config.max_flows),
      wheel_(kWheelSlots, kNoFlow) {
  if (config_.tick_interval_ns == 0) config_.tick_interval_ns = 1;
  budget_.max_total_bytes = config_.max_total_reassembly_bytes;
  if (registry != nullptr) {
    for (int i = 0; i < kDecodeResultCount; ++i) {
      packets_by_result_[i] = registry->GetCounter(
          "sonde_agent_flow_packets_total", "Packets seen by flow tracking, by decode result",
          {{"result", std::string(DecodeResultName(static_cast<DecodeResult>(i)))}});
    }
    flows_created_ = registry->GetCounter("sonde_agent_flows_created_total", "Flows created");
    flows_dropped_ = registry->GetCounter("sonde_agent_flow_drops_total",
                                          "Packets or flows dropped by flow tracking",
                                          {{"reason", "flow_table_full"}});
    drop_reassembly_gap_ = registry->GetCounter("sonde_agent_flow_drops_total",
                                                "Packets or flows dropped by flow tracking",
                                                {{"reason", "reassembly_gap"}});
    drop_reassembly_overflow_ = registry->GetCounter(
        "sonde_agent_flow_drops_total", "Packets or flows dropped by flow tracking",
        {{"reason", "reassembly_overflow"}});
    flows_active_ = registry->GetGauge("sonde_agent_flows_active", "Flows in the flow table");
  }
}

FlowTracker::~FlowTracker() = default;

size_t FlowTracker::table_memory_bytes() const { return flows_.memory_bytes(); }

NetworkKey FlowTracker::MetricKeyOf(const Flow& f) const {
  net::FiveTuple t = f.Tuple();
  return NetworkKey{t.src_ip, t.dst_ip, t.dst_port, f.key.protocol};
}

const ConnectionInfo& FlowTracker::ConnOf(const Flow& f) {
  // Only these fields ever differ between flows here (process and TLS fields are eBPF's):
  // refilling one object spares building and destroying one, four strings included, per call.
  // Written field by field: a FiveTuple built on the stack and copied in stalled on store
  // forwarding (its 16-byte loads read back narrower stores).
  conn_.flow_id = f.flow_id;
  const bool a = f.client_is_a;
  conn_.tuple.src_ip = net::IpAddress::V6(a ? f.key.ip_a.data() : f.key.ip_b.data());
  conn_.tuple.dst_ip = net::IpAddress::V6(a ? f.key.ip_b.data() : f.key.ip_a.data());
  conn_.tuple.src_port = a ? f.key.port_a : f.key.port_b;
  conn_.tuple.dst_port = a ? f.key.port_b : f.key.port_a;
  conn_.tuple.protocol = static_cast<net::IpProtocol>(f.key.protocol);
  conn_.role_source = f.role_source;
  return conn_;
}

void FlowTracker::WheelInsert(Flow& f, uint64_t tick) {
  // Never behind the wheel (that slot was already visited) nor a full turn ahead (lazy: the
  // flow is looked at again then and moved on).
  tick = std::clamp(tick, wheel_tick_ + 1, wheel_tick_ + kWheelSlots - 1);
  uint32_t& head = wheel_[tick % kWheelSlots];
  f.wheel_tick = tick;
  f.wheel_prev = kNoFlow;
  f.wheel_next = head;
  if (head != kNoFlow) flows_.At(head)->wheel_prev = f.index;
  head = f.index;
}

void FlowTracker::WheelRemove(Flow& f) {
  if (f.wheel_tick == kNotScheduled) return;
  if (f.wheel_prev != kNoFlow) {
    flows_.At(f.wheel_prev)->wheel_next = f.wheel_next;
  } else {
    wheel_[f.wheel_tick % kWheelSlots] = f.wheel_next;
  }
  if (f.wheel_next != kNoFlow) flows_.At(f.wheel_next)->wheel_prev = f.wheel_prev;
  f.wheel_prev = f.wheel_next = kNoFlow;
  f.wheel_tick = kNotScheduled;
}

void FlowTracker::SetDeadline(Flow& f, uint64_t deadline_ns) {
  f.deadline_ns = deadline_ns;
  uint64_t tick = deadline_ns / config_.tick_interval_ns;
  if (tick < f.wheel_tick) {  // earlier than where the flow waits (or not waiting): move it
    WheelRemove(f);
    WheelInsert(f, tick);
  }
}

void FlowTracker::FlushFlowMetrics(Flow& f) {
  if (!f.metric_dirty) return;
  f.metric_dirty = false;
  const PendingMetrics& m = f.pm;
  NetworkCounters d;
  d.new_flows = m.new_flows;
  d.closed_flows = m.closed_flows;
  d.packets_0 = m.packets_0;
  d.packets_1 = m.packets_1;
  d.bytes_0 = m.bytes_0;
  d.bytes_1 = m.bytes_1;
  d.rtt_sum_us = m.rtt_sum_us;
  d.rtt_count = m.rtt_count;
  d.rtt_max_us = m.rtt_max_us;
  d.retrans_0 = m.retrans_0;
  d.retrans_1 = m.retrans_1;
  d.zero_win_0 = m.zero_win_0;
  d.zero_win_1 = m.zero_win_1;
  d.syn_unanswered = m.syn_unanswered;
  d.rst_on_syn = m.rst_on_syn;
  d.rst_0 = m.rst_0;
  d.rst_1 = m.rst_1;
  d.timeouts = m.timeouts;
  metrics_.Add(MetricKeyOf(f), uint64_t{f.metric_second} * 1'000'000'000ull, d, &f.metric_rows);
  f.pm = PendingMetrics{};
}

FlowTracker::PendingMetrics& FlowTracker::MetricsAt(Flow& f, uint64_t now_ns) {
  uint32_t second = static_cast<uint32_t>(now_ns / 1'000'000'000ull);
  if (f.metric_dirty && second != f.metric_second) FlushFlowMetrics(f);
  if (!f.metric_dirty) {
    f.metric_dirty = true;
    f.metric_second = second;
    dirty_metrics_.push_back(f.index);
    // Time that stands still never ticks: keep the list bounded anyway.
    if (dirty_metrics_.size() > 2 * (flows_.size() - closed_not_erased_) + 4096) [[unlikely]] {
      for (uint32_t index : dirty_metrics_) {
        if (index != f.index) FlushFlowMetrics(*flows_.At(index));
      }
      dirty_metrics_.assign(1, f.index);
    }
  }
  return f.pm;
}

void FlowTracker::PublishCounters() {
  auto* ok = packets_by_result_[static_cast<int>(DecodeResult::kOk)];
  if (ok != nullptr) ok->Inc(decode_counts_[static_cast<int>(DecodeResult::kOk)] - published_ok_);
  published_ok_ = decode_counts_[static_cast<int>(DecodeResult::kOk)];
  if (flows_active_) flows_active_->Set(static_cast<int64_t>(flows_.size()));
}

void FlowTracker::OnPacket(const capture::PacketView& packet) {
  DecodedPacket p;
  const DecodeResult r = decoder_.Decode(packet, &p);
  Handle(packet.timestamp_ns, r, p, r == DecodeResult::kOk ? KeyOf(p) : KeyedPacket{});
}

FlowTracker::KeyedPacket FlowTracker::KeyOf(const DecodedPacket& p) {
  KeyedPacket k;
  k.key = FlowKey::Of(p.tuple, &k.src_is_a);
  k.hash = k.key.Hash();
  return k;
}

void FlowTracker::OnPackets(std::span<const capture::PacketView> packets) {
  std::array<DecodedPacket, kLookahead> p;
  std::array<DecodeResult, kLookahead> r;
  std::array<KeyedPacket, kLookahead> k;
  for (size_t done = 0; done < packets.size();) {
    // Decoding is independent of flow state, so a window is decoded first. Except after a
    // reassembled datagram: its payload lives in the decoder's buffer until the next Decode.
    size_t n = 0;
    while (n < kLookahead && done + n < packets.size()) {
      const uint64_t reassembled = decoder_.datagrams_reassembled();
      r[n] = decoder_.Decode(packets[done + n], &p[n]);
      if (r[n] == DecodeResult::kOk) {
        k[n] = KeyOf(p[n]);
        flows_.Prefetch(k[n].hash);
      }
      ++n;
      if (decoder_.datagrams_reassembled() != reassembled) break;
    }
    // Then handled in order; by now the first ones' index slots have arrived.
    for (size_t i = 0; i < n; ++i) Handle(packets[done + i].timestamp_ns, r[i], p[i], k[i]);
    done += n;
  }
}

void FlowTracker::Handle(uint64_t now, DecodeResult r, const DecodedPacket& p,
                         const KeyedPacket& k) {
  ++decode_counts_[static_cast<int>(r)];
  if (now > last_time_ns_) last_time_ns_ = now;
  if (!wheel_started_) {
    wheel_started_ = true;
    wheel_tick_ = now / config_.tick_interval_ns;
    next_tick_ns_ = now + config_.tick_interval_ns;
  }
  if (last_time_ns_ >= next_tick_ns_) Tick(last_time_ns_);
  if (r != DecodeResult::kOk) [[unlikely]] {
    // Failures are rare and tests read them at once; successes are published each tick.
    if (packets_by_result_[static_cast<int>(r)]) packets_by_result_[static_cast<int>(r)]->Inc();
    return;
  }

  const FlowKey& key = k.key;
  const uint64_t hash = k.hash;
  const bool src_is_a = k.src_is_a;
  Flow* f = flows_.Find(key, hash);
  // A new SYN on a connection that already ended starts a new flow (port reuse).
  if (f != nullptr && f->state == TcpState::kClosing && f->is_tcp &&
      (p.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn) [[unlikely]] {
    CloseFlow(*f, f->close_type, now);
    f = nullptr;
  }
  if (f == nullptr) {
    f = CreateFlow(key, hash, src_is_a, p);
    if (f == nullptr) return;
  }
  int dir = src_is_a == f->client_is_a ? 0 : 1;
  if (now > f->last_ns) f->last_ns = now;
  PeriodCounters& c = f->period;
  if (c.first_ns == 0) c.first_ns = now;
  if (now > c.last_ns) c.last_ns = now;
  c.packets[dir]++;
  c.bytes[dir] += p.l3_bytes;
  c.payload_bytes[dir] += p.payload_wire_bytes;
  if (config_.emit_network_metrics) {
    PendingMetrics& m = MetricsAt(*f, now);
    (dir == 0 ? m.packets_0 : m.packets_1)++;
    (dir == 0 ? m.bytes_0 : m.bytes_1) += p.l3_bytes;
  }
  switch (p.tuple.protocol) {
    case net::IpProtocol::kTcp:
      ProcessTcp(*f, dir, p);
      break;
    case net::IpProtocol::kUdp:
      ProcessUdp(*f, dir, p);
      break;
    default:
      SetDeadline(*f, now + config_.other_timeout_ns);
      break;
  }
}

FlowTracker::Flow* FlowTracker::CreateFlow(const FlowKey& key, uint64_t hash, bool src_is_a,
                                           const DecodedPacket& p) {
  uint32_t index = kNoFlow;
  Flow* fp = flows_.Insert(key, hash, &index);
  if (fp == nullptr) {
    ++dropped_flows_;
    if (flows_dropped_) flows_dropped_->Inc();
    return nullptr;
  }
  Flow& f = *fp;
  f.index = index;
  f.flow_id = (static_cast<uint64_t>(config_.worker_id) << 48) | ++next_flow_seq_;
  f.start_ns = f.last_ns = f.last_report_ns = p.timestamp_ns;
  f.tunnel_type = p.tunnel_type;
  f.tunnel_id = p.tunnel_id;
  f.is_ipv4 = p.is_ipv4;
  bool client_is_src = true;
  if (p.tuple.protocol == net::IpProtocol::kTcp) {
    f.is_tcp = true;
    if (handler_ != nullptr) f.streams = std::make_unique<std::array<StreamReassembler, 2>>();
    uint8_t syn_ack = p.tcp_flags & (kTcpSyn | kTcpAck);
    if (syn_ack == kTcpSyn) {
      f.role_source = common::v1::ROLE_SOURCE_HANDSHAKE;
      f.state = TcpState::kSynSent;
    } else if (syn_ack == (kTcpSyn | kTcpAck)) {
      f.role_source = common::v1::ROLE_SOURCE_HANDSHAKE;
      f.state = TcpState::kSynReceived;
      client_is_src = false;
    } else {
      f.role_source = common::v1::ROLE_SOURCE_PORT_HEURISTIC;
      client_is_src = DstLooksLikeServer(p.tuple.src_port, p.tuple.dst_port, /*udp=*/false);
    }
  } else if (p.tuple.protocol == net::IpProtocol::kUdp) {
    f.role_source = common::v1::ROLE_SOURCE_PORT_HEURISTIC;
    client_is_src = DstLooksLikeServer(p.tuple.src_port, p.tuple.dst_port, /*udp=*/true);
  }
  f.client_is_a = client_is_src == src_is_a;
  // Scheduled for its first report; the protocol step below sets the real deadline earlier.
  WheelInsert(f, (f.last_report_ns + config_.report_interval_ns) / config_.tick_interval_ns);
  if (flows_created_) flows_created_->Inc();
  if (config_.emit_network_metrics) MetricsAt(f, p.timestamp_ns).new_flows = 1;
  return &f;
}

void FlowTracker::ProcessTcp(Flow& f, int dir, const DecodedPacket& p) {
  uint64_t now = p.timestamp_ns;
  PeriodCounters& c = f.period;
  TcpDirection& d = f.tcp[dir];
  uint8_t flags = p.tcp_flags;
  bool syn = flags & kTcpSyn, ack = flags & kTcpAck, rst = flags & kTcpRst, fin = flags & kTcpFin;
  PendingMetrics& md = f.pm;  // stamped with this packet's second by OnPacket

  // Handshake and RTT split: server side = SYN -> SYN-ACK, client side = SYN-ACK -> ACK.
  if (syn && !ack) {
    c.syn_count++;
    // A repeated SYN (or SYN-ACK) is a retransmission too, as DeepFlow and TShark count it;
    // syn_retrans / synack_retrans tell the handshake part apart.
    if (f.saw_syn) {
      c.syn_retrans++;
      c.retrans[dir]++;
      (dir == 0 ? md.retrans_0 : md.retrans_1)++;
    }
    if (f.saw_synack && !f.saw_syn) {
      // A SYN after the SYN-ACK with no SYN before it (reordered capture): the handshake
      // timing is meaningless.
      f.rtt_server_done = f.rtt_client_done = true;
    } else if (f.saw_synack && !f.rtt_client_done) {
      // The SYN is sent again after a SYN-ACK: that SYN-ACK never reached the client, so the
      // handshake that counts starts now (as TShark's iRTT sees it).
      f.rtt_server_done = false;
      f.synack_since_syn = false;
    }
    f.saw_syn = true;
    f.syn_ns = now;
  } else if (syn && ack) {
    c.synack_count++;
    if (f.saw_synack) {
      c.synack_retrans++;
      c.retrans[dir]++;
      (dir == 0 ? md.retrans_0 : md.retrans_1)++;
    }
    if (f.saw_syn && !f.rtt_server_done && now >= f.syn_ns) {
      c.rtt_server_us = static_cast<uint32_t>((now - f.syn_ns) / kNsPerUs);
      f.rtt_server_done = true;
    }
    // The client side is timed from the first SYN-ACK answering the SYN: a retransmitted
    // SYN-ACK means the ACK was slow or lost, which is part of the client-side time (TShark's
    // iRTT and DeepFlow's rtt_client both count it so).
    if (!f.synack_since_syn) {
      f.synack_since_syn = true;
      f.synack_ns = now;
    }
    f.saw_synack = true;
    if (f.state == TcpState::kSynSent) f.state = TcpState::kSynReceived;
  } else if (ack && dir == 0 && f.state == TcpState::kSynReceived) {
    if (f.saw_synack && !f.rtt_client_done && now >= f.synack_ns) {
      c.rtt_client_us = static_cast<uint32_t>((now - f.synack_ns) / kNsPerUs);
      f.rtt_client_done = true;
      if (f.rtt_server_done) {
        c.has_rtt = true;
        uint32_t rtt = c.rtt_client_us + c.rtt_server_us;
        md.rtt_sum_us += rtt;
        md.rtt_count++;
        md.rtt_max_us = std::max(md.rtt_max_us, rtt);
      }
    }
    f.state = TcpState::kEstablished;
  } else if (f.state == TcpState::kSynReceived && dir == 1 && !rst) {
    // Server data after the SYN-ACK implies the handshake completed unseen.
    if (p.payload_wire_bytes > 0) f.state = TcpState::kEstablished;
  }

  if (!rst && p.tcp_window == 0) {
    c.zero_win[dir]++;
    (dir == 0 ? md.zero_win_0 : md.zero_win_1)++;
  }

  // Retransmission / reordering, on segments that occupy sequence space (SYN excluded: its
  // repeats are counted as syn_retrans / synack_retrans).
  uint32_t seg_len = p.payload_wire_bytes + (fin ? 1 : 0);
  if (syn) {
    if (!d.seq_init) {
      d.seq_init = true;
      d.max_end = p.tcp_seq + 1 + seg_len;
    }
    if (f.streams && !(*f.streams)[dir].initialized()) (*f.streams)[dir].InitAt(p.tcp_seq + 1);
  } else if (seg_len > 0 && !rst) {
    uint32_t seq = p.tcp_seq;
    uint32_t end = seq + seg_len;
    if (!d.seq_init) {
      d.seq_init = true;
      d.max_end = end;
    } else {
      int32_t ahead = SeqDiff(seq, d.max_end);
      if (ahead == 0) {
        d.max_end = end;
      } else if (ahead > 0) {
        if (d.hole_count < kMaxHoles) {
          if (!f.holes) f.holes = std::make_unique<TcpHoles>();
          (*f.holes)[dir][d.hole_count++] = Hole{d.max_end, seq, now};
        }
        d.max_end = end;
      } else if (p.payload_wire_bytes <= 1 && !fin && SeqDiff(seq, d.max_end) == -1) {
        // Keep-alive or zero-window probe: one old byte (or none), not a retransmission.
      } else {
        bool filled_hole = false;
        for (uint8_t i = 0; i < d.hole_count; ++i) {
          std::array<Hole, kMaxHoles>& holes = (*f.holes)[dir];
          Hole& h = holes[i];
          if (SeqDiff(end, h.begin) > 0 && SeqDiff(seq, h.end) < 0) {
            filled_hole = true;
            bool reordered = now - h.created_ns < config_.out_of_order_threshold_ns;
            if (reordered) {
              c.out_of_order[dir]++;
            } else {
              c.retrans[dir]++;
              (dir == 0 ? md.retrans_0 : md.retrans_1)++;
            }
            // Shrink or drop the hole.
            if (SeqDiff(seq, h.begin) <= 0 && SeqDiff(end, h.end) >= 0) {
              holes[i] = holes[--d.hole_count];
            } else if (SeqDiff(seq, h.begin) <= 0) {
              h.begin = end;
            } else {
              h.end = seq;
            }
            break;
          }
        }
        if (!filled_hole) {
          c.retrans[dir]++;
          (dir == 0 ? md.retrans_0 : md.retrans_1)++;
        }
        if (SeqDiff(end, d.max_end) > 0) d.max_end = end;
      }
    }
  }

  // Stream hand-off.
  if (f.streams && p.payload_wire_bytes > 0 && !rst) {
    StreamReassembler& stream = (*f.streams)[dir];
    uint32_t data_seq = p.tcp_seq + (syn ? 1 : 0);
    const ConnectionInfo& conn = ConnOf(f);
    auto deliver = [&](const ReassembledChunk& rc) {
      StreamChunk chunk;
      chunk.timestamp_ns = rc.timestamp_ns;
      chunk.tcp_seq = rc.tcp_seq;
      chunk.data = rc.data;
      chunk.gap_bytes_before = rc.gap_bytes_before;
      if (rc.gap_bytes_before && drop_reassembly_gap_) drop_reassembly_gap_->Inc();
      handler_->OnData(conn, dir == 0 ? StreamDirection::kRequest : StreamDirection::kResponse,
                       chunk);
    };
    auto outcome = stream.AddSegment(now, data_seq, p.payload, p.payload_wire_bytes,
                                     config_.max_reassembly_bytes, &budget_, deliver);
    if (outcome == StreamReassembler::SegmentOutcome::kForcedGap && drop_reassembly_overflow_) {
      drop_reassembly_overflow_->Inc();
    }
    stream.FlushHoles(now, config_.reassembly_hole_timeout_ns, &budget_, deliver);
    if (stream.buffered_bytes() > 0 && !f.buffering) {
      f.buffering = true;
      buffering_.push_back(f.index);
    }
  }

  // Teardown.
  if (rst) {
    c.rst[dir]++;
    (dir == 0 ? md.rst_0 : md.rst_1)++;
    if (f.close_type == common::v1::CLOSE_TYPE_UNKNOWN ||
        f.close_type == common::v1::CLOSE_TYPE_FIN) {
      if (f.state == TcpState::kSynSent && dir == 1) {
        f.close_type = common::v1::CLOSE_TYPE_RST_ON_SYN;
      } else {
        f.close_type = dir == 0 ? common::v1::CLOSE_TYPE_CLIENT_RST : common::v1::CLOSE_TYPE_SERVER_RST;
      }
    }
    f.state = TcpState::kClosing;
    SetDeadline(f, now + config_.tcp_closing_linger_ns);
  } else if (fin) {
    if (!d.fin_seen) c.fin[dir]++;
    d.fin_seen = true;
    if (f.tcp[0].fin_seen && f.tcp[1].fin_seen) {
      if (f.state != TcpState::kClosing) {
        f.state = TcpState::kClosing;
        f.close_type = common::v1::CLOSE_TYPE_FIN;
        SetDeadline(f, now + config_.tcp_closing_linger_ns);
      }
    } else if (f.state != TcpState::kClosing) {
      f.state = TcpState::kHalfClosed;
      SetDeadline(f, now + config_.tcp_half_closed_timeout_ns);
    }
  } else if (f.state == TcpState::kSynSent) {
    SetDeadline(f, now + config_.tcp_syn_timeout_ns);
  } else if (f.state == TcpState::kHalfClosed) {
    SetDeadline(f, now + config_.tcp_half_closed_timeout_ns);
  } else if (f.state != TcpState::kClosing) {
    SetDeadline(f, now + config_.tcp_established_timeout_ns);
  }
}

void FlowTracker::ProcessUdp(Flow& f, int dir, const DecodedPacket& p) {
  SetDeadline(f, p.timestamp_ns + config_.udp_timeout_ns);
  if (handler_ == nullptr || p.payload.empty()) return;
  StreamChunk chunk;
  chunk.timestamp_ns = p.timestamp_ns;
  chunk.data = p.payload;
  chunk.is_datagram = true;
  handler_->OnData(ConnOf(f), dir == 0 ? StreamDirection::kRequest : StreamDirection::kResponse,
                   chunk);
}

void FlowTracker::FlushStreams(Flow& f, uint64_t now_ns, uint64_t hole_timeout_ns) {
  if (handler_ == nullptr || !f.streams) return;
  // Filled on first use: most flows hold nothing to flush (every close of a TCP flow comes here).
  const ConnectionInfo* conn = nullptr;
  for (int dir = 0; dir < 2; ++dir) {
    (*f.streams)[dir].FlushHoles(now_ns, hole_timeout_ns, &budget_, [&](const ReassembledChunk& rc) {
      if (conn == nullptr) conn = &ConnOf(f);
      StreamChunk chunk;
      chunk.timestamp_ns = rc.timestamp_ns;
      chunk.tcp_seq = rc.tcp_seq;
      chunk.data = rc.data;
      chunk.gap_bytes_before = rc.gap_bytes_before;
      handler_->OnData(*conn, dir == 0 ? StreamDirection::kRequest : StreamDirection::kResponse,
                       chunk);
    });
  }
  if ((*f.streams)[0].buffered_bytes() == 0 && (*f.streams)[1].buffered_bytes() == 0) {
    f.buffering = false;
  }
}

void FlowTracker::Report(Flow& f, CloseType type, uint64_t now_ns) {
  PeriodCounters& c = f.period;
  if (sink_ != nullptr) {
    v1::L4FlowLog r;
    uint64_t end_ns = c.last_ns != 0 ? c.last_ns : f.last_ns;
    uint64_t start_ns = f.start_ns;
    r.set_time(static_cast<uint32_t>(end_ns / 1'000'000'000ull));
    r.set_start_time_us(start_ns / kNsPerUs);
    r.set_end_time_us(end_ns / kNsPerUs);
    r.set_signal_source(common::v1::SIGNAL_SOURCE_PACKET);
    r.set_flow_id(f.flow_id);
    bool v4 = f.is_ipv4;
    net::FiveTuple tuple = f.Tuple();
    r.set_is_ipv4(v4 ? 1 : 0);
    if (v4) {
      r.set_ip4_0(tuple.src_ip.v4());
      r.set_ip4_1(tuple.dst_ip.v4());
    } else {
      r.set_ip6_0(std::string(tuple.src_ip.bytes().begin(), tuple.src_ip.bytes().end()));
      r.set_ip6_1(std::string(tuple.dst_ip.bytes().begin(), tuple.dst_ip.bytes().end()));
    }
    r.set_client_port(tuple.src_port);
    r.set_server_port(tuple.dst_port);
    r.set_protocol(static_cast<uint32_t>(tuple.protocol));
    r.set_role_source(f.role_source);
    r.set_tunnel_type(f.tunnel_type);
    r.set_tunnel_id(f.tunnel_id);
    auto l7 = handler_ != nullptr ? handler_->ProtocolOf(f.flow_id) : common::v1::L7_PROTOCOL_UNKNOWN;
    r.set_l7_protocol(l7);
    r.set_is_encrypted(l7 == common::v1::L7_PROTOCOL_TLS ? 1 : 0);
    r.set_close_type(type);
    r.set_is_new_flow(f.reported_once ? 0 : 1);
    r.set_duration_us(end_ns > start_ns ? (end_ns - start_ns) / kNsPerUs : 0);
    r.set_packets_0(c.packets[0]);
    r.set_packets_1(c.packets[1]);
    r.set_bytes_0(c.bytes[0]);
    r.set_bytes_1(c.bytes[1]);
    r.set_payload_bytes_0(c.payload_bytes[0]);
    r.set_payload_bytes_1(c.payload_bytes[1]);
    r.set_rtt_client_us(c.rtt_client_us);
    r.set_rtt_server_us(c.rtt_server_us);
    r.set_rtt_us(c.has_rtt ? c.rtt_client_us + c.rtt_server_us : 0);
    r.set_retrans_0(c.retrans[0]);
    r.set_retrans_1(c.retrans[1]);
    r.set_out_of_order_0(c.out_of_order[0]);
    r.set_out_of_order_1(c.out_of_order[1]);
    r.set_zero_win_0(c.zero_win[0]);
    r.set_zero_win_1(c.zero_win[1]);
    r.set_syn_count(c.syn_count);
    r.set_synack_count(c.synack_count);
    r.set_syn_retrans(c.syn_retrans);
    r.set_synack_retrans(c.synack_retrans);
    r.set_rst_0(c.rst[0]);
    r.set_rst_1(c.rst[1]);
    r.set_fin_0(c.fin[0]);
    r.set_fin_1(c.fin[1]);
    sink_->Emit(std::move(r));
  }
  f.reported_once = true;
  f.last_report_ns = now_ns;
  c = PeriodCounters{};
}

void FlowTracker::CloseFlow(Flow& f, CloseType type, uint64_t now_ns, bool erase) {
  if (erase) WheelRemove(f);
  FlushStreams(f, now_ns, 0);
  if (handler_ != nullptr) handler_->OnClose(ConnOf(f), f.last_ns);
  Report(f, type, now_ns);
  if (config_.emit_network_metrics) {
    // A timeout happens at its deadline; any other close at the flow's last packet.
    bool timed_out = type == common::v1::CLOSE_TYPE_TIMEOUT ||
                     type == common::v1::CLOSE_TYPE_HALF_CLOSED_TIMEOUT ||
                     type == common::v1::CLOSE_TYPE_SYN_UNANSWERED;
    uint64_t at = timed_out ? std::max(f.last_ns, std::min(now_ns, f.deadline_ns)) : f.last_ns;
    PendingMetrics& d = MetricsAt(f, at);
    d.closed_flows = 1;
    if (type == common::v1::CLOSE_TYPE_SYN_UNANSWERED) d.syn_unanswered = 1;
    if (type == common::v1::CLOSE_TYPE_RST_ON_SYN) d.rst_on_syn = 1;
    if (type == common::v1::CLOSE_TYPE_TIMEOUT || type == common::v1::CLOSE_TYPE_HALF_CLOSED_TIMEOUT) {
      d.timeouts = 1;
    }
    FlushFlowMetrics(f);
  }
  if (erase) {
    flows_.Erase(f.index);
  } else {
    ++closed_not_erased_;
  }
}

void FlowTracker::Tick(uint64_t now_ns) {
  next_tick_ns_ = now_ns + config_.tick_interval_ns;
  uint64_t cur = now_ns / config_.tick_interval_ns;
  if (cur > wheel_tick_) {
    uint64_t from = wheel_tick_ + 1;
    uint64_t slots = std::min<uint64_t>(cur - from + 1, kWheelSlots);
    wheel_tick_ = cur;
    for (uint64_t k = 0; k < slots; ++k) {
      uint32_t& head = wheel_[(from + k) % kWheelSlots];
      uint32_t next = head;
      head = kNoFlow;  // detached: flows moved on below land in live lists
      while (next != kNoFlow) {
        Flow& f = *flows_.At(next);
        next = f.wheel_next;
        f.wheel_prev = f.wheel_next = kNoFlow;
        f.wheel_tick = kNotScheduled;
        if (f.deadline_ns != 0 && now_ns >= f.deadline_ns) {
          CloseType type = common::v1::CLOSE_TYPE_TIMEOUT;
          if (f.is_tcp) {
            if (f.state == TcpState::kSynSent) {
              type = common::v1::CLOSE_TYPE_SYN_UNANSWERED;
            } else if (f.state == TcpState::kHalfClosed) {
              type = common::v1::CLOSE_TYPE_HALF_CLOSED_TIMEOUT;
            } else if (f.state == TcpState::kClosing) {
              type = f.close_type;
            }
          }
          CloseFlow(f, type, now_ns);
          continue;
        }
        if (now_ns >= f.last_report_ns + config_.report_interval_ns) {
          if (f.period.packets[0] + f.period.packets[1] > 0) {
            Report(f, common::v1::CLOSE_TYPE_PERIODIC, now_ns);
          } else {
            f.last_report_ns = now_ns;  // idle: next periodic row one interval from now
          }
        }
        uint64_t due = std::min<uint64_t>(f.deadline_ns != 0 ? f.deadline_ns : ~0ull,
                                f.last_report_ns + config_.report_interval_ns);
        WheelInsert(f, due / config_.tick_interval_ns);
      }
    }
  }
  if (handler_ != nullptr && !buffering_.empty()) {
    std::vector<uint32_t> still;
    for (uint32_t index : buffering_) {
      Flow& f = *flows_.At(index);
      if (!f.buffering) continue;
      FlushStreams(f, now_ns, config_.reassembly_hole_timeout_ns);
      if (f.buffering) still.push_back(index);
    }
    std::sort(still.begin(), still.end());
    still.erase(std::unique(still.begin(), still.end()), still.end());
    buffering_.swap(still);
  }
  if (config_.emit_network_metrics) {
    for (uint32_t index : dirty_metrics_) FlushFlowMetrics(*flows_.At(index));
    dirty_metrics_.clear();
    metrics_.Advance(now_ns);
  }
  PublishCounters();
  if (handler_ != nullptr) handler_->OnTick(now_ns);
}

void FlowTracker::OnIdle(uint64_t now_ns) {
  if (now_ns > last_time_ns_) last_time_ns_ = now_ns;
  if (!wheel_started_) {
    wheel_started_ = true;
    wheel_tick_ = last_time_ns_ / config_.tick_interval_ns;
  }
  if (next_tick_ns_ == 0 || last_time_ns_ >= next_tick_ns_) Tick(last_time_ns_);
}

void FlowTracker::FlushAll(uint64_t now_ns) {
  if (now_ns < last_time_ns_) now_ns = last_time_ns_;
  std::vector<std::pair<uint64_t, uint32_t>> order;  // by flow id: deterministic output
  order.reserve(flows_.size());
  // Collected in slab order (a sequential walk; an erased slot holds a default Flow, whose index
  // is kNoFlow). Flow ids grow with creation and slots are reused only after an erase, so the
  // list is often sorted already; otherwise ids are unique, and when they span a range not much
  // larger than their count they are placed by id directly instead of sorted.
  flows_.ForEachSlabEntry([&](uint32_t index, Flow& f) {
    if (f.index == index) order.emplace_back(f.flow_id, index);
  });
  if (!std::is_sorted(order.begin(), order.end())) {
    uint64_t lo = ~0ull, hi = 0;
    for (const auto& [id, index] : order) {
      lo = std::min(lo, id);
      hi = std::max(hi, id);
    }
    if (hi - lo < 4 * uint64_t{order.size()} + 4096) {
      std::vector<uint32_t> by_id(hi - lo + 1, kNoFlow);
      for (const auto& [id, index] : order) by_id[id - lo] = index;
      order.clear();
      for (uint64_t k = 0; k < by_id.size(); ++k) {
        if (by_id[k] != kNoFlow) order.emplace_back(lo + k, by_id[k]);
      }
    } else {
      std::sort(order.begin(), order.end());
    }
  }
  // Every flow is closed, then the table and the timer wheel are emptied at once: closing one
  // by one unlinked each flow from its wheel list (touching two other flows at random) and
  // erased it from the index (a random slot, and a reset of the whole flow).
  constexpr size_t kPrefetchAhead = 16;
  for (size_t i = 0; i < order.size(); ++i) {
    if (i + kPrefetchAhead < order.size()) {
      __builtin_prefetch(flows_.At(order[i + kPrefetchAhead].second));
    }
    Flow& f = *flows_.At(order[i].second);
    CloseType type = f.close_type;
    if (f.state != TcpState::kClosing || type == common::v1::CLOSE_TYPE_UNKNOWN) {
      type = common::v1::CLOSE_TYPE_AGENT_EXIT;
    }
    if (!f.is_tcp) type = common::v1::CLOSE_TYPE_AGENT_EXIT;
    CloseFlow(f, type, now_ns, /*erase=*/false);
  }
  flows_.Clear();
  std::fill(wheel_.begin(), wheel_.end(), kNoFlow);
  closed_not_erased_ = 0;
  dirty_metrics_.clear();
  buffering_.clear();
  if (config_.emit_network_metrics) metrics_.FlushAll();
  PublishCounters();
  if (handler_ != nullptr) handler_->OnTick(now_ns);
  if (sink_ != nullptr) sink_->Flush();
}

}  // namespace sonde::agent::flow
