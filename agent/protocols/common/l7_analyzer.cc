// Per-connection protocol inference, parsing, stitching and RED aggregation.
#include "agent/protocols/common/l7_analyzer.h"

#include <algorithm>
#include <limits>

namespace sonde::agent::protocols {

using common::v1::L7Protocol;

struct L7Analyzer::Connection {
  enum class Phase : uint8_t { kInferring, kParsing, kUnknown, kGaveUp };
  struct Stashed {
    flow::StreamDirection dir;
    flow::StreamChunk chunk;  // data points into `data` when replayed
    std::string data;
  };

  flow::ConnectionInfo info;
  Phase phase = Phase::kInferring;
  const ProtocolSpec* spec = nullptr;
  std::unique_ptr<ConnectionParser> parser;
  L7Protocol reported = L7Protocol::L7_PROTOCOL_UNKNOWN;
  uint32_t inference_chunks = 0;
  std::string prefix[2];
  std::vector<Stashed> stash;
  uint64_t last_ns = 0;
  // Flow tracking guessed the roles (no handshake seen) and the protocol showed the opposite:
  // directions are flipped for this connection and `info` holds the corrected tuple.
  bool swapped = false;
  uint32_t open_index = 0;  // in L7Analyzer::open_
};

namespace {

flow::StreamDirection Flip(flow::StreamDirection d) {
  return d == flow::StreamDirection::kRequest ? flow::StreamDirection::kResponse
                                              : flow::StreamDirection::kRequest;
}

flow::ConnectionInfo Swapped(const flow::ConnectionInfo& in) {
  flow::ConnectionInfo out = in;
  std::swap(out.tuple.src_ip, out.tuple.dst_ip);
  std::swap(out.tuple.src_port, out.tuple.dst_port);
  std::swap(out.process_0, out.process_1);
  out.role_source = common::v1::ROLE_SOURCE_PROTOCOL;
  return out;
}

// Roles that came from a handshake or the socket API are facts; others may be corrected.
bool RolesAreGuessed(const flow::ConnectionInfo& info) {
  return info.role_source != common::v1::ROLE_SOURCE_HANDSHAKE &&
         info.role_source != common::v1::ROLE_SOURCE_SOCKET_API;
}

}  // namespace

ParserCounters ParserCounters::Create(metrics::Registry* r, std::string_view protocol_name) {
  const std::string p(protocol_name);
  auto invalid = [&](const char* reason) {
    return r->GetCounter("sonde_agent_l7_invalid_frames_total",
                         "L7 frames that failed to parse, by protocol and reason",
                         {{"protocol", p}, {"reason", reason}});
  };
  ParserCounters c;
  c.invalid_frames = invalid("invalid");
  c.truncated_datagrams = invalid("truncated_datagram");
  c.truncated_frames = invalid("truncated_frame");
  c.gaps = invalid("gap");
  c.buffer_overflows = invalid("buffer_overflow");
  c.frames_dropped = invalid("pending_overflow");
  c.unpaired_responses = invalid("unpaired_response");
  c.resync_skipped_bytes = r->GetCounter("sonde_agent_l7_resync_skipped_bytes_total",
                                         "Bytes skipped while resynchronising L7 parsers",
                                         {{"protocol", p}});
  c.gave_up = r->GetCounter("sonde_agent_l7_parser_gave_up_total",
                            "Connections whose L7 parser stopped after repeated failures",
                            {{"protocol", p}});
  return c;
}

L7Analyzer::L7Analyzer(exporting::RecordSink* sink, metrics::Registry* metrics,
                       L7AnalyzerOptions options)
    : sink_(sink),
      own_metrics_(metrics == nullptr ? std::make_unique<metrics::Registry>() : nullptr),
      metrics_(metrics == nullptr ? own_metrics_.get() : metrics),
      options_(options),
      app_metrics_(sink) {
  inferred_ = metrics_->GetCounter("sonde_agent_l7_connections_inferred_total",
                                   "Connections whose L7 protocol was recognised");
  inference_failed_ = metrics_->GetCounter("sonde_agent_l7_connections_unknown_total",
                                           "Connections whose L7 protocol was not recognised");
  connections_dropped_ = metrics_->GetCounter(
      "sonde_agent_l7_connections_dropped_total",
      "Connections not analysed because the connection table was full");
  roles_swapped_ = metrics_->GetCounter(
      "sonde_agent_l7_roles_swapped_total",
      "Connections whose client/server roles the L7 protocol corrected (mid-stream captures)");
  connections_ = metrics_->GetGauge("sonde_agent_l7_connections",
                                    "Connections currently tracked by the L7 analyzer");
  free_parsers_.resize(Protocols().size());
  const std::span<const ProtocolSpec> protocols = Protocols();
  for (size_t i = 0; i < protocols.size() && i < 64; ++i) {
    const ProtocolSpec& p = protocols[i];
    if (p.infer == nullptr) continue;
    const uint64_t bit = uint64_t{1} << i;
    if (p.transport == Transport::kTcp || p.transport == Transport::kBoth) inferable_[0] |= bit;
    if (p.transport == Transport::kUdp || p.transport == Transport::kBoth) inferable_[1] |= bit;
    for (uint16_t port : p.port_hints) {
      if (port == 0) continue;  // unused
      auto it = std::lower_bound(hinted_ports_.begin(), hinted_ports_.end(),
                                 std::pair<uint16_t, uint64_t>(port, 0));
      if (it == hinted_ports_.end() || it->first != port) it = hinted_ports_.insert(it, {port, 0});
      it->second |= bit;
    }
  }
}

uint64_t L7Analyzer::HintedAt(uint16_t server_port) {
  if (server_port == last_hint_port_) return last_hint_mask_;  // port 0 is never asked
  auto it = std::lower_bound(hinted_ports_.begin(), hinted_ports_.end(),
                             std::pair<uint16_t, uint64_t>(server_port, 0));
  last_hint_port_ = server_port;
  last_hint_mask_ = it != hinted_ports_.end() && it->first == server_port ? it->second : 0;
  return last_hint_mask_;
}

L7Analyzer::~L7Analyzer() = default;

L7Analyzer::Connection* L7Analyzer::FindOrCreate(const flow::ConnectionInfo& conn,
                                                 uint64_t now_ns) {
  Table::Entry* e = table_.FindOrSlot(conn.flow_id);
  if (e->state == Table::State::kOpen) {
    Connection* c = e->open;
    // Process attribution can arrive after the first bytes (eBPF): keep the latest. (Compared
    // in place: building the swapped copy for the comparison cost a ConnectionInfo copy per chunk.)
    const uint32_t pid_0 = c->swapped ? conn.process_1.pid : conn.process_0.pid;
    const uint32_t pid_1 = c->swapped ? conn.process_0.pid : conn.process_1.pid;
    if (pid_0 != c->info.process_0.pid || pid_1 != c->info.process_1.pid) {
      c->info = c->swapped ? Swapped(conn) : conn;
    }
    c->last_ns = std::max(c->last_ns, now_ns);
    return c;
  }
  // A dormant connection (see Park) resumes where it stopped; it was never dropped, so the
  // connection limit does not apply to it. A closed one that sees data again starts afresh.
  const bool resume = e->state == Table::State::kDormant;
  if (!resume && table_.open() >= options_.max_connections) {
    connections_dropped_->Inc();
    return nullptr;
  }
  std::unique_ptr<Connection> c;
  if (!free_conns_.empty()) {
    c = std::move(free_conns_.back());
    free_conns_.pop_back();
  } else {
    c = std::make_unique<Connection>();
  }
  if (resume) {
    c->phase = Connection::Phase::kParsing;
    c->spec = &Protocols()[(e->resume & kResumeSpecMask) - 1];
    c->reported = e->protocol;
    c->swapped = (e->resume & kResumeSwapped) != 0;
    c->info = c->swapped ? Swapped(conn) : conn;
    c->last_ns = std::max(e->ns, now_ns);
  } else {
    c->info = conn;
    c->last_ns = now_ns;
  }
  Connection* raw = c.get();
  raw->open_index = static_cast<uint32_t>(open_.size());
  open_.push_back(std::move(c));
  table_.Open(e, conn.flow_id, raw);  // e is invalid from here
  connections_->Set(static_cast<int64_t>(table_.open() + table_.dormant()));
  return raw;
}

std::unique_ptr<L7Analyzer::Connection> L7Analyzer::RemoveOpen(Connection* c) {
  const uint32_t i = c->open_index;
  std::unique_ptr<Connection> out = std::move(open_[i]);
  if (i + 1 != open_.size()) {
    open_[i] = std::move(open_.back());
    open_[i]->open_index = i;
  }
  open_.pop_back();
  return out;
}

std::span<const ProtocolSpec> L7Analyzer::Protocols() const {
  return options_.protocols.empty() ? AllProtocols() : options_.protocols;
}

void L7Analyzer::Park(Connection* c) {
  // What resuming needs: the parsing protocol, the role swap and the reported protocol (the
  // connection fields come back with the next chunk's ConnectionInfo; the parser was idle).
  const auto spec_index = static_cast<uint16_t>(c->spec - Protocols().data());
  const uint16_t resume = static_cast<uint16_t>((spec_index + 1) | (c->swapped ? kResumeSwapped : 0));
  table_.Park(table_.Find(c->info.flow_id), c->reported, c->last_ns, resume);
  Recycle(RemoveOpen(c));
}

void L7Analyzer::OnData(const flow::ConnectionInfo& conn, flow::StreamDirection dir,
                        const flow::StreamChunk& chunk) {
  Connection* c = FindOrCreate(conn, chunk.timestamp_ns);
  if (c == nullptr) return;
  if (c->swapped) dir = Flip(dir);
  switch (c->phase) {
    case Connection::Phase::kInferring:
      Infer(c, dir, chunk);
      break;
    case Connection::Phase::kParsing:
      if (c->parser == nullptr) c->parser = AcquireParser(c->spec);  // released while idle
      c->parser->OnData(dir, chunk);
      break;
    case Connection::Phase::kUnknown:
    case Connection::Phase::kGaveUp:
      return;
  }
  if (c->phase == Connection::Phase::kParsing) {
    StitchAndEmit(c, chunk.timestamp_ns, false);
    if (c->parser->gave_up()) {
      c->phase = Connection::Phase::kGaveUp;
    } else if ((c->info.tuple.protocol == net::IpProtocol::kUdp ||
                table_.open() > kParkTcpAbove) &&
               c->parser->idle()) {
      // Nothing waits in it (e.g. a DNS flow after its answer, an HTTP/1 connection between
      // exchanges): the parser goes back to the pool until the next message, and the
      // connection itself becomes a dormant entry of a few bytes, so idle flows (UDP flows live
      // 30 s, closed TCP ones linger) hold neither. TCP connections stay whole while there are
      // few (the next request usually follows: resuming costs more than staying).
      ReleaseParser(c);
      Park(c);
    }
  }
}

std::unique_ptr<ConnectionParser> L7Analyzer::AcquireParser(const ProtocolSpec* spec) {
  std::vector<std::unique_ptr<ConnectionParser>>& pool = FreeParsers(spec);
  if (pool.empty()) return spec->make_parser(options_.parser, CountersFor(spec));
  std::unique_ptr<ConnectionParser> p = std::move(pool.back());
  pool.pop_back();
  return p;
}

void L7Analyzer::ReleaseParser(Connection* c) {
  if (c->parser == nullptr) return;
  std::vector<std::unique_ptr<ConnectionParser>>& pool = FreeParsers(c->spec);
  if (pool.size() < kMaxPooled) {
    c->parser->Reset();
    pool.push_back(std::move(c->parser));
  }
  c->parser.reset();
}

void L7Analyzer::Infer(Connection* c, flow::StreamDirection dir, const flow::StreamChunk& chunk) {
  const size_t d = static_cast<size_t>(dir);
  if (chunk.gap_bytes_before > 0 || chunk.is_datagram) c->prefix[d].clear();
  // The bytes the Infer functions see: this direction's first max_inference_bytes. While nothing
  // is buffered for this direction they are a view of the chunk itself, so a connection
  // recognised from its first chunk (nearly all) costs no copies; the chunk is copied only when
  // the protocol is still undecided.
  const size_t room = options_.max_inference_bytes - std::min(options_.max_inference_bytes,
                                                              c->prefix[d].size());
  const std::string_view bytes(reinterpret_cast<const char*>(chunk.data.data()),
                               std::min(room, chunk.data.size()));
  std::string_view view = bytes;
  if (!c->prefix[d].empty()) {
    c->prefix[d].append(bytes);
    view = c->prefix[d];
  }
  ++c->inference_chunks;

  const bool udp = c->info.tuple.protocol == net::IpProtocol::kUdp;
  const uint16_t server_port = c->info.tuple.dst_port;
  auto transport_ok = [udp](const ProtocolSpec& p) {
    return p.infer != nullptr &&
           (p.transport == Transport::kBoth ||
            p.transport == (udp ? Transport::kUdp : Transport::kTcp));
  };
  auto hinted = [server_port](const ProtocolSpec& p) {
    return server_port != 0 &&
           std::find(p.port_hints.begin(), p.port_hints.end(), server_port) != p.port_hints.end();
  };
  const std::span<const ProtocolSpec> protocols = Protocols();
  const ProtocolSpec* chosen = nullptr;
  // Pass 0 tries the protocols whose port hints name the server port, pass 1 the others. The
  // hints are looked up once (bit i for protocols[i], for the first 64, from the table built
  // at construction); with no hinted protocol (most ports) pass 0 is skipped.
  uint64_t hinted_mask = 0;
  if (server_port != 0) hinted_mask = HintedAt(server_port) & inferable_[udp ? 1 : 0];
  bool any_hinted = hinted_mask != 0;
  for (size_t i = 64; i < protocols.size(); ++i) {
    if (transport_ok(protocols[i]) && hinted(protocols[i])) any_hinted = true;
  }
  auto is_hinted = [&](size_t i) {
    return i < 64 ? ((hinted_mask >> i) & 1) != 0 : hinted(protocols[i]);
  };
  for (int pass = any_hinted ? 0 : 1; pass < 2 && chosen == nullptr; ++pass) {
    for (size_t i = 0; i < protocols.size(); ++i) {
      const ProtocolSpec& p = protocols[i];
      if (!transport_ok(p) || (any_hinted && is_hinted(i) != (pass == 0))) continue;
      if (p.infer(dir, view, c->info) == InferResult::kYes) {
        chosen = &p;
        break;
      }
    }
  }
  // Mid-stream captures: flow tracking guessed the roles from ports, and these bytes may have
  // come from the client although they travel in the "response" direction (e.g. a Kafka client
  // on a lower port than its broker, a DNS query from a port below the server's). A protocol
  // that recognises them from the other side fixes the roles for the rest of the connection.
  if (chosen == nullptr && RolesAreGuessed(c->info)) {
    const flow::ConnectionInfo other = Swapped(c->info);
    for (const ProtocolSpec& p : protocols) {
      if (!transport_ok(p)) continue;
      if (p.infer(Flip(dir), view, other) == InferResult::kYes) {
        chosen = &p;
        break;
      }
    }
    if (chosen != nullptr) {
      c->swapped = true;
      c->info = other;
      roles_swapped_->Inc();
      for (Connection::Stashed& st : c->stash) st.dir = Flip(st.dir);
    }
  }
  if (chosen != nullptr) {
    inferred_->Inc();
    StartParser(c, chosen);
    c->parser->OnData(c->swapped ? Flip(dir) : dir, chunk);  // after the older stashed chunks
    return;
  }
  if (c->prefix[d].empty()) c->prefix[d].assign(view);
  c->stash.push_back(Connection::Stashed{
      dir, chunk,
      std::string(reinterpret_cast<const char*>(chunk.data.data()), chunk.data.size())});
  if (c->inference_chunks >= options_.max_inference_chunks) {
    inference_failed_->Inc();
    c->phase = Connection::Phase::kUnknown;
    c->stash.clear();
    c->prefix[0].clear();
    c->prefix[1].clear();
  }
}

void L7Analyzer::StartParser(Connection* c, const ProtocolSpec* spec) {
  c->spec = spec;
  c->reported = spec->protocol;
  c->parser = AcquireParser(spec);
  c->phase = Connection::Phase::kParsing;
  for (Connection::Stashed& s : c->stash) {
    s.chunk.data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data.data()),
                                            s.data.size());
    c->parser->OnData(s.dir, s.chunk);
  }
  c->stash.clear();
  c->prefix[0].clear();
  c->prefix[1].clear();
}

const ParserCounters* L7Analyzer::CountersFor(const ProtocolSpec* spec) {
  auto& slot = counters_[spec->protocol];
  if (!slot) slot = std::make_unique<ParserCounters>(ParserCounters::Create(metrics_, spec->name));
  return slot.get();
}

void L7Analyzer::StitchAndEmit(Connection* c, uint64_t now_ns, bool closed) {
  if (c->parser == nullptr) return;
  StitchContext ctx;
  ctx.now_ns = now_ns;
  ctx.timeout_ns = options_.parser.request_timeout_ns;
  ctx.connection_closed = closed;
  scratch_.clear();
  c->parser->Stitch(ctx, &scratch_);
  for (v1::L7RequestLog& rec : scratch_) {
    if (rec.l7_protocol() == L7Protocol::L7_PROTOCOL_UNKNOWN) rec.set_l7_protocol(c->spec->protocol);
    FillConnectionFields(c->info, &rec);
    c->reported = rec.l7_protocol();
    auto& counter = records_by_protocol_[rec.l7_protocol()];
    if (counter == nullptr) {
      counter = metrics_->GetCounter("sonde_agent_l7_records_total", "L7 request records emitted",
                                     {{"protocol", std::string(ProtocolName(rec.l7_protocol()))}});
    }
    counter->Inc();
    if (options_.app_metrics) app_metrics_.Add(rec);
    if (sink_ != nullptr) sink_->Emit(std::move(rec));
  }
  scratch_.clear();
}

void L7Analyzer::FillConnectionFields(const flow::ConnectionInfo& info,
                                      v1::L7RequestLog* rec) const {
  const net::FiveTuple& t = info.tuple;
  rec->set_flow_id(info.flow_id);
  rec->set_signal_source(info.signal_source);
  const bool v4 = t.src_ip.is_v4() && t.dst_ip.is_v4();
  rec->set_is_ipv4(v4 ? 1 : 0);
  if (v4) {
    rec->set_ip4_0(t.src_ip.v4());
    rec->set_ip4_1(t.dst_ip.v4());
  } else {
    rec->set_ip6_0(std::string(reinterpret_cast<const char*>(t.src_ip.bytes().data()), 16));
    rec->set_ip6_1(std::string(reinterpret_cast<const char*>(t.dst_ip.bytes().data()), 16));
  }
  rec->set_client_port(t.src_port);
  rec->set_server_port(t.dst_port);
  rec->set_protocol(static_cast<uint32_t>(t.protocol));
  if (info.is_tls_plaintext) rec->set_is_encrypted(1);
  rec->set_process_id_0(info.process_0.pid);
  rec->set_process_id_1(info.process_1.pid);
  // Setting an empty string still allocates one in protobuf: packet records have none of these.
  if (!info.process_0.comm.empty()) rec->set_process_kname_0(info.process_0.comm);
  if (!info.process_1.comm.empty()) rec->set_process_kname_1(info.process_1.comm);
  if (!info.process_0.container_id.empty()) rec->set_container_id_0(info.process_0.container_id);
  if (!info.process_1.container_id.empty()) rec->set_container_id_1(info.process_1.container_id);
}

void L7Analyzer::CloseConnection(uint64_t flow_id, uint64_t now_ns) {
  Table::Entry* e = table_.Find(flow_id);
  if (e == nullptr || e->state == Table::State::kClosed) return;
  if (e->state == Table::State::kDormant) {
    table_.Close(e, e->protocol, now_ns);
  } else {
    Connection* c = e->open;
    if (c->phase == Connection::Phase::kParsing || c->phase == Connection::Phase::kGaveUp) {
      StitchAndEmit(c, now_ns, true);  // touches no table entry: e stays valid
    }
    table_.Close(e, c->reported, now_ns);
    Recycle(RemoveOpen(c));
  }
  connections_->Set(static_cast<int64_t>(table_.open() + table_.dormant()));
}

void L7Analyzer::Recycle(std::unique_ptr<Connection> c) {
  // Parsers and connection objects of closed connections serve new ones (a fresh FrameParser
  // allocates its queues; short connections made that a large share of the per-record cost).
  // Both pools are bounded.
  ReleaseParser(c.get());
  if (free_conns_.size() >= kMaxPooled) return;
  c->phase = Connection::Phase::kInferring;
  c->spec = nullptr;
  c->reported = L7Protocol::L7_PROTOCOL_UNKNOWN;
  c->inference_chunks = 0;
  c->prefix[0].clear();
  c->prefix[1].clear();
  c->stash.clear();
  if (c->stash.capacity() > options_.max_inference_chunks) {
    std::vector<Connection::Stashed>().swap(c->stash);
  }
  c->last_ns = 0;
  c->swapped = false;
  free_conns_.push_back(std::move(c));
}

void L7Analyzer::OnClose(const flow::ConnectionInfo& conn, uint64_t timestamp_ns) {
  CloseConnection(conn.flow_id, timestamp_ns);
}

void L7Analyzer::OnTick(uint64_t now_ns) {
  if (now_ns >= last_scan_ns_ + options_.scan_interval_ns || now_ns < last_scan_ns_) {
    last_scan_ns_ = now_ns;
    std::vector<uint64_t> idle;
    // In open_ order: deterministic (it follows the order connections opened and closed).
    for (const std::unique_ptr<Connection>& c : open_) {
      if (c->last_ns + options_.idle_timeout_ns <= now_ns) {
        idle.push_back(c->info.flow_id);
      } else if (c->parser != nullptr && c->parser->has_pending()) {
        StitchAndEmit(c.get(), now_ns, false);
      }
    }
    for (uint64_t id : idle) CloseConnection(id, now_ns);
    if (now_ns >= options_.idle_timeout_ns) {
      table_.CloseDormantUpTo(now_ns - options_.idle_timeout_ns, now_ns);
    }
    const uint64_t keep_ns = 2 * options_.idle_timeout_ns;
    if (now_ns >= keep_ns) table_.EraseClosedUpTo(now_ns - keep_ns);
  }
  if (options_.app_metrics) app_metrics_.Advance(now_ns);
}

void L7Analyzer::FlushAll(uint64_t now_ns) {
  std::vector<uint64_t> ids;
  ids.reserve(open_.size());
  for (const std::unique_ptr<Connection>& c : open_) ids.push_back(c->info.flow_id);
  std::sort(ids.begin(), ids.end());  // deterministic output order
  for (uint64_t id : ids) CloseConnection(id, now_ns);
  table_.CloseDormantUpTo(~0ULL, now_ns);
  if (options_.app_metrics) app_metrics_.FlushAll();
}

common::v1::L7Protocol L7Analyzer::ProtocolOf(uint64_t flow_id) const {
  const Table::Entry* e = table_.Find(flow_id);
  if (e == nullptr) return L7Protocol::L7_PROTOCOL_UNKNOWN;
  return e->state == Table::State::kOpen ? e->open->reported : e->protocol;
}

bool L7Analyzer::Abandoned(uint64_t flow_id) const {
  const Table::Entry* e = table_.Find(flow_id);
  return e != nullptr && e->state == Table::State::kOpen &&
         e->open->phase == Connection::Phase::kUnknown;
}

}  // namespace sonde::agent::protocols
