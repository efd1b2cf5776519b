// Packet decoding: every length is checked against the captured bytes before it is read.
#include "agent/flow/packet_decoder.h"

#include <algorithm>
#include <cstring>

namespace sonde::agent::flow {
namespace {

using Bytes = std::span<const uint8_t>;

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}
uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[3]) << 24 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[1]) << 8 | p[0];
}

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86DD;
constexpr uint16_t kEtherVlan = 0x8100;
constexpr uint16_t kEtherQinQ = 0x88A8;
constexpr uint16_t kEtherQinQOld = 0x9100;
constexpr uint16_t kEtherTeb = 0x6558;     // transparent Ethernet bridging (GRE, Geneve)
constexpr uint16_t kEtherErspan2 = 0x88BE;
constexpr uint16_t kEtherErspan3 = 0x22EB;

constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoIpip = 4;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoIpv6InIp = 41;
constexpr uint8_t kProtoGre = 47;
constexpr uint8_t kProtoIcmpV6 = 58;

constexpr uint16_t kVxlanGpePort = 4790;
constexpr uint16_t kVxlanLinuxPort = 8472;

}  // namespace

std::string_view DecodeResultName(DecodeResult r) {
  switch (r) {
    case DecodeResult::kOk: return "ok";
    case DecodeResult::kTruncated: return "truncated";
    case DecodeResult::kMalformed: return "malformed";
    case DecodeResult::kUnsupportedLink: return "unsupported_link";
    case DecodeResult::kUnsupportedL4: return "unsupported_l4";
    case DecodeResult::kFragmentPending: return "fragment_pending";
    case DecodeResult::kFragmentDropped: return "fragment_dropped";
    case DecodeResult::kTunnelTooDeep: return "tunnel_too_deep";
  }
  return "unknown";
}

DecodeResult PacketDecoder::Decode(const capture::PacketView& packet, DecodedPacket* out) {
  *out = DecodedPacket{};
  out->timestamp_ns = packet.timestamp_ns;
  now_ns_ = packet.timestamp_ns;
  if (!fragments_.empty() && packet.timestamp_ns > last_expire_ns_ + 1'000'000'000ull) {
    last_expire_ns_ = packet.timestamp_ns;
    ExpireFragments(packet.timestamp_ns);
  }
  return DecodeLink(packet.link_type, packet.data, 0, out);
}

void PacketDecoder::MarkTunnel(DecodedPacket* out, common::v1::TunnelType type, uint32_t id) {
  if (out->tunnel_type != common::v1::TUNNEL_TYPE_NONE) return;  // keep the outermost
  out->tunnel_type = type;
  out->tunnel_id = id;
}

DecodeResult PacketDecoder::DecodeLink(capture::LinkType link, Bytes d, int depth,
                                       DecodedPacket* out) {
  switch (link) {
    case capture::LinkType::kEthernet:
      return DecodeEthernet(d, depth, out);
    case capture::LinkType::kRaw:
    case capture::LinkType::kIpv4:
    case capture::LinkType::kIpv6: {
      if (d.empty()) return DecodeResult::kTruncated;
      uint8_t version = d[0] >> 4;
      if (version == 4) return DecodeIpv4(d, depth, out);
      if (version == 6) return DecodeIpv6(d, depth, out);
      return DecodeResult::kMalformed;
    }
    case capture::LinkType::kNull: {
      if (d.size() < 4) return DecodeResult::kTruncated;
      // The family is in the capturing host's byte order: accept either.
      uint32_t family = Le32(d.data());
      if (family > 0xFFFF) family = Be32(d.data());
      Bytes rest = d.subspan(4);
      if (family == 2) return DecodeIpv4(rest, depth, out);
      if (family == 10 || family == 24 || family == 28 || family == 30) {
        return DecodeIpv6(rest, depth, out);
      }
      return DecodeResult::kUnsupportedLink;
    }
    case capture::LinkType::kLinuxSll: {
      if (d.size() < 16) return DecodeResult::kTruncated;
      return DecodeEthertype(Be16(d.data() + 14), d.subspan(16), depth, out);
    }
    case capture::LinkType::kLinuxSll2: {
      if (d.size() < 20) return DecodeResult::kTruncated;
      return DecodeEthertype(Be16(d.data()), d.subspan(20), depth, out);
    }
  }
  return DecodeResult::kUnsupportedLink;
}

DecodeResult PacketDecoder::DecodeEthernet(Bytes d, int depth, DecodedPacket* out) {
  if (d.size() < 14) return DecodeResult::kTruncated;
  return DecodeEthertype(Be16(d.data() + 12), d.subspan(14), depth, out);
}

DecodeResult PacketDecoder::DecodeEthertype(uint16_t type, Bytes d, int depth,
                                            DecodedPacket* out) {
  // VLAN tags (802.1Q, QinQ): at most a few, each 4 bytes.
  for (int tags = 0; type == kEtherVlan || type == kEtherQinQ || type == kEtherQinQOld; ++tags) {
    if (tags >= 4) return DecodeResult::kMalformed;
    if (d.size() < 4) return DecodeResult::kTruncated;
    type = Be16(d.data() + 2);
    d = d.subspan(4);
  }
  if (type == kEtherIpv4) return DecodeIpv4(d, depth, out);
  if (type == kEtherIpv6) return DecodeIpv6(d, depth, out);
  return DecodeResult::kUnsupportedLink;
}

DecodeResult PacketDecoder::DecodeIpv4(Bytes d, int depth, DecodedPacket* out) {
  if (d.size() < 20) return DecodeResult::kTruncated;
  if ((d[0] >> 4) != 4) return DecodeResult::kMalformed;
  size_t ihl = static_cast<size_t>(d[0] & 0x0F) * 4;
  if (ihl < 20) return DecodeResult::kMalformed;
  if (d.size() < ihl) return DecodeResult::kTruncated;
  uint32_t total_len = Be16(d.data() + 2);
  // TSO/GRO captures carry total length 0: trust the captured length then.
  if (total_len == 0) total_len = static_cast<uint32_t>(d.size());
  if (total_len < ihl) return DecodeResult::kMalformed;
  uint16_t frag = Be16(d.data() + 6);
  uint8_t proto = d[9];
  out->is_ipv4 = true;
  out->tuple.src_ip = net::IpAddress::V4(Be32(d.data() + 12));
  out->tuple.dst_ip = net::IpAddress::V4(Be32(d.data() + 16));
  out->l3_bytes = total_len;
  bool more_fragments = (frag & 0x2000) != 0;
  uint32_t frag_offset = (frag & 0x1FFF) * 8u;
  if (more_fragments || frag_offset != 0) {
    if (d.size() < total_len) return DecodeResult::kFragmentDropped;  // truncated capture
    uint32_t len = total_len - static_cast<uint32_t>(ihl);
    if (more_fragments && len % 8 != 0) return DecodeResult::kFragmentDropped;
    FragKey key;
    std::memcpy(key.src.data(), d.data() + 12, 4);
    std::memcpy(key.dst.data(), d.data() + 16, 4);
    key.id = Be16(d.data() + 4);
    key.proto = proto;
    Bytes whole;
    uint8_t unused = 0;
    DecodeResult r = AddFragment(key, frag_offset, more_fragments, d.subspan(ihl, len), proto,
                                 &whole, &unused);
    if (r != DecodeResult::kOk) return r;
    out->l3_bytes = static_cast<uint32_t>(whole.size() + ihl);
    return DecodeL4(proto, whole, static_cast<uint32_t>(whole.size()), depth, out);
  }
  // Ethernet padding: captured bytes beyond total_len are not part of the datagram.
  Bytes l4 = d.subspan(ihl, std::min<size_t>(d.size(), total_len) - ihl);
  return DecodeL4(proto, l4, total_len - static_cast<uint32_t>(ihl), depth, out);
}

DecodeResult PacketDecoder::DecodeIpv6(Bytes d, int depth, DecodedPacket* out) {
  if (d.size() < 40) return DecodeResult::kTruncated;
  if ((d[0] >> 4) != 6) return DecodeResult::kMalformed;
  uint32_t payload_len = Be16(d.data() + 4);
  if (payload_len == 0) payload_len = static_cast<uint32_t>(d.size() - 40);  // jumbo / TSO
  uint8_t next = d[6];
  out->is_ipv4 = false;
  out->tuple.src_ip = net::IpAddress::V6(d.data() + 8);
  out->tuple.dst_ip = net::IpAddress::V6(d.data() + 24);
  out->l3_bytes = payload_len + 40;
  Bytes rest = d.subspan(40, std::min<size_t>(d.size() - 40, payload_len));
  uint32_t wire_left = payload_len;
  for (int i = 0; i < 8; ++i) {
    size_t ext_len = 0;
    switch (next) {
      case 0:    // hop-by-hop
      case 43:   // routing
      case 60:   // destination options
      case 135:  // mobility
        if (rest.size() < 2) return DecodeResult::kTruncated;
        ext_len = (static_cast<size_t>(rest[1]) + 1) * 8;
        break;
      case 51:  // authentication header
        if (rest.size() < 2) return DecodeResult::kTruncated;
        ext_len = (static_cast<size_t>(rest[1]) + 2) * 4;
        break;
      case 44: {  // fragment
        if (rest.size() < 8) return DecodeResult::kTruncated;
        uint16_t off = Be16(rest.data() + 2);
        uint32_t frag_offset = off & 0xFFF8u;
        bool more = (off & 1) != 0;
        if (frag_offset == 0 && !more) {  // atomic fragment: the datagram is whole
          ext_len = 8;
          break;
        }
        if (wire_left < 8 || rest.size() < wire_left) return DecodeResult::kFragmentDropped;
        uint32_t len = wire_left - 8;
        if ((more && len % 8 != 0) || len == 0) return DecodeResult::kFragmentDropped;
        FragKey key;
        key.ipv6 = true;
        std::memcpy(key.src.data(), d.data() + 8, 16);
        std::memcpy(key.dst.data(), d.data() + 24, 16);
        key.id = Be32(rest.data() + 4);
        Bytes whole;
        uint8_t first_next = 0;
        DecodeResult r = AddFragment(key, frag_offset, more, rest.subspan(8, len), rest[0], &whole,
                                     &first_next);
        if (r != DecodeResult::kOk) return r;
        // The unfragmentable part (header + extensions so far) plus the reassembled rest.
        size_t unfragmentable = static_cast<size_t>(rest.data() - d.data());
        out->l3_bytes = static_cast<uint32_t>(unfragmentable + whole.size());
        next = first_next;
        rest = whole;
        wire_left = static_cast<uint32_t>(whole.size());
        continue;
      }
      case 59:  // no next header
        return DecodeResult::kUnsupportedL4;
      default:
        return DecodeL4(next, rest, wire_left, depth, out);
    }
    if (rest.size() < ext_len || wire_left < ext_len) return DecodeResult::kTruncated;
    next = rest[0];
    rest = rest.subspan(ext_len);
    wire_left -= static_cast<uint32_t>(ext_len);
  }
  return DecodeResult::kMalformed;
}

DecodeResult PacketDecoder::DecodeL4(uint8_t proto, Bytes d, uint32_t l4_wire_len, int depth,
                                     DecodedPacket* out) {
  auto& t = out->tuple;
  switch (proto) {
    case kProtoTcp: {
      if (d.size() < 20) return DecodeResult::kTruncated;
      size_t hdr = static_cast<size_t>(d[12] >> 4) * 4;
      if (hdr < 20 || l4_wire_len < hdr) return DecodeResult::kMalformed;
      if (d.size() < hdr) return DecodeResult::kTruncated;
      t.protocol = net::IpProtocol::kTcp;
      t.src_port = Be16(d.data());
      t.dst_port = Be16(d.data() + 2);
      out->tcp_seq = Be32(d.data() + 4);
      out->tcp_ack = Be32(d.data() + 8);
      out->tcp_flags = d[13];
      out->tcp_window = Be16(d.data() + 14);
      out->payload_wire_bytes = l4_wire_len - static_cast<uint32_t>(hdr);
      out->payload = d.subspan(hdr, std::min<size_t>(d.size() - hdr, out->payload_wire_bytes));
      return DecodeResult::kOk;
    }
    case kProtoUdp: {
      if (d.size() < 8) return DecodeResult::kTruncated;
      uint32_t udp_len = Be16(d.data() + 4);
      if (udp_len < 8) udp_len = l4_wire_len;  // 0 under GSO; trust the IP length
      if (udp_len < 8) return DecodeResult::kMalformed;
      uint32_t payload_wire = std::min(udp_len, l4_wire_len) - 8;
      Bytes payload = d.subspan(8, std::min<size_t>(d.size() - 8, payload_wire));
      uint16_t sport = Be16(d.data());
      uint16_t dport = Be16(d.data() + 2);
      // Tunnels over UDP: the inner flow is what we track.
      if (dport == config_.vxlan_port || dport == kVxlanLinuxPort ||
          (config_.vxlan_heuristic && payload.size() >= 8 + 14 && payload[0] == 0x08 &&
           payload[1] == 0 && payload[2] == 0 && payload[3] == 0 && payload[7] == 0 &&
           (Be16(payload.data() + 20) == kEtherIpv4 || Be16(payload.data() + 20) == kEtherIpv6 ||
            Be16(payload.data() + 20) == kEtherVlan))) {
        if (payload.size() >= 8 && (payload[0] & 0x08) != 0) {
          if (depth >= config_.max_tunnel_depth) return DecodeResult::kTunnelTooDeep;
          MarkTunnel(out, common::v1::TUNNEL_TYPE_VXLAN, Be32(payload.data() + 4) >> 8);
          return DecodeEthernet(payload.subspan(8), depth + 1, out);
        }
      } else if (dport == kVxlanGpePort && payload.size() >= 8) {
        if (depth >= config_.max_tunnel_depth) return DecodeResult::kTunnelTooDeep;
        MarkTunnel(out, common::v1::TUNNEL_TYPE_VXLAN, Be32(payload.data() + 4) >> 8);
        uint8_t next = payload[3];
        Bytes inner = payload.subspan(8);
        if (next == 4) {  // NSH: length in 4-byte words in the low 6 bits of byte 1
          if (inner.size() < 8) return DecodeResult::kTruncated;
          size_t nsh_len = static_cast<size_t>(inner[1] & 0x3F) * 4;
          if (nsh_len < 8 || inner.size() < nsh_len) return DecodeResult::kTruncated;
          next = inner[3];
          inner = inner.subspan(nsh_len);
        }
        if (next == 1) return DecodeIpv4(inner, depth + 1, out);
        if (next == 2) return DecodeIpv6(inner, depth + 1, out);
        if (next == 3) return DecodeEthernet(inner, depth + 1, out);
        return DecodeResult::kUnsupportedLink;
      } else if (dport == config_.geneve_port && payload.size() >= 8) {
        if (depth >= config_.max_tunnel_depth) return DecodeResult::kTunnelTooDeep;
        size_t hdr = 8 + static_cast<size_t>(payload[0] & 0x3F) * 4;
        if (payload.size() < hdr) return DecodeResult::kTruncated;
        MarkTunnel(out, common::v1::TUNNEL_TYPE_GENEVE, Be32(payload.data() + 4) >> 8);
        uint16_t type = Be16(payload.data() + 2);
        if (type == kEtherTeb) return DecodeEthernet(payload.subspan(hdr), depth + 1, out);
        return DecodeEthertype(type, payload.subspan(hdr), depth + 1, out);
      }
      t.protocol = net::IpProtocol::kUdp;
      t.src_port = sport;
      t.dst_port = dport;
      out->payload_wire_bytes = payload_wire;
      out->payload = payload;
      return DecodeResult::kOk;
    }
    case kProtoIcmp:
    case kProtoIcmpV6: {
      if (d.size() < 4) return DecodeResult::kTruncated;
      t.protocol = proto == kProtoIcmp ? net::IpProtocol::kIcmp : net::IpProtocol::kIcmpV6;
      t.src_port = 0;
      t.dst_port = 0;
      out->payload_wire_bytes = l4_wire_len >= 4 ? l4_wire_len - 4 : 0;
      out->payload = d.subspan(4, std::min<size_t>(d.size() - 4, out->payload_wire_bytes));
      return DecodeResult::kOk;
    }
    case kProtoIpip:
      if (depth >= config_.max_tunnel_depth) return DecodeResult::kTunnelTooDeep;
      MarkTunnel(out, common::v1::TUNNEL_TYPE_IPIP, 0);
      return DecodeIpv4(d, depth + 1, out);
    case kProtoIpv6InIp:
      if (depth >= config_.max_tunnel_depth) return DecodeResult::kTunnelTooDeep;
      MarkTunnel(out, common::v1::TUNNEL_TYPE_IPIP, 0);
      return DecodeIpv6(d, depth + 1, out);
    case kProtoGre:
      if (depth >= config_.max_tunnel_depth) return DecodeResult::kTunnelTooDeep;
      return DecodeGre(d, depth, out);
    default:
      return DecodeResult::kUnsupportedL4;
  }
}

DecodeResult PacketDecoder::DecodeGre(Bytes d, int depth, DecodedPacket* out) {
  if (d.size() < 4) return DecodeResult::kTruncated;
  uint16_t flags = Be16(d.data());
  uint16_t type = Be16(d.data() + 2);
  size_t off = 4;
  uint32_t key = 0;
  if (flags & 0x8000) off += 4;  // checksum + reserved
  if (flags & 0x2000) {          // key
    if (d.size() < off + 4) return DecodeResult::kTruncated;
    key = Be32(d.data() + off);
    off += 4;
  }
  bool has_seq = (flags & 0x1000) != 0;
  if (has_seq) off += 4;
  if ((flags & 0x0007) == 1) {  // enhanced GRE (PPTP): key field holds payload length + call id
    key &= 0xFFFF;
    if (flags & 0x0080) off += 4;  // acknowledgement number
  }
  if (d.size() < off) return DecodeResult::kTruncated;
  Bytes inner = d.subspan(off);
  if (type == kEtherErspan2 || type == kEtherErspan3) {
    uint32_t session = 0;
    if (type == kEtherErspan2 && !has_seq) {
      // ERSPAN type I: no ERSPAN header, the mirrored frame follows GRE directly.
    } else if (type == kEtherErspan2) {
      if (inner.size() < 8) return DecodeResult::kTruncated;
      session = Be16(inner.data() + 2) & 0x03FF;
      inner = inner.subspan(8);
    } else {
      if (inner.size() < 12) return DecodeResult::kTruncated;
      session = Be16(inner.data() + 2) & 0x03FF;
      bool has_platform_subheader = (inner[11] & 0x01) != 0;
      size_t hdr = has_platform_subheader ? 20 : 12;
      if (inner.size() < hdr) return DecodeResult::kTruncated;
      inner = inner.subspan(hdr);
    }
    MarkTunnel(out, common::v1::TUNNEL_TYPE_ERSPAN, session);
    return DecodeEthernet(inner, depth + 1, out);
  }
  MarkTunnel(out, common::v1::TUNNEL_TYPE_GRE, key);
  if (type == kEtherTeb) return DecodeEthernet(inner, depth + 1, out);
  return DecodeEthertype(type, inner, depth + 1, out);
}

DecodeResult PacketDecoder::AddFragment(const FragKey& key, uint32_t offset, bool more, Bytes data,
                                       uint8_t next_header, Bytes* whole,
                                       uint8_t* first_next_header) {
  // A fragment inside a datagram we just reassembled would overwrite the buffer in use.
  if (!reassembled_.empty() && data.data() >= reassembled_.data() &&
      data.data() < reassembled_.data() + reassembled_.size()) {
    return DecodeResult::kFragmentDropped;
  }
  uint32_t len = static_cast<uint32_t>(data.size());
  if (offset + len > 65535) return DecodeResult::kFragmentDropped;
  auto it = fragments_.find(key);
  if (it == fragments_.end()) {
    if (fragments_.size() >= config_.max_fragment_datagrams) return DecodeResult::kFragmentDropped;
    it = fragments_.emplace(key, FragDatagram{}).first;
    it->second.first_seen_ns = now_ns_;
  }
  FragDatagram& dg = it->second;
  bool overlaps = false;
  for (const auto& [b, e] : dg.ranges) overlaps |= offset < e && b < offset + len;
  // RFC 8200 / 5722: an IPv6 datagram with overlapping fragments is discarded whole. Fragments
  // past a known end, or too many of them, are an attack or garbage: drop the datagram too.
  if ((key.ipv6 && overlaps) || (dg.total_len != 0 && offset + len > dg.total_len) ||
      (!more && dg.total_len != 0 && offset + len != dg.total_len) ||
      dg.ranges.size() >= config_.max_fragments_per_datagram) {
    DropDatagram(it);
    return DecodeResult::kFragmentDropped;
  }
  size_t grow = dg.data.size() < offset + len ? offset + len - dg.data.size() : 0;
  if (fragment_bytes_ + grow > config_.max_fragment_bytes) {
    DropDatagram(it);
    return DecodeResult::kFragmentDropped;
  }
  if (grow != 0) {
    dg.data.resize(offset + len);
    fragment_bytes_ += grow;
  }
  std::memcpy(dg.data.data() + offset, data.data(), len);
  dg.ranges.emplace_back(offset, offset + len);
  if (offset == 0) {
    dg.have_first = true;
    dg.next_header = next_header;
  }
  if (!more) dg.total_len = offset + len;
  if (dg.total_len == 0 || !dg.have_first) return DecodeResult::kFragmentPending;
  std::sort(dg.ranges.begin(), dg.ranges.end());
  uint32_t covered = 0;
  for (const auto& [b, e] : dg.ranges) {
    if (b > covered) return DecodeResult::kFragmentPending;
    covered = std::max(covered, e);
  }
  if (covered < dg.total_len) return DecodeResult::kFragmentPending;
  reassembled_.assign(dg.data.begin(), dg.data.begin() + dg.total_len);
  ++datagrams_reassembled_;
  *first_next_header = dg.next_header;
  DropDatagram(it);
  *whole = Bytes(reassembled_.data(), reassembled_.size());
  return DecodeResult::kOk;
}

void PacketDecoder::DropDatagram(std::map<FragKey, FragDatagram>::iterator it) {
  fragment_bytes_ -= it->second.data.size();
  fragments_.erase(it);
}

void PacketDecoder::ExpireFragments(uint64_t now_ns) {
  for (auto it = fragments_.begin(); it != fragments_.end();) {
    if (now_ns > it->second.first_seen_ns + config_.fragment_timeout_ns) {
      auto next = std::next(it);
      DropDatagram(it);
      it = next;
    } else {
      ++it;
    }
  }
}

}  // namespace sonde::agent::flow
