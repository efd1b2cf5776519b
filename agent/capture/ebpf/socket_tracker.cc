// SocketTracker: eBPF socket events -> ordered per-connection streams for the protocol layer.
#include "agent/capture/ebpf/socket_tracker.h"

#include <algorithm>

namespace sonde::agent::capture {
namespace {

uint64_t PidFd(uint32_t pid, int32_t fd) { return (static_cast<uint64_t>(pid) << 32) | static_cast<uint32_t>(fd); }

// UDP sockets may talk to many peers (an unconnected server socket): one connection per peer.
uint64_t PeerOf(const net::FiveTuple& t) {
  if (t.protocol != net::IpProtocol::kUdp) return 0;
  const uint64_t h = net::FiveTupleHash{}(net::FiveTuple{{}, t.dst_ip, 0, t.dst_port, t.protocol});
  return h == 0 ? 1 : h;
}

constexpr int kShutWr = 1;  // SHUT_WR
constexpr int kShutRdWr = 2;  // SHUT_RDWR

}  // namespace

SocketTracker::SocketTracker(flow::StreamHandler& handler, metadata::ProcessCache* processes,
                             tracing::SyscallTraceIds* trace_ids, metrics::Registry* metrics, Options options)
    : handler_(handler), processes_(processes), trace_ids_(trace_ids), options_(options) {
  if (metrics) {
    gap_bytes_ = metrics->GetCounter("sonde_agent_ebpf_stream_gap_bytes_total",
                                     "Bytes missing from eBPF socket streams (loss or truncation)");
    duplicate_bytes_ = metrics->GetCounter("sonde_agent_ebpf_stream_duplicate_bytes_total",
                                           "Bytes seen twice on eBPF socket streams and dropped");
    evicted_ = metrics->GetCounter("sonde_agent_ebpf_connections_evicted_total",
                                   "eBPF-tracked connections closed early because the table was full");
    open_conns_ = metrics->GetGauge("sonde_agent_ebpf_connections", "eBPF-tracked open connections");
    sendfile_bytes_ = metrics->GetCounter("sonde_agent_ebpf_sendfile_bytes_total",
                                          "Bytes sent with sendfile() on traced sockets (counted, not captured)");
    exits_ = metrics->GetCounter("sonde_agent_ebpf_process_exits_total",
                                 "Process exits that closed eBPF-tracked connections");
    abandoned_ = metrics->GetCounter("sonde_agent_ebpf_connections_ignored_total",
                                     "TCP connections no protocol was recognised on, no longer captured");
    ignored_bytes_ = metrics->GetCounter("sonde_agent_ebpf_ignored_bytes_total",
                                         "Bytes dropped on ignored connections (in flight when ignored)");
  }
}

SocketTracker::~SocketTracker() = default;

size_t SocketTracker::pending_bytes() const {
  size_t n = 0;
  for (const auto& [k, c] : conns_) n += c.dirs[0].pending_bytes + c.dirs[1].pending_bytes;
  return n;
}

SocketTracker::Conn* SocketTracker::Open(Key key, const net::FiveTuple& tuple, SocketRole role, uint32_t pid,
                                         std::string_view comm, uint64_t generation, uint64_t ts) {
  if (conns_.size() >= options_.max_connections) Evict(ts);
  Conn& c = conns_[key];
  c = Conn{};
  c.generation = generation;
  c.last_ns = ts;
  flow::ConnectionInfo& info = c.info;
  info.flow_id = next_flow_id_++;
  info.signal_source = common::v1::SIGNAL_SOURCE_EBPF;
  if (role != SocketRole::kUnknown) {
    c.server_side = role == SocketRole::kServer;
    info.role_source = common::v1::ROLE_SOURCE_SOCKET_API;
  } else {
    // A socket opened before we started, or an unconnected UDP socket: the lower port is most
    // likely the service.
    c.server_side = tuple.src_port < tuple.dst_port;
    info.role_source = common::v1::ROLE_SOURCE_PORT_HEURISTIC;
  }
  info.tuple = c.server_side ? tuple.Reversed() : tuple;
  flow::ProcessRef& self = c.server_side ? info.process_1 : info.process_0;
  self.pid = pid;
  self.comm = std::string(comm);
  if (processes_) {
    if (const metadata::ProcessInfo* p = processes_->Lookup(pid, ts)) {
      if (!p->comm.empty()) self.comm = p->comm;
      self.container_id = p->container_id;
    }
  }
  if (open_conns_) open_conns_->Set(static_cast<int64_t>(conns_.size()));
  return &c;
}

void SocketTracker::CloseRange(Key first, Key last, uint64_t ts) {
  std::vector<Key> keys;
  for (auto it = conns_.lower_bound(first); it != conns_.end() && it->first < last; ++it) keys.push_back(it->first);
  for (const Key& k : keys) Close(k, ts);
}

void SocketTracker::Close(Key key, uint64_t ts) {
  auto it = conns_.find(key);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  for (auto dir : {flow::StreamDirection::kRequest, flow::StreamDirection::kResponse}) {
    c.dirs[static_cast<int>(dir)].gap_carry = 0;
    // Flush everything still waiting for a hole that will never be filled.
    Direction& d = c.dirs[static_cast<int>(dir)];
    while (!d.pending.empty()) DrainPending(c, dir, true);
  }
  handler_.OnClose(c.info, ts);
  conns_.erase(it);
  if (open_conns_) open_conns_->Set(static_cast<int64_t>(conns_.size()));
}

void SocketTracker::Deliver(Conn& c, flow::StreamDirection dir, uint64_t ts, uint32_t seq, uint32_t gap,
                            uint32_t tid, uint64_t trace_id, std::span<const uint8_t> data) {
  Direction& d = c.dirs[static_cast<int>(dir)];
  flow::StreamChunk chunk;
  chunk.timestamp_ns = ts;
  chunk.tcp_seq = seq;
  chunk.data = data;
  chunk.gap_bytes_before = gap + d.gap_carry;
  chunk.is_datagram = c.info.tuple.protocol == net::IpProtocol::kUdp;
  chunk.tid = tid;
  chunk.syscall_trace_id = trace_id;
  if (gap_bytes_ && chunk.gap_bytes_before) gap_bytes_->Inc(chunk.gap_bytes_before);
  d.gap_carry = 0;
  if (data.empty()) {
    d.gap_carry = chunk.gap_bytes_before;  // nothing to attach the gap to yet
    return;
  }
  handler_.OnData(c.info, dir, chunk);
}

// Delivers pending chunks that are next in line; with `force`, delivers the first one even if a
// hole precedes it (reported as a gap).
void SocketTracker::DrainPending(Conn& c, flow::StreamDirection dir, bool force) {
  Direction& d = c.dirs[static_cast<int>(dir)];
  while (!d.pending.empty()) {
    auto it = d.pending.begin();
    Pending& p = it->second;
    int32_t delta = static_cast<int32_t>(p.seq - d.next_seq);
    if (delta > 0 && !force) return;
    force = false;
    uint32_t gap = delta > 0 ? static_cast<uint32_t>(delta) : 0;
    uint32_t skip = delta < 0 ? static_cast<uint32_t>(-delta) : 0;
    if (skip >= p.total_bytes) {
      if (duplicate_bytes_) duplicate_bytes_->Inc(p.total_bytes);
    } else {
      if (duplicate_bytes_ && skip) duplicate_bytes_->Inc(skip);
      std::span<const uint8_t> bytes(p.data);
      uint32_t missing_tail = p.total_bytes - static_cast<uint32_t>(p.data.size());
      if (skip < bytes.size()) {
        bytes = bytes.subspan(skip);
      } else {
        missing_tail -= skip - static_cast<uint32_t>(bytes.size());
        bytes = {};
      }
      Deliver(c, dir, p.timestamp_ns, p.seq + skip, gap, p.tid, p.trace_id, bytes);
      d.gap_carry += missing_tail;
      const uint32_t advance = p.seq + p.total_bytes - d.next_seq;
      d.next_seq += advance;
      d.next_pos += advance;
    }
    d.pending_bytes -= p.data.size();
    d.pending.erase(it);
  }
}

void SocketTracker::CheckAbandoned(const Key& key, Conn& c) {
  const uint64_t flow_id = c.info.flow_id;
  if (handler_.ProtocolOf(flow_id) != common::v1::L7_PROTOCOL_UNKNOWN) {
    c.l7_decided = true;
    return;
  }
  if (!handler_.Abandoned(flow_id)) return;
  c.l7_decided = true;
  // Unconnected UDP sockets carry many peers on one fd: one unknown peer does not make the
  // socket uninteresting.
  if (c.info.tuple.protocol != net::IpProtocol::kTcp) return;
  c.ignored = true;
  for (Direction& d : c.dirs) {
    d.pending.clear();
    d.pending_bytes = 0;
  }
  if (abandoned_) abandoned_->Inc();
  if (ignore_hook_) {
    ignore_hook_(static_cast<uint32_t>(key.first >> 32), static_cast<int32_t>(static_cast<uint32_t>(key.first)),
                 c.generation);
  }
}

void SocketTracker::OnSocketData(const SocketDataEvent& ev) {
  if (ev.fd < 0) return;
  const Key key{PidFd(ev.pid, ev.fd), PeerOf(ev.tuple)};
  auto it = conns_.find(key);
  Conn* c = nullptr;
  if (it != conns_.end() && it->second.generation == ev.conn_generation) {
    c = &it->second;
  } else {
    // A new generation means the fd now names another socket: everything of the old one ends.
    if (it != conns_.end() || key.second != 0) {
      const uint64_t pidfd = key.first;
      for (auto o = conns_.lower_bound(Key{pidfd, 0}); o != conns_.end() && o->first.first == pidfd;) {
        if (o->second.generation == ev.conn_generation) {
          ++o;
          continue;
        }
        const Key old = o->first;
        ++o;
        Close(old, ev.timestamp_ns);
      }
    }
    c = Open(key, ev.tuple, ev.role, ev.pid, ev.comm, ev.conn_generation, ev.timestamp_ns);
  }
  c->last_ns = ev.timestamp_ns;
  if (c->ignored) {
    if (ignored_bytes_) ignored_bytes_->Inc(ev.total_bytes);
    return;
  }

  if (ev.is_tls_plaintext != c->tls) {
    if (!ev.is_tls_plaintext) {
      // Ciphertext after plaintext was seen (the kernel normally drops it): ignore.
      if (duplicate_bytes_) duplicate_bytes_->Inc(ev.total_bytes);
      return;
    }
    // First plaintext: the ciphertext view (handshake) ends, a plaintext flow starts.
    flow::ConnectionInfo info = c->info;
    Close(key, ev.timestamp_ns);
    c = &conns_[key];
    c->generation = ev.conn_generation;
    c->last_ns = ev.timestamp_ns;
    c->server_side = info.process_1.pid == ev.pid && info.process_0.pid != ev.pid;
    c->info = info;
    c->info.flow_id = next_flow_id_++;
    c->info.is_tls_plaintext = true;
    c->tls = true;
    if (open_conns_) open_conns_->Set(static_cast<int64_t>(conns_.size()));
  }

  const bool ingress = ev.direction == SocketDirection::kIngress;
  const flow::StreamDirection dir =
      (ingress == c->server_side) ? flow::StreamDirection::kRequest : flow::StreamDirection::kResponse;
  const uint64_t trace_id =
      trace_ids_ ? trace_ids_->OnIo(ev.tid, key.first ^ (ev.conn_generation << 1) ^ (key.second << 7), c->server_side,
                                    ingress, ev.timestamp_ns)
                 : 0;
  Direction& d = c->dirs[static_cast<int>(dir)];
  const uint32_t truncated = ev.total_bytes > ev.data.size() ? ev.total_bytes - static_cast<uint32_t>(ev.data.size()) : 0;
  // sendfile() bodies are not captured but keep their place in the stream: the parser sees a
  // gap of exactly their size (and resynchronises at the next message).
  if (ev.is_sendfile && sendfile_bytes_) sendfile_bytes_->Inc(ev.total_bytes);

  const bool ordered = c->info.tuple.protocol == net::IpProtocol::kTcp && !ev.is_tls_plaintext && ev.tcp_seq != 0;
  if (!ordered) {
    Deliver(*c, dir, ev.timestamp_ns, ev.tcp_seq, 0, ev.tid, trace_id, ev.data);
    d.gap_carry += truncated;
    if (!c->l7_decided) CheckAbandoned(key, *c);
    return;
  }
  if (!d.started) {
    d.started = true;
    d.next_seq = ev.tcp_seq;
  }
  const int32_t delta = static_cast<int32_t>(ev.tcp_seq - d.next_seq);
  if (delta == 0 && d.pending.empty()) {
    Deliver(*c, dir, ev.timestamp_ns, ev.tcp_seq, 0, ev.tid, trace_id, ev.data);
    d.gap_carry += truncated;
    d.next_seq += ev.total_bytes;
    d.next_pos += ev.total_bytes;
    if (!c->l7_decided) CheckAbandoned(key, *c);
    return;
  }
  // Out of order (or behind a hole): queue by distance from the expected sequence.
  Pending p{ev.timestamp_ns, ev.tcp_seq, ev.total_bytes, ev.tid, trace_id,
            std::vector<uint8_t>(ev.data.begin(), ev.data.end())};
  d.pending_bytes += p.data.size();
  int64_t order = d.next_pos + delta;
  while (d.pending.count(order)) ++order;  // same position twice (retransmitted read): keep both
  d.pending.emplace(order, std::move(p));
  DrainPending(*c, dir, false);
  while (d.pending.size() > options_.max_pending_chunks || d.pending_bytes > options_.max_pending_bytes) {
    DrainPending(*c, dir, true);
  }
  if (!c->l7_decided) CheckAbandoned(key, *c);
}

void SocketTracker::OnSocketControl(const SocketControlEvent& ev) {
  if (ev.kind == SocketControlEvent::Kind::kProcessExit) {
    // The kernel closed every socket of the process without close() calls.
    const uint64_t first = static_cast<uint64_t>(ev.pid) << 32;
    CloseRange(Key{first, 0}, Key{first + (uint64_t{1} << 32), 0}, ev.timestamp_ns);
    if (processes_) processes_->Forget(ev.pid);
    if (exits_) exits_->Inc();
    return;
  }
  if (ev.fd < 0) return;
  const uint64_t pidfd = PidFd(ev.pid, ev.fd);
  switch (ev.kind) {
    case SocketControlEvent::Kind::kConnect:
    case SocketControlEvent::Kind::kAccept: {
      const Key key{pidfd, PeerOf(ev.tuple)};
      auto it = conns_.find(key);
      if (it != conns_.end() && it->second.generation == ev.conn_generation) return;
      CloseRange(Key{pidfd, 0}, Key{pidfd + 1, 0}, ev.timestamp_ns);
      Open(key, ev.tuple, ev.role, ev.pid, ev.comm, ev.conn_generation, ev.timestamp_ns);
      return;
    }
    case SocketControlEvent::Kind::kShutdown: {
      if (ev.shutdown_how == kShutRdWr) {
        // Nothing more will be read or written: end the connection now (close() follows).
        CloseRange(Key{pidfd, 0}, Key{pidfd + 1, 0}, ev.timestamp_ns);
        return;
      }
      if (ev.shutdown_how != kShutWr) return;
      // This side writes no more: whatever waits for a hole in its egress stream is final.
      for (auto it = conns_.lower_bound(Key{pidfd, 0}); it != conns_.end() && it->first.first == pidfd; ++it) {
        Conn& c = it->second;
        const auto dir = c.server_side ? flow::StreamDirection::kResponse : flow::StreamDirection::kRequest;
        while (!c.dirs[static_cast<int>(dir)].pending.empty()) DrainPending(c, dir, true);
      }
      return;
    }
    case SocketControlEvent::Kind::kClose:
      CloseRange(Key{pidfd, 0}, Key{pidfd + 1, 0}, ev.timestamp_ns);
      return;
    case SocketControlEvent::Kind::kProcessExit:
      return;
  }
}

void SocketTracker::OnIdle(uint64_t now_ns) {
  std::vector<Key> idle;
  const uint64_t cutoff = now_ns > options_.reorder_window_ns ? now_ns - options_.reorder_window_ns : 0;
  for (auto& [key, c] : conns_) {
    for (auto dir : {flow::StreamDirection::kRequest, flow::StreamDirection::kResponse}) {
      Direction& d = c.dirs[static_cast<int>(dir)];
      while (!d.pending.empty() && d.pending.begin()->second.timestamp_ns < cutoff) DrainPending(c, dir, true);
    }
    if (now_ns > c.last_ns && now_ns - c.last_ns > options_.idle_timeout_ns) idle.push_back(key);
  }
  for (const Key& k : idle) Close(k, now_ns);
  if (trace_ids_) trace_ids_->Reap(now_ns);
  if (processes_) processes_->Reap(now_ns);
  if (options_.forward_ticks) handler_.OnTick(now_ns);
}

void SocketTracker::Evict(uint64_t now_ns) {
  // Close the oldest sixteenth at once so a full table does not scan on every new socket.
  std::vector<std::pair<uint64_t, Key>> by_age;
  by_age.reserve(conns_.size());
  for (const auto& [k, c] : conns_) by_age.emplace_back(c.last_ns, k);
  size_t n = std::max<size_t>(1, by_age.size() / 16);
  std::nth_element(by_age.begin(), by_age.begin() + static_cast<long>(n - 1), by_age.end());
  for (size_t i = 0; i < n; ++i) Close(by_age[i].second, now_ns);
  if (evicted_) evicted_->Inc(n);
}

void SocketTracker::CloseAll(uint64_t now_ns) {
  std::vector<Key> keys;
  for (const auto& [k, c] : conns_) keys.push_back(k);
  for (const Key& k : keys) Close(k, now_ns);
}

}  // namespace sonde::agent::capture
