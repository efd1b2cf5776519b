// Minimal pcap -> StreamChunk replay for parser tests.
#include "agent/protocols/common/testing/pcap_streams.h"

#include <pcap/pcap.h>

#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

namespace sonde::agent::protocols::testing {
namespace {

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}
bool SeqLess(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }

struct Packet {
  net::FiveTuple tuple;
  uint8_t tcp_flags = 0;
  uint32_t seq = 0;
  const uint8_t* payload = nullptr;
  size_t payload_len = 0;
};

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;

// Parses L3/L4 from an IP header; false when not TCP/UDP or truncated.
bool ParseIp(const uint8_t* p, size_t n, Packet* out) {
  if (n < 1) return false;
  const int version = p[0] >> 4;
  uint8_t proto = 0;
  const uint8_t* l4 = nullptr;
  size_t l4_len = 0;
  if (version == 4) {
    if (n < 20) return false;
    const size_t ihl = (p[0] & 0x0f) * 4u;
    const size_t total = Be16(p + 2);
    if (ihl < 20 || n < ihl) return false;
    if ((Be16(p + 6) & 0x1fff) != 0) return false;  // non-first fragment
    proto = p[9];
    out->tuple.src_ip = net::IpAddress::V4(Be32(p + 12));
    out->tuple.dst_ip = net::IpAddress::V4(Be32(p + 16));
    size_t end = std::min(n, total >= ihl ? total : n);
    l4 = p + ihl;
    l4_len = end - ihl;
  } else if (version == 6) {
    if (n < 40) return false;
    proto = p[6];
    out->tuple.src_ip = net::IpAddress::V6(p + 8);
    out->tuple.dst_ip = net::IpAddress::V6(p + 24);
    size_t off = 40;
    const size_t end = std::min(n, 40 + static_cast<size_t>(Be16(p + 4)));
    for (int i = 0; i < 8 && (proto == 0 || proto == 43 || proto == 60 || proto == 44); ++i) {
      if (off + 8 > end) return false;
      if (proto == 44 && (Be16(p + off + 2) & 0xfff8) != 0) return false;
      const size_t len = proto == 44 ? 8 : (p[off + 1] + 1u) * 8;
      proto = p[off];
      off += len;
    }
    if (off > end) return false;
    l4 = p + off;
    l4_len = end - off;
  } else {
    return false;
  }
  if (proto == 6) {
    if (l4_len < 20) return false;
    const size_t doff = (l4[12] >> 4) * 4u;
    if (doff < 20 || doff > l4_len) return false;
    out->tuple.protocol = net::IpProtocol::kTcp;
    out->tuple.src_port = Be16(l4);
    out->tuple.dst_port = Be16(l4 + 2);
    out->seq = Be32(l4 + 4);
    out->tcp_flags = l4[13];
    out->payload = l4 + doff;
    out->payload_len = l4_len - doff;
    return true;
  }
  if (proto == 17) {
    if (l4_len < 8) return false;
    out->tuple.protocol = net::IpProtocol::kUdp;
    out->tuple.src_port = Be16(l4);
    out->tuple.dst_port = Be16(l4 + 2);
    out->payload = l4 + 8;
    out->payload_len = std::min(l4_len - 8, static_cast<size_t>(std::max(Be16(l4 + 4), uint16_t{8}) - 8));
    return true;
  }
  return false;
}

bool ParseLink(int linktype, const uint8_t* p, size_t n, Packet* out) {
  size_t off = 0;
  uint16_t ethertype = 0;
  switch (linktype) {
    case DLT_EN10MB:
      if (n < 14) return false;
      ethertype = Be16(p + 12);
      off = 14;
      while ((ethertype == 0x8100 || ethertype == 0x88a8) && off + 4 <= n) {
        ethertype = Be16(p + off + 2);
        off += 4;
      }
      if (ethertype != 0x0800 && ethertype != 0x86dd) return false;
      break;
    case DLT_LINUX_SLL:
      if (n < 16) return false;
      ethertype = Be16(p + 14);
      off = 16;
      if (ethertype != 0x0800 && ethertype != 0x86dd) return false;
      break;
    case 276:  // LINUX_SLL2
      if (n < 20) return false;
      off = 20;
      break;
    case DLT_NULL:
    case DLT_LOOP:
      off = 4;
      break;
    case DLT_RAW:
    case 228:
    case 229:
      off = 0;
      break;
    default:
      return false;
  }
  if (off > n) return false;
  return ParseIp(p + off, n - off, out);
}

struct TcpDir {
  bool have_seq = false;
  uint32_t next_seq = 0;
  std::map<uint32_t, std::string> ooo;  // keyed by seq; small, bounded
  bool fin = false;
};

struct Conn {
  flow::ConnectionInfo info;
  TcpDir dirs[2];
  bool closed = false;
};

class Replayer {
 public:
  explicit Replayer(flow::StreamHandler* h) : handler_(h) {}

  void OnPacket(const Packet& pkt, uint64_t ts_ns) {
    last_ts_ = ts_ns;
    ++stats_.packets;
    const net::FiveTuple key = pkt.tuple.Canonical();
    auto it = conns_.find(key);
    if (it == conns_.end() || it->second->closed) {
      if (it != conns_.end()) conns_.erase(it);
      auto c = std::make_unique<Conn>();
      c->info.flow_id = ++next_id_;
      c->info.tuple = pkt.tuple;
      bool reverse = false;
      if (pkt.tuple.protocol == net::IpProtocol::kTcp) {
        ++stats_.tcp_connections;
        if ((pkt.tcp_flags & (kSyn | kAck)) == (kSyn | kAck)) {
          reverse = true;
        } else if ((pkt.tcp_flags & kSyn) == 0) {
          reverse = pkt.tuple.src_port < pkt.tuple.dst_port;
        }
      } else {
        ++stats_.udp_flows;
        reverse = pkt.tuple.src_port < 1024 && pkt.tuple.dst_port >= 1024;
      }
      if (reverse) c->info.tuple = pkt.tuple.Reversed();
      it = conns_.emplace(key, std::move(c)).first;
    }
    Conn* c = it->second.get();
    const flow::StreamDirection dir = pkt.tuple == c->info.tuple ? flow::StreamDirection::kRequest
                                                                  : flow::StreamDirection::kResponse;
    if (pkt.tuple.protocol == net::IpProtocol::kUdp) {
      if (pkt.payload_len > 0) {
        flow::StreamChunk chunk;
        chunk.timestamp_ns = ts_ns;
        chunk.data = {pkt.payload, pkt.payload_len};
        chunk.is_datagram = true;
        handler_->OnData(c->info, dir, chunk);
      }
    } else {
      OnTcp(c, dir, pkt, ts_ns);
    }
    handler_->OnTick(ts_ns);
  }

  void Finish() {
    for (auto& [k, c] : conns_) {
      if (c->closed) continue;
      for (int d = 0; d < 2; ++d) FlushOoo(c.get(), static_cast<flow::StreamDirection>(d), last_ts_);
      handler_->OnClose(c->info, last_ts_);
    }
    conns_.clear();
    stats_.last_timestamp_ns = last_ts_;
  }

  const PcapReplayStats& stats() const { return stats_; }

 private:
  void Deliver(Conn* c, flow::StreamDirection dir, uint32_t seq, const uint8_t* data, size_t n,
               uint32_t gap, uint64_t ts) {
    flow::StreamChunk chunk;
    chunk.timestamp_ns = ts;
    chunk.tcp_seq = seq;
    chunk.data = {data, n};
    chunk.gap_bytes_before = gap;
    if (gap > 0) ++stats_.gaps;
    handler_->OnData(c->info, dir, chunk);
  }

  // Delivers whatever of the out-of-order store is now contiguous.
  void Drain(Conn* c, flow::StreamDirection dir, uint64_t ts) {
    TcpDir& d = c->dirs[static_cast<int>(dir)];
    while (!d.ooo.empty()) {
      auto it = d.ooo.begin();
      const uint32_t seq = it->first;
      if (SeqLess(d.next_seq, seq)) break;
      const uint32_t skip = d.next_seq - seq;
      if (skip < it->second.size()) {
        Deliver(c, dir, d.next_seq, reinterpret_cast<const uint8_t*>(it->second.data()) + skip,
                it->second.size() - skip, 0, ts);
        d.next_seq = seq + static_cast<uint32_t>(it->second.size());
      }
      d.ooo.erase(it);
    }
  }

  // Gives up waiting for missing bytes: jumps over the hole, reporting a gap.
  void FlushOoo(Conn* c, flow::StreamDirection dir, uint64_t ts) {
    TcpDir& d = c->dirs[static_cast<int>(dir)];
    while (!d.ooo.empty()) {
      auto it = d.ooo.begin();
      const uint32_t gap = it->first - d.next_seq;
      d.next_seq = it->first;
      std::string data = std::move(it->second);
      d.ooo.erase(it);
      Deliver(c, dir, d.next_seq, reinterpret_cast<const uint8_t*>(data.data()), data.size(), gap,
              ts);
      d.next_seq += static_cast<uint32_t>(data.size());
      Drain(c, dir, ts);
    }
  }

  void OnTcp(Conn* c, flow::StreamDirection dir, const Packet& pkt, uint64_t ts) {
    TcpDir& d = c->dirs[static_cast<int>(dir)];
    if (pkt.tcp_flags & kSyn) {
      d.have_seq = true;
      d.next_seq = pkt.seq + 1;
    }
    if (pkt.payload_len > 0) {
      if (!d.have_seq) {
        d.have_seq = true;
        d.next_seq = pkt.seq;
      }
      uint32_t seq = pkt.seq;
      const uint8_t* data = pkt.payload;
      size_t n = pkt.payload_len;
      if (SeqLess(seq, d.next_seq)) {  // retransmission, maybe with new bytes at the end
        const uint32_t old = d.next_seq - seq;
        if (old >= n) n = 0;
        else {
          data += old;
          n -= old;
          seq = d.next_seq;
        }
      }
      if (n > 0) {
        if (seq == d.next_seq) {
          Deliver(c, dir, seq, data, n, 0, ts);
          d.next_seq = seq + static_cast<uint32_t>(n);
          Drain(c, dir, ts);
        } else {
          d.ooo.emplace(seq, std::string(reinterpret_cast<const char*>(data), n));
          if (d.ooo.size() > 32) FlushOoo(c, dir, ts);
        }
      }
    }
    if (pkt.tcp_flags & kFin) d.fin = true;
    if ((pkt.tcp_flags & kRst) || (c->dirs[0].fin && c->dirs[1].fin)) {
      for (int i = 0; i < 2; ++i) FlushOoo(c, static_cast<flow::StreamDirection>(i), ts);
      handler_->OnClose(c->info, ts);
      c->closed = true;
    }
  }

  flow::StreamHandler* handler_;
  std::unordered_map<net::FiveTuple, std::unique_ptr<Conn>, net::FiveTupleHash> conns_;
  uint64_t next_id_ = 0;
  uint64_t last_ts_ = 0;
  PcapReplayStats stats_;
};

}  // namespace

StatusOr<PcapReplayStats> ReplayPcap(const std::string& path, flow::StreamHandler* handler) {
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO,
                                                      err);
  if (p == nullptr) return NotFoundError("pcap open " + path + ": " + err);
  const int linktype = pcap_datalink(p);
  Replayer r(handler);
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  while (pcap_next_ex(p, &hdr, &data) == 1) {
    Packet pkt;
    if (!ParseLink(linktype, data, hdr->caplen, &pkt)) continue;
    const uint64_t ts = static_cast<uint64_t>(hdr->ts.tv_sec) * 1000000000ULL +
                        static_cast<uint64_t>(hdr->ts.tv_usec);  // nano precision requested
    r.OnPacket(pkt, ts);
  }
  pcap_close(p);
  r.Finish();
  return r.stats();
}

}  // namespace sonde::agent::protocols::testing
