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

struct TcpDirection {
  bool seq_init = false;
  bool fin_seen = false;
  uint32_t max_end = 0;  // highest seq + len seen (SYN and FIN count one)
  std::array<Hole, 3> holes{};
  uint8_t hole_count = 0;
  StreamReassembler stream;
};

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

// True when `dst` looks like the server side of a packet src -> dst.
bool DstLooksLikeServer(uint16_t src_port, uint16_t dst_port) {
  bool src_known = WellKnownPort(src_port);
  bool dst_known = WellKnownPort(dst_port);
  if (src_known != dst_known) return dst_known;
  if (src_port != dst_port) return dst_port < src_port;
  return true;  // no evidence: the first sender is the client
}

}  // namespace

struct FlowTracker::Flow {
  uint64_t flow_id = 0;
  net::FiveTuple tuple;  // src = client
  uint64_t start_ns = 0;
  uint64_t last_ns = 0;
  uint64_t last_report_ns = 0;
  uint64_t syn_ns = 0;
  uint64_t synack_ns = 0;
  uint64_t deadline_ns = 0;  // when the current state times out
  common::v1::TunnelType tunnel_type = common::v1::TUNNEL_TYPE_NONE;
  uint32_t tunnel_id = 0;
  RoleSource role_source = common::v1::ROLE_SOURCE_UNKNOWN;
  CloseType close_type = common::v1::CLOSE_TYPE_UNKNOWN;  // decided, not yet emitted
  TcpState state = TcpState::kEstablished;
  bool is_ipv4 = true;
  bool reported_once = false;
  bool saw_syn = false;
  bool saw_synack = false;
  bool rtt_server_done = false;
  bool rtt_client_done = false;
  PeriodCounters period;
  std::unique_ptr<TcpDirection> tcp[2];  // TCP only
};

size_t FlowTracker::KeyHash::operator()(const Key& k) const {
  uint64_t h = 0x9E3779B97F4A7C15ull ^
               (static_cast<uint64_t>(k.port_a) << 24 | static_cast<uint64_t>(k.port_b) << 8 |
                k.protocol);
  const auto& a = k.a.bytes();
  const auto& b = k.b.bytes();
  for (size_t i = 0; i < 16; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    h = (h ^ x) * 0xFF51AFD7ED558CCDull;
    h = (h ^ y) * 0xC4CEB9FE1A85EC53ull;
  }
  return h ^ (h >> 31);
}

FlowTracker::Key FlowTracker::KeyOf(const net::FiveTuple& t) {
  bool keep = t.src_ip < t.dst_ip || (t.src_ip == t.dst_ip && t.src_port <= t.dst_port);
  Key k;
  if (keep) {
    k.a = t.src_ip, k.b = t.dst_ip, k.port_a = t.src_port, k.port_b = t.dst_port;
  } else {
    k.a = t.dst_ip, k.b = t.src_ip, k.port_a = t.dst_port, k.port_b = t.src_port;
  }
  k.protocol = static_cast<uint8_t>(t.protocol);
  return k;
}

FlowTracker::FlowTracker(FlowTrackerConfig config, exporting::RecordSink* sink,
                         StreamHandler* handler, metrics::Registry* registry)
    : config_(config),
      sink_(sink),
      handler_(handler),
      decoder_(config.decoder),
      metrics_(config.emit_network_metrics ? sink : nullptr) {
  budget_.max_total_bytes = config_.max_total_reassembly_bytes;
  flows_.reserve(std::min<size_t>(config_.max_flows, 1u << 16));
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

NetworkKey FlowTracker::MetricKeyOf(const Flow& f) const {
  return NetworkKey{f.tuple.src_ip, f.tuple.dst_ip, f.tuple.dst_port,
                    static_cast<uint8_t>(f.tuple.protocol)};
}

void FlowTracker::OnPacket(const capture::PacketView& packet) {
  DecodedPacket p;
  DecodeResult r = decoder_.Decode(packet, &p);
  ++decode_counts_[static_cast<int>(r)];
  if (packets_by_result_[static_cast<int>(r)]) packets_by_result_[static_cast<int>(r)]->Inc();
  uint64_t now = packet.timestamp_ns;
  if (now > last_time_ns_) last_time_ns_ = now;
  if (next_tick_ns_ == 0) next_tick_ns_ = now + config_.tick_interval_ns;
  if (last_time_ns_ >= next_tick_ns_) Tick(last_time_ns_);
  if (r != DecodeResult::kOk) return;

  Key key = KeyOf(p.tuple);
  auto it = flows_.find(key);
  Flow* f = it == flows_.end() ? nullptr : it->second.get();
  // A new SYN on a connection that already ended starts a new flow (port reuse).
  if (f != nullptr && p.tuple.protocol == net::IpProtocol::kTcp &&
      (p.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn && f->state == TcpState::kClosing) {
    CloseFlow(it, f->close_type, now);
    f = nullptr;
  }
  if (f == nullptr) {
    f = CreateFlow(key, p);
    if (f == nullptr) return;
  }
  int dir = (p.tuple.src_ip == f->tuple.src_ip && p.tuple.src_port == f->tuple.src_port) ? 0 : 1;
  f->last_ns = std::max(f->last_ns, now);
  PeriodCounters& c = f->period;
  if (c.first_ns == 0) c.first_ns = now;
  c.last_ns = std::max(c.last_ns, now);
  c.packets[dir]++;
  c.bytes[dir] += p.l3_bytes;
  c.payload_bytes[dir] += p.payload_wire_bytes;
  if (config_.emit_network_metrics) {
    NetworkCounters d;
    (dir == 0 ? d.packets_0 : d.packets_1) = 1;
    (dir == 0 ? d.bytes_0 : d.bytes_1) = p.l3_bytes;
    metrics_.Add(MetricKeyOf(*f), now, d);
  }
  switch (p.tuple.protocol) {
    case net::IpProtocol::kTcp:
      ProcessTcp(*f, dir, p);
      break;
    case net::IpProtocol::kUdp:
      ProcessUdp(*f, dir, p);
      break;
    default:
      f->deadline_ns = now + config_.other_timeout_ns;
      break;
  }
}

FlowTracker::Flow* FlowTracker::CreateFlow(const Key& key, const DecodedPacket& p) {
  if (flows_.size() >= config_.max_flows) {
    ++dropped_flows_;
    if (flows_dropped_) flows_dropped_->Inc();
    return nullptr;
  }
  auto flow = std::make_unique<Flow>();
  Flow& f = *flow;
  f.flow_id = (static_cast<uint64_t>(config_.worker_id) << 48) | ++next_flow_seq_;
  f.start_ns = f.last_ns = f.last_report_ns = p.timestamp_ns;
  f.tunnel_type = p.tunnel_type;
  f.tunnel_id = p.tunnel_id;
  f.is_ipv4 = p.is_ipv4;
  bool client_is_src = true;
  if (p.tuple.protocol == net::IpProtocol::kTcp) {
    f.tcp[0] = std::make_unique<TcpDirection>();
    f.tcp[1] = std::make_unique<TcpDirection>();
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
      client_is_src = DstLooksLikeServer(p.tuple.src_port, p.tuple.dst_port);
    }
  } else if (p.tuple.protocol == net::IpProtocol::kUdp) {
    f.role_source = common::v1::ROLE_SOURCE_PORT_HEURISTIC;
    client_is_src = DstLooksLikeServer(p.tuple.src_port, p.tuple.dst_port);
  }
  f.tuple = client_is_src ? p.tuple : p.tuple.Reversed();
  Flow* raw = flow.get();
  flows_.emplace(key, std::move(flow));
  if (flows_created_) flows_created_->Inc();
  if (flows_active_) flows_active_->Set(static_cast<int64_t>(flows_.size()));
  if (config_.emit_network_metrics) {
    NetworkCounters d;
    d.new_flows = 1;
    metrics_.Add(MetricKeyOf(*raw), p.timestamp_ns, d);
  }
  return raw;
}

void FlowTracker::ProcessTcp(Flow& f, int dir, const DecodedPacket& p) {
  uint64_t now = p.timestamp_ns;
  PeriodCounters& c = f.period;
  TcpDirection& d = *f.tcp[dir];
  uint8_t flags = p.tcp_flags;
  bool syn = flags & kTcpSyn, ack = flags & kTcpAck, rst = flags & kTcpRst, fin = flags & kTcpFin;
  NetworkCounters md;
  bool metric_delta = false;

  // Handshake and RTT split: server side = SYN -> SYN-ACK, client side = SYN-ACK -> ACK.
  if (syn && !ack) {
    c.syn_count++;
    if (f.saw_syn) c.syn_retrans++;
    // A SYN after the SYN-ACK (reordered capture): the handshake timing is meaningless.
    if (f.saw_synack) f.rtt_server_done = f.rtt_client_done = true;
    f.saw_syn = true;
    f.syn_ns = now;
  } else if (syn && ack) {
    c.synack_count++;
    if (f.saw_synack) c.synack_retrans++;
    if (!f.saw_synack && f.saw_syn && !f.rtt_server_done && now >= f.syn_ns) {
      c.rtt_server_us = static_cast<uint32_t>((now - f.syn_ns) / kNsPerUs);
      f.rtt_server_done = true;
    }
    f.saw_synack = true;
    f.synack_ns = now;
    if (f.state == TcpState::kSynSent) f.state = TcpState::kSynReceived;
  } else if (ack && dir == 0 && f.state == TcpState::kSynReceived) {
    if (f.saw_synack && !f.rtt_client_done && now >= f.synack_ns) {
      c.rtt_client_us = static_cast<uint32_t>((now - f.synack_ns) / kNsPerUs);
      f.rtt_client_done = true;
      if (f.rtt_server_done) {
        c.has_rtt = true;
        uint32_t rtt = c.rtt_client_us + c.rtt_server_us;
        md.rtt_sum_us = rtt;
        md.rtt_count = 1;
        md.rtt_max_us = rtt;
        metric_delta = true;
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
    metric_delta = true;
  }

  // Retransmission / reordering, on segments that occupy sequence space (SYN excluded: its
  // repeats are counted as syn_retrans / synack_retrans).
  uint32_t seg_len = p.payload_wire_bytes + (fin ? 1 : 0);
  if (syn) {
    if (!d.seq_init) {
      d.seq_init = true;
      d.max_end = p.tcp_seq + 1 + seg_len;
    }
    if (!d.stream.initialized()) d.stream.InitAt(p.tcp_seq + 1);
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
        if (d.hole_count < d.holes.size()) d.holes[d.hole_count++] = Hole{d.max_end, seq, now};
        d.max_end = end;
      } else if (p.payload_wire_bytes <= 1 && !fin && SeqDiff(seq, d.max_end) == -1) {
        // Keep-alive or zero-window probe: one old byte (or none), not a retransmission.
      } else {
        bool filled_hole = false;
        for (uint8_t i = 0; i < d.hole_count; ++i) {
          Hole& h = d.holes[i];
          if (SeqDiff(end, h.begin) > 0 && SeqDiff(seq, h.end) < 0) {
            filled_hole = true;
            bool reordered = now - h.created_ns < config_.out_of_order_threshold_ns;
            if (reordered) {
              c.out_of_order[dir]++;
            } else {
              c.retrans[dir]++;
              (dir == 0 ? md.retrans_0 : md.retrans_1)++;
              metric_delta = true;
            }
            // Shrink or drop the hole.
            if (SeqDiff(seq, h.begin) <= 0 && SeqDiff(end, h.end) >= 0) {
              d.holes[i] = d.holes[--d.hole_count];
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
          metric_delta = true;
        }
        if (SeqDiff(end, d.max_end) > 0) d.max_end = end;
      }
    }
  }

  // Stream hand-off.
  if (handler_ != nullptr && p.payload_wire_bytes > 0 && !rst) {
    uint32_t data_seq = p.tcp_seq + (syn ? 1 : 0);
    ConnectionInfo conn;
    conn.flow_id = f.flow_id;
    conn.tuple = f.tuple;
    conn.role_source = f.role_source;
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
    auto outcome = d.stream.AddSegment(now, data_seq, p.payload, p.payload_wire_bytes,
                                       config_.max_reassembly_bytes, &budget_, deliver);
    if (outcome == StreamReassembler::SegmentOutcome::kForcedGap && drop_reassembly_overflow_) {
      drop_reassembly_overflow_->Inc();
    }
    d.stream.FlushHoles(now, config_.reassembly_hole_timeout_ns, &budget_, deliver);
  }

  // Teardown.
  if (rst) {
    c.rst[dir]++;
    (dir == 0 ? md.rst_0 : md.rst_1)++;
    metric_delta = true;
    if (f.close_type == common::v1::CLOSE_TYPE_UNKNOWN ||
        f.close_type == common::v1::CLOSE_TYPE_FIN) {
      if (f.state == TcpState::kSynSent && dir == 1) {
        f.close_type = common::v1::CLOSE_TYPE_RST_ON_SYN;
      } else {
        f.close_type = dir == 0 ? common::v1::CLOSE_TYPE_CLIENT_RST : common::v1::CLOSE_TYPE_SERVER_RST;
      }
    }
    f.state = TcpState::kClosing;
    f.deadline_ns = now + config_.tcp_closing_linger_ns;
  } else if (fin) {
    if (!d.fin_seen) c.fin[dir]++;
    d.fin_seen = true;
    if (f.tcp[0]->fin_seen && f.tcp[1]->fin_seen) {
      if (f.state != TcpState::kClosing) {
        f.state = TcpState::kClosing;
        f.close_type = common::v1::CLOSE_TYPE_FIN;
        f.deadline_ns = now + config_.tcp_closing_linger_ns;
      }
    } else if (f.state != TcpState::kClosing) {
      f.state = TcpState::kHalfClosed;
      f.deadline_ns = now + config_.tcp_half_closed_timeout_ns;
    }
  } else if (f.state == TcpState::kSynSent) {
    f.deadline_ns = now + config_.tcp_syn_timeout_ns;
  } else if (f.state == TcpState::kHalfClosed) {
    f.deadline_ns = now + config_.tcp_half_closed_timeout_ns;
  } else if (f.state != TcpState::kClosing) {
    f.deadline_ns = now + config_.tcp_established_timeout_ns;
  }
  if (metric_delta && config_.emit_network_metrics) metrics_.Add(MetricKeyOf(f), now, md);
}

void FlowTracker::ProcessUdp(Flow& f, int dir, const DecodedPacket& p) {
  f.deadline_ns = p.timestamp_ns + config_.udp_timeout_ns;
  if (handler_ == nullptr || p.payload.empty()) return;
  ConnectionInfo conn;
  conn.flow_id = f.flow_id;
  conn.tuple = f.tuple;
  conn.role_source = f.role_source;
  StreamChunk chunk;
  chunk.timestamp_ns = p.timestamp_ns;
  chunk.data = p.payload;
  chunk.is_datagram = true;
  handler_->OnData(conn, dir == 0 ? StreamDirection::kRequest : StreamDirection::kResponse, chunk);
}

void FlowTracker::FlushStreams(Flow& f, uint64_t now_ns, uint64_t hole_timeout_ns) {
  if (handler_ == nullptr || !f.tcp[0]) return;
  ConnectionInfo conn;
  conn.flow_id = f.flow_id;
  conn.tuple = f.tuple;
  conn.role_source = f.role_source;
  for (int dir = 0; dir < 2; ++dir) {
    f.tcp[dir]->stream.FlushHoles(now_ns, hole_timeout_ns, &budget_, [&](const ReassembledChunk& rc) {
      StreamChunk chunk;
      chunk.timestamp_ns = rc.timestamp_ns;
      chunk.tcp_seq = rc.tcp_seq;
      chunk.data = rc.data;
      chunk.gap_bytes_before = rc.gap_bytes_before;
      handler_->OnData(conn, dir == 0 ? StreamDirection::kRequest : StreamDirection::kResponse,
                       chunk);
    });
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
    r.set_is_ipv4(v4 ? 1 : 0);
    if (v4) {
      r.set_ip4_0(f.tuple.src_ip.v4());
      r.set_ip4_1(f.tuple.dst_ip.v4());
    } else {
      r.set_ip6_0(std::string(f.tuple.src_ip.bytes().begin(), f.tuple.src_ip.bytes().end()));
      r.set_ip6_1(std::string(f.tuple.dst_ip.bytes().begin(), f.tuple.dst_ip.bytes().end()));
    }
    r.set_client_port(f.tuple.src_port);
    r.set_server_port(f.tuple.dst_port);
    r.set_protocol(static_cast<uint32_t>(f.tuple.protocol));
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

void FlowTracker::CloseFlow(Table::iterator it, CloseType type, uint64_t now_ns) {
  Flow& f = *it->second;
  FlushStreams(f, now_ns, 0);
  if (handler_ != nullptr) {
    ConnectionInfo conn;
    conn.flow_id = f.flow_id;
    conn.tuple = f.tuple;
    conn.role_source = f.role_source;
    handler_->OnClose(conn, f.last_ns);
  }
  Report(f, type, now_ns);
  if (config_.emit_network_metrics) {
    NetworkCounters d;
    d.closed_flows = 1;
    if (type == common::v1::CLOSE_TYPE_SYN_UNANSWERED) d.syn_unanswered = 1;
    if (type == common::v1::CLOSE_TYPE_RST_ON_SYN) d.rst_on_syn = 1;
    if (type == common::v1::CLOSE_TYPE_TIMEOUT || type == common::v1::CLOSE_TYPE_HALF_CLOSED_TIMEOUT) {
      d.timeouts = 1;
    }
    // A timeout happens at its deadline; any other close at the flow's last packet.
    bool timed_out = type == common::v1::CLOSE_TYPE_TIMEOUT ||
                     type == common::v1::CLOSE_TYPE_HALF_CLOSED_TIMEOUT ||
                     type == common::v1::CLOSE_TYPE_SYN_UNANSWERED;
    uint64_t at = timed_out ? std::max(f.last_ns, std::min(now_ns, f.deadline_ns)) : f.last_ns;
    metrics_.Add(MetricKeyOf(f), at, d);
  }
  flows_.erase(it);
  if (flows_active_) flows_active_->Set(static_cast<int64_t>(flows_.size()));
}

void FlowTracker::Tick(uint64_t now_ns) {
  next_tick_ns_ = now_ns + config_.tick_interval_ns;
  for (auto it = flows_.begin(); it != flows_.end();) {
    Flow& f = *it->second;
    if (f.deadline_ns != 0 && now_ns >= f.deadline_ns) {
      CloseType type = f.close_type;
      if (f.tcp[0]) {
        if (f.state == TcpState::kSynSent) {
          type = common::v1::CLOSE_TYPE_SYN_UNANSWERED;
        } else if (f.state == TcpState::kHalfClosed) {
          type = common::v1::CLOSE_TYPE_HALF_CLOSED_TIMEOUT;
        } else if (f.state != TcpState::kClosing) {
          type = common::v1::CLOSE_TYPE_TIMEOUT;
        }
      } else {
        type = common::v1::CLOSE_TYPE_TIMEOUT;
      }
      auto next = std::next(it);
      CloseFlow(it, type, now_ns);
      it = next;
      continue;
    }
    if (now_ns >= f.last_report_ns + config_.report_interval_ns && f.period.packets[0] + f.period.packets[1] > 0) {
      Report(f, common::v1::CLOSE_TYPE_PERIODIC, now_ns);
    }
    if (handler_ != nullptr && f.tcp[0]) FlushStreams(f, now_ns, config_.reassembly_hole_timeout_ns);
    ++it;
  }
  if (config_.emit_network_metrics) metrics_.Advance(now_ns);
  if (handler_ != nullptr) handler_->OnTick(now_ns);
}

void FlowTracker::OnIdle(uint64_t now_ns) {
  if (now_ns > last_time_ns_) last_time_ns_ = now_ns;
  if (next_tick_ns_ == 0 || last_time_ns_ >= next_tick_ns_) Tick(last_time_ns_);
}

void FlowTracker::FlushAll(uint64_t now_ns) {
  if (now_ns < last_time_ns_) now_ns = last_time_ns_;
  while (!flows_.empty()) {
    auto it = flows_.begin();
    Flow& f = *it->second;
    CloseType type = f.close_type;
    if (f.state != TcpState::kClosing || type == common::v1::CLOSE_TYPE_UNKNOWN) {
      type = common::v1::CLOSE_TYPE_AGENT_EXIT;
    }
    if (!f.tcp[0]) type = common::v1::CLOSE_TYPE_AGENT_EXIT;
    CloseFlow(it, type, now_ns);
  }
  if (config_.emit_network_metrics) metrics_.FlushAll();
  if (handler_ != nullptr) handler_->OnTick(now_ns);
  if (sink_ != nullptr) sink_->Flush();
}

}  // namespace sonde::agent::flow
