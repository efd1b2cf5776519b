// Test-only: reads the TCP connections of one server port from a pcap and replays them through a
// protocol's Traits (boundary, parse, stitch) the way the generic frame parser does. Shared by the
// golden tests of mysql, postgres, redis and mqtt until common/ provides a pcap test driver.
#pragma once

#include <pcap/pcap.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols::testing {

struct Chunk {
  bool to_server = true;
  uint64_t timestamp_ns = 0;
  uint32_t tcp_seq = 0;
  std::string data;
};

struct Connection {
  uint16_t client_port = 0;
  uint16_t server_port = 0;
  std::vector<Chunk> chunks;  // payload in capture order, retransmitted bytes trimmed
};

namespace internal {

inline uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t Be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}

// Returns the offset of the IP header for the link type, or -1.
inline int IpOffset(int dlt, const uint8_t* p, size_t n) {
  switch (dlt) {
    case DLT_NULL:
    case DLT_LOOP:
      return 4;
    case DLT_RAW:
    case 14:
      return 0;
    case DLT_LINUX_SLL:
      return 16;
    case 276:  // DLT_LINUX_SLL2
      return 20;
    case DLT_EN10MB: {
      size_t off = 12;
      while (off + 2 <= n && (Be16(p + off) == 0x8100 || Be16(p + off) == 0x88a8)) off += 4;
      return static_cast<int>(off + 2);
    }
    default:
      return -1;
  }
}

}  // namespace internal

// Reads every TCP connection to or from `server_port` (0: any port; the lower port of a
// connection is taken as the server then). Returns false with *error set when the file can't be read.
inline bool ReadPcapConnections(const std::string& path, uint16_t server_port,
                                std::vector<Connection>* out, std::string* error) {
  char errbuf[PCAP_ERRBUF_SIZE];
  pcap_t* pcap = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO,
                                                         errbuf);
  if (pcap == nullptr) {
    *error = errbuf;
    return false;
  }
  const int dlt = pcap_datalink(pcap);
  struct DirState {
    bool known = false;
    uint32_t next_seq = 0;
  };
  struct ConnState {
    size_t index = 0;
    DirState dir[2];
  };
  // key: client ip bytes, client port, server ip bytes, server port
  std::map<std::tuple<std::string, uint16_t, std::string, uint16_t>, ConnState> conns;
  pcap_pkthdr* hdr = nullptr;
  const u_char* pkt = nullptr;
  while (pcap_next_ex(pcap, &hdr, &pkt) == 1) {
    const uint8_t* p = pkt;
    size_t n = hdr->caplen;
    int off = internal::IpOffset(dlt, p, n);
    if (off < 0 || static_cast<size_t>(off) + 20 > n) continue;
    p += off;
    n -= static_cast<size_t>(off);
    std::string src_ip, dst_ip;
    size_t l4 = 0, ip_end = n;
    uint8_t proto = 0;
    if ((p[0] >> 4) == 4) {
      l4 = static_cast<size_t>(p[0] & 0xf) * 4;
      proto = p[9];
      src_ip.assign(reinterpret_cast<const char*>(p + 12), 4);
      dst_ip.assign(reinterpret_cast<const char*>(p + 16), 4);
      ip_end = std::min<size_t>(n, internal::Be16(p + 2));
    } else if ((p[0] >> 4) == 6 && n >= 40) {
      l4 = 40;
      proto = p[6];
      src_ip.assign(reinterpret_cast<const char*>(p + 8), 16);
      dst_ip.assign(reinterpret_cast<const char*>(p + 24), 16);
      ip_end = std::min<size_t>(n, 40 + internal::Be16(p + 4));
    } else {
      continue;
    }
    if (proto != 6 || l4 + 20 > ip_end) continue;
    const uint8_t* tcp = p + l4;
    uint16_t sport = internal::Be16(tcp), dport = internal::Be16(tcp + 2);
    uint32_t seq = internal::Be32(tcp + 4);
    size_t thl = static_cast<size_t>(tcp[12] >> 4) * 4;
    uint8_t flags = tcp[13];
    if (l4 + thl > ip_end) continue;
    bool to_server;
    if (server_port != 0) {
      if (dport == server_port) {
        to_server = true;
      } else if (sport == server_port) {
        to_server = false;
      } else {
        continue;
      }
    } else {
      to_server = dport < sport;
    }
    auto key = to_server ? std::make_tuple(src_ip, sport, dst_ip, dport)
                         : std::make_tuple(dst_ip, dport, src_ip, sport);
    auto [it, inserted] = conns.try_emplace(key);
    if (inserted) {
      it->second.index = out->size();
      Connection c;
      c.client_port = std::get<1>(key);
      c.server_port = std::get<3>(key);
      out->push_back(std::move(c));
    }
    DirState& d = it->second.dir[to_server ? 0 : 1];
    if (flags & 0x02) {  // SYN
      d.known = true;
      d.next_seq = seq + 1;
      continue;
    }
    std::string_view payload(reinterpret_cast<const char*>(tcp + thl), ip_end - l4 - thl);
    if (payload.empty()) continue;
    if (!d.known) {
      d.known = true;
      d.next_seq = seq;
    }
    int32_t delta = static_cast<int32_t>(d.next_seq - seq);
    if (delta > 0) {  // (partly) retransmitted
      if (static_cast<size_t>(delta) >= payload.size()) continue;
      payload.remove_prefix(static_cast<size_t>(delta));
      seq += static_cast<uint32_t>(delta);
    }
    d.next_seq = seq + static_cast<uint32_t>(payload.size());
    Chunk ch;
    ch.to_server = to_server;
    ch.timestamp_ns = static_cast<uint64_t>(hdr->ts.tv_sec) * 1000000000ull +
                      static_cast<uint64_t>(hdr->ts.tv_usec);  // nano precision requested
    ch.tcp_seq = seq;
    ch.data.assign(payload);
    (*out)[it->second.index].chunks.push_back(std::move(ch));
  }
  pcap_close(pcap);
  return true;
}

// Per-direction reassembly buffer as the generic frame parser keeps it.
template <class Traits>
struct DirectionBuffer {
  std::string bytes;
  uint32_t start_seq = 0;
  // (offset in bytes, timestamp) of each appended chunk, to time-stamp frames by their first byte.
  std::deque<std::pair<size_t, uint64_t>> marks;
  FrameQueue<typename Traits::Frame> frames;
  size_t invalid = 0;

  void Append(const Chunk& c) {
    if (bytes.empty()) start_seq = c.tcp_seq;
    marks.emplace_back(bytes.size(), c.timestamp_ns);
    bytes += c.data;
  }
  uint64_t TimestampAt(size_t offset) const {
    uint64_t ts = marks.empty() ? 0 : marks.front().second;
    for (const auto& [o, t] : marks) {
      if (o > offset) break;
      ts = t;
    }
    return ts;
  }
  void Consume(size_t n) {
    bytes.erase(0, n);
    start_seq += static_cast<uint32_t>(n);
    for (auto& m : marks) m.first = m.first > n ? m.first - n : 0;
    while (marks.size() > 1 && marks[1].first == 0) marks.pop_front();
    if (bytes.empty()) marks.clear();
  }
  void Parse(MessageType type, typename Traits::State* state) {
    for (int guard = 0; guard < 1000000 && !bytes.empty(); ++guard) {
      std::string_view view(bytes);
      typename Traits::Frame frame{};
      ParseState s = Traits::ParseFrame(type, &view, &frame, state);
      size_t used = bytes.size() - view.size();
      if (s == ParseState::kSuccess || s == ParseState::kIgnored) {
        if (s == ParseState::kSuccess) {
          frame.timestamp_ns = TimestampAt(0);
          frame.tcp_seq = start_seq;
          frames.push_back(std::move(frame));
        }
        Consume(used);
        if (used == 0) break;  // contract violation; avoid spinning
      } else if (s == ParseState::kInvalid) {
        ++invalid;
        size_t next = Traits::FindFrameBoundary(type, bytes, 1, state);
        Consume(next == std::string_view::npos ? bytes.size() : next);
      } else {
        break;
      }
    }
  }
};

struct ReplayResult {
  std::vector<v1::L7RequestLog> records;
  size_t invalid_requests = 0;
  size_t invalid_responses = 0;
};

// Replays one connection; stitches after every chunk and once more at close.
template <class Traits>
ReplayResult Replay(const Connection& c, uint64_t timeout_ns = 60'000'000'000ull) {
  ReplayResult r;
  typename Traits::State state{};
  DirectionBuffer<Traits> req, resp;
  RecordBuffer out;
  uint64_t now = 0;
  for (const Chunk& ch : c.chunks) {
    now = ch.timestamp_ns;
    if (ch.to_server) {
      req.Append(ch);
      req.Parse(MessageType::kRequest, &state);
    } else {
      resp.Append(ch);
      resp.Parse(MessageType::kResponse, &state);
    }
    StitchContext ctx{now, timeout_ns, false};
    Traits::Stitch(&req.frames, &resp.frames, &state, ctx, &out);
    for (v1::L7RequestLog& rec : out) r.records.push_back(std::move(rec));
    out.clear();
  }
  StitchContext ctx{now, timeout_ns, true};
  Traits::Stitch(&req.frames, &resp.frames, &state, ctx, &out);
  for (v1::L7RequestLog& rec : out) r.records.push_back(std::move(rec));
  r.invalid_requests = req.invalid;
  r.invalid_responses = resp.invalid;
  return r;
}

// One line per record with the fields the golden files compare (no timestamps or tcp seqs, which
// change with every recording; durations are checked separately).
inline std::string Summarize(const v1::L7RequestLog& r) {
  std::string s;
  s += "type=" + r.request_type();
  if (!r.version().empty()) s += " version=" + r.version();
  if (!r.request_domain().empty()) s += " domain=" + r.request_domain();
  if (!r.request_resource().empty()) s += " resource=" + r.request_resource();
  if (!r.endpoint().empty()) s += " endpoint=" + r.endpoint();
  if (r.request_id() != 0) s += " id=" + std::to_string(r.request_id());
  s += " status=" + std::to_string(static_cast<int>(r.response_status()));
  if (r.response_code() != 0) s += " code=" + std::to_string(r.response_code());
  if (!r.response_exception().empty()) s += " exception=" + r.response_exception();
  if (!r.response_result().empty()) s += " result=" + r.response_result();
  return s;
}

// Compares `actual` with the golden file; with SONDE_UPDATE_GOLDEN=1 in the environment rewrites
// it instead (review the diff before committing). Returns "" when equal, else a description.
inline std::string CompareGolden(const std::string& actual, const std::string& path) {
  if (const char* u = std::getenv("SONDE_UPDATE_GOLDEN"); u != nullptr && std::string(u) == "1") {
    std::ofstream(path, std::ios::binary) << actual;
    return "";
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read golden file " + path;
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str() == actual) return "";
  return "mismatch with " + path + "\n--- expected\n" + ss.str() + "--- actual\n" + actual;
}

// Path of a file under the source tree (tests run with cwd = repo root and SONDE_SOURCE_DIR set).
inline std::string SourcePath(const std::string& rel) {
  const char* root = std::getenv("SONDE_SOURCE_DIR");
  return (root != nullptr ? std::string(root) + "/" : std::string()) + rel;
}

}  // namespace sonde::agent::protocols::testing
