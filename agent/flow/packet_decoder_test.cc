// PacketDecoder on crafted packets: every link type, extension headers, fragments and tunnels.
#include "agent/flow/packet_decoder.h"

#include <gtest/gtest.h>

#include "agent/flow/testing/packet_builder.h"

namespace sonde::agent::flow {
namespace {

using namespace testing;  // NOLINT: test helpers
using capture::LinkType;

DecodeResult DecodeBytes(PacketDecoder& dec, const Bytes& b, LinkType link, DecodedPacket* out,
                         uint64_t ts = 1'000'000'000) {
  capture::PacketView v;
  v.timestamp_ns = ts;
  v.data = b;
  v.wire_length = static_cast<uint32_t>(b.size());
  v.link_type = link;
  return dec.Decode(v, out);
}

TEST(PacketDecoderTest, EthernetIpv4Tcp) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes pkt = EthTcp4("10.0.0.1", "10.0.0.2",
                      {.sport = 1234, .dport = 80, .seq = 100, .ack = 7, .flags = 0x18,
                       .window = 512, .payload = "hello"});
  ASSERT_EQ(DecodeBytes(dec, pkt, LinkType::kEthernet, &p), DecodeResult::kOk);
  EXPECT_EQ(p.tuple.src_ip.ToString(), "10.0.0.1");
  EXPECT_EQ(p.tuple.dst_ip.ToString(), "10.0.0.2");
  EXPECT_EQ(p.tuple.src_port, 1234);
  EXPECT_EQ(p.tuple.dst_port, 80);
  EXPECT_EQ(p.tuple.protocol, net::IpProtocol::kTcp);
  EXPECT_EQ(p.tcp_seq, 100u);
  EXPECT_EQ(p.tcp_ack, 7u);
  EXPECT_EQ(p.tcp_flags, 0x18);
  EXPECT_EQ(p.tcp_window, 512);
  EXPECT_EQ(p.l3_bytes, 20u + 20u + 5u);
  EXPECT_EQ(p.payload_wire_bytes, 5u);
  EXPECT_EQ(std::string(p.payload.begin(), p.payload.end()), "hello");
  EXPECT_EQ(p.tunnel_type, common::v1::TUNNEL_TYPE_NONE);
}

TEST(PacketDecoderTest, EthernetPaddingIsNotPayload) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes pkt = EthTcp4("10.0.0.1", "10.0.0.2", {.payload = ""});
  pkt.resize(60, 0);  // minimum Ethernet frame
  ASSERT_EQ(DecodeBytes(dec, pkt, LinkType::kEthernet, &p), DecodeResult::kOk);
  EXPECT_EQ(p.payload_wire_bytes, 0u);
  EXPECT_TRUE(p.payload.empty());
}

TEST(PacketDecoderTest, SnapLengthTruncatedPayload) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes pkt = EthTcp4("10.0.0.1", "10.0.0.2", {.payload = "0123456789"});
  pkt.resize(pkt.size() - 6);
  ASSERT_EQ(DecodeBytes(dec, pkt, LinkType::kEthernet, &p), DecodeResult::kOk);
  EXPECT_EQ(p.payload_wire_bytes, 10u);
  EXPECT_EQ(p.payload.size(), 4u);
}

TEST(PacketDecoderTest, TruncatedHeadersAreReported) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes pkt = EthTcp4("10.0.0.1", "10.0.0.2", {});
  for (size_t n : {0, 5, 13, 14, 20, 33, 34, 40, 53}) {
    Bytes cut(pkt.begin(), pkt.begin() + static_cast<long>(n));
    EXPECT_EQ(DecodeBytes(dec, cut, LinkType::kEthernet, &p), DecodeResult::kTruncated) << n;
  }
}

TEST(PacketDecoderTest, MalformedIpv4) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes pkt = EthTcp4("10.0.0.1", "10.0.0.2", {});
  pkt[14] = 0x43;  // IHL 3
  EXPECT_EQ(DecodeBytes(dec, pkt, LinkType::kEthernet, &p), DecodeResult::kMalformed);
}

TEST(PacketDecoderTest, VlanAndQinQ) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes ip = Ipv4("192.168.1.1", "192.168.1.2", 6, Tcp({.sport = 5, .dport = 6}));
  Bytes qinq = Ethernet(0x88A8, Vlan(100, 0x8100, Vlan(200, 0x0800, ip)));
  ASSERT_EQ(DecodeBytes(dec, qinq, LinkType::kEthernet, &p), DecodeResult::kOk);
  EXPECT_EQ(p.tuple.src_port, 5);
  EXPECT_EQ(p.tuple.dst_ip.ToString(), "192.168.1.2");
}

TEST(PacketDecoderTest, LinkTypes) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes ip = Ipv4("1.2.3.4", "5.6.7.8", 17, Udp(53, 4000, "x"));
  ASSERT_EQ(DecodeBytes(dec, ip, LinkType::kRaw, &p), DecodeResult::kOk);
  EXPECT_EQ(p.tuple.protocol, net::IpProtocol::kUdp);

  Bytes sll(16, 0);
  sll[14] = 0x08;
  ASSERT_EQ(DecodeBytes(dec, Concat(sll, ip), LinkType::kLinuxSll, &p), DecodeResult::kOk);
  EXPECT_EQ(p.tuple.src_port, 53);

  Bytes sll2(20, 0);
  sll2[0] = 0x08;
  ASSERT_EQ(DecodeBytes(dec, Concat(sll2, ip), LinkType::kLinuxSll2, &p), DecodeResult::kOk);

  Bytes null_le = {2, 0, 0, 0};
  ASSERT_EQ(DecodeBytes(dec, Concat(null_le, ip), LinkType::kNull, &p), DecodeResult::kOk);
  Bytes null_be = {0, 0, 0, 2};
  ASSERT_EQ(DecodeBytes(dec, Concat(null_be, ip), LinkType::kNull, &p), DecodeResult::kOk);
  Bytes ip6 = Ipv6("::1", "::1", 6, Tcp({.sport = 50051, .dport = 4000}));
  Bytes null6 = {30, 0, 0, 0};  // AF_INET6 on macOS
  ASSERT_EQ(DecodeBytes(dec, Concat(null6, ip6), LinkType::kNull, &p), DecodeResult::kOk);
  EXPECT_FALSE(p.is_ipv4);

  Bytes arp = Ethernet(0x0806, Bytes(28, 0));
  EXPECT_EQ(DecodeBytes(dec, arp, LinkType::kEthernet, &p), DecodeResult::kUnsupportedLink);
}

TEST(PacketDecoderTest, Ipv6ExtensionHeaders) {
  PacketDecoder dec;
  DecodedPacket p;
  // Hop-by-hop (8 bytes) then destination options (16 bytes) then TCP.
  Bytes hbh = {60, 0, 1, 4, 0, 0, 0, 0};
  Bytes dst = {6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  Bytes l4 = Concat(Concat(hbh, dst), Tcp({.sport = 443, .dport = 50000, .payload = "abc"}));
  Bytes pkt = Ethernet(0x86DD, Ipv6("2001:db8::1", "2001:db8::2", 0, l4));
  ASSERT_EQ(DecodeBytes(dec, pkt, LinkType::kEthernet, &p), DecodeResult::kOk);
  EXPECT_FALSE(p.is_ipv4);
  EXPECT_EQ(p.tuple.src_ip.ToString(), "2001:db8::1");
  EXPECT_EQ(p.tuple.src_port, 443);
  EXPECT_EQ(p.payload_wire_bytes, 3u);
  EXPECT_EQ(p.l3_bytes, 40u + l4.size());
}

TEST(PacketDecoderTest, Ipv4FragmentsOutOfOrder) {
  PacketDecoder dec;
  DecodedPacket p;
  std::string body(40, 'z');
  Bytes udp = Udp(1000, 2000, body);  // 48 bytes: fragments of 24 + 24
  Bytes first(udp.begin(), udp.begin() + 24), second(udp.begin() + 24, udp.end());
  Bytes f1 = Ethernet(0x0800, Ipv4("10.1.1.1", "10.1.1.2", 17, first, 77, 0x2000));
  Bytes f2 = Ethernet(0x0800, Ipv4("10.1.1.1", "10.1.1.2", 17, second, 77, 3));  // offset 24
  EXPECT_EQ(DecodeBytes(dec, f2, LinkType::kEthernet, &p), DecodeResult::kFragmentPending);
  EXPECT_EQ(dec.pending_fragment_datagrams(), 1u);
  ASSERT_EQ(DecodeBytes(dec, f1, LinkType::kEthernet, &p), DecodeResult::kOk);
  EXPECT_EQ(dec.pending_fragment_datagrams(), 0u);
  EXPECT_EQ(p.tuple.src_port, 1000);
  EXPECT_EQ(p.tuple.dst_port, 2000);
  EXPECT_EQ(p.payload_wire_bytes, 40u);
  EXPECT_EQ(std::string(p.payload.begin(), p.payload.end()), body);
  EXPECT_EQ(p.l3_bytes, 20u + 48u);
}

TEST(PacketDecoderTest, FragmentsExpire) {
  PacketDecoderConfig cfg;
  cfg.fragment_timeout_ns = 1'000'000'000;
  PacketDecoder dec(cfg);
  DecodedPacket p;
  Bytes frag = Ethernet(0x0800, Ipv4("10.1.1.1", "10.1.1.2", 17, Bytes(16, 1), 9, 0x2000));
  EXPECT_EQ(DecodeBytes(dec, frag, LinkType::kEthernet, &p, 1'000'000'000),
            DecodeResult::kFragmentPending);
  Bytes other = EthTcp4("10.0.0.1", "10.0.0.2", {});
  EXPECT_EQ(DecodeBytes(dec, other, LinkType::kEthernet, &p, 5'000'000'000), DecodeResult::kOk);
  EXPECT_EQ(dec.pending_fragment_datagrams(), 0u);
}

// IPv6 fragment header: next header, reserved, offset (8-byte units) << 3 | M, identification.
Bytes Frag6(uint8_t next, uint32_t offset_bytes, bool more, uint32_t id) {
  uint16_t off = static_cast<uint16_t>(offset_bytes | (more ? 1 : 0));
  return {next, 0, static_cast<uint8_t>(off >> 8), static_cast<uint8_t>(off),
          static_cast<uint8_t>(id >> 24), static_cast<uint8_t>(id >> 16),
          static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id)};
}

Bytes Ipv6Fragment(const Bytes& l4, uint32_t begin, uint32_t end, bool more, uint32_t id,
                   uint8_t next = 17) {
  Bytes part(l4.begin() + begin, l4.begin() + end);
  return Ethernet(0x86DD, Ipv6("2001:db8::1", "2001:db8::2", 44,
                               Concat(Frag6(next, begin, more, id), part)));
}

TEST(PacketDecoderTest, Ipv6FragmentsReassembleInAnyOrder) {
  PacketDecoder dec;
  DecodedPacket p;
  std::string body(100, 'q');
  Bytes udp = Udp(5353, 53, body);  // 108 bytes: 48 + 48 + 12
  Bytes f1 = Ipv6Fragment(udp, 0, 48, true, 0xABCDEF01);
  Bytes f2 = Ipv6Fragment(udp, 48, 96, true, 0xABCDEF01);
  Bytes f3 = Ipv6Fragment(udp, 96, 108, false, 0xABCDEF01);
  EXPECT_EQ(DecodeBytes(dec, f3, LinkType::kEthernet, &p), DecodeResult::kFragmentPending);
  EXPECT_EQ(DecodeBytes(dec, f1, LinkType::kEthernet, &p), DecodeResult::kFragmentPending);
  EXPECT_EQ(dec.pending_fragment_datagrams(), 1u);
  EXPECT_EQ(dec.pending_fragment_bytes(), 108u);
  ASSERT_EQ(DecodeBytes(dec, f2, LinkType::kEthernet, &p), DecodeResult::kOk);
  EXPECT_EQ(dec.pending_fragment_datagrams(), 0u);
  EXPECT_EQ(dec.pending_fragment_bytes(), 0u);
  EXPECT_FALSE(p.is_ipv4);
  EXPECT_EQ(p.tuple.protocol, net::IpProtocol::kUdp);
  EXPECT_EQ(p.tuple.src_port, 5353);
  EXPECT_EQ(p.tuple.dst_port, 53);
  EXPECT_EQ(std::string(p.payload.begin(), p.payload.end()), body);
  EXPECT_EQ(p.payload_wire_bytes, 100u);
  EXPECT_EQ(p.l3_bytes, 40u + 108u);  // the reassembled datagram, fragment header dropped
}

TEST(PacketDecoderTest, Ipv6FragmentAfterExtensionHeaderAndTcpInside) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes tcp = Tcp({.sport = 443, .dport = 50000, .seq = 9, .payload = "0123456789abcdef0123"});
  Bytes hbh = {44, 0, 1, 4, 0, 0, 0, 0};  // hop-by-hop, then the fragment header
  auto frag = [&](uint32_t b, uint32_t e, bool more) {
    Bytes part(tcp.begin() + b, tcp.begin() + e);
    return Ethernet(0x86DD, Ipv6("2001:db8::1", "2001:db8::2", 0,
                                 Concat(hbh, Concat(Frag6(6, b, more, 7), part))));
  };
  EXPECT_EQ(DecodeBytes(dec, frag(0, 16, true), LinkType::kEthernet, &p),
            DecodeResult::kFragmentPending);
  ASSERT_EQ(DecodeBytes(dec, frag(16, tcp.size(), false), LinkType::kEthernet, &p),
            DecodeResult::kOk);
  EXPECT_EQ(p.tuple.protocol, net::IpProtocol::kTcp);
  EXPECT_EQ(p.tcp_seq, 9u);
  EXPECT_EQ(std::string(p.payload.begin(), p.payload.end()), "0123456789abcdef0123");
  EXPECT_EQ(p.l3_bytes, 40u + 8u + tcp.size());
}

TEST(PacketDecoderTest, Ipv6OverlappingFragmentsDropTheDatagram) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes udp = Udp(1, 2, std::string(40, 'o'));  // 48 bytes
  EXPECT_EQ(DecodeBytes(dec, Ipv6Fragment(udp, 0, 24, true, 5), LinkType::kEthernet, &p),
            DecodeResult::kFragmentPending);
  EXPECT_EQ(DecodeBytes(dec, Ipv6Fragment(udp, 16, 48, false, 5), LinkType::kEthernet, &p),
            DecodeResult::kFragmentDropped);
  EXPECT_EQ(dec.pending_fragment_datagrams(), 0u);
  EXPECT_EQ(dec.pending_fragment_bytes(), 0u);
  // A different id is a different datagram; atomic fragments decode directly.
  Bytes atomic = Ethernet(0x86DD, Ipv6("2001:db8::1", "2001:db8::2", 44,
                                       Concat(Frag6(17, 0, false, 6), udp)));
  ASSERT_EQ(DecodeBytes(dec, atomic, LinkType::kEthernet, &p), DecodeResult::kOk);
  EXPECT_EQ(p.payload_wire_bytes, 40u);
}

TEST(PacketDecoderTest, FragmentReassemblyIsBounded) {
  PacketDecoderConfig cfg;
  cfg.max_fragment_datagrams = 2;
  cfg.max_fragments_per_datagram = 3;
  cfg.max_fragment_bytes = 200;
  PacketDecoder dec(cfg);
  DecodedPacket p;
  Bytes big = Udp(1, 2, std::string(392, 'b'));  // 400 bytes
  // Datagram table bound.
  EXPECT_EQ(DecodeBytes(dec, Ipv6Fragment(big, 0, 8, true, 1), LinkType::kEthernet, &p),
            DecodeResult::kFragmentPending);
  EXPECT_EQ(DecodeBytes(dec, Ipv6Fragment(big, 0, 8, true, 2), LinkType::kEthernet, &p),
            DecodeResult::kFragmentPending);
  EXPECT_EQ(DecodeBytes(dec, Ipv6Fragment(big, 0, 8, true, 3), LinkType::kEthernet, &p),
            DecodeResult::kFragmentDropped);
  // Fragments per datagram bound (id 1 already holds one).
  EXPECT_EQ(DecodeBytes(dec, Ipv6Fragment(big, 8, 16, true, 1), LinkType::kEthernet, &p),
            DecodeResult::kFragmentPending);
  EXPECT_EQ(DecodeBytes(dec, Ipv6Fragment(big, 16, 24, true, 1), LinkType::kEthernet, &p),
            DecodeResult::kFragmentPending);
  EXPECT_EQ(DecodeBytes(dec, Ipv6Fragment(big, 24, 32, true, 1), LinkType::kEthernet, &p),
            DecodeResult::kFragmentDropped);
  EXPECT_EQ(dec.pending_fragment_datagrams(), 1u);
  // Byte budget: a fragment reaching past 200 buffered bytes drops its datagram.
  EXPECT_EQ(DecodeBytes(dec, Ipv6Fragment(big, 300, 400, false, 2), LinkType::kEthernet, &p),
            DecodeResult::kFragmentDropped);
  EXPECT_EQ(dec.pending_fragment_datagrams(), 0u);
  EXPECT_EQ(dec.pending_fragment_bytes(), 0u);
  // A truncated fragment (snap length) cannot be reassembled.
  Bytes cut = Ipv6Fragment(big, 0, 64, true, 9);
  cut.resize(cut.size() - 10);
  EXPECT_EQ(DecodeBytes(dec, cut, LinkType::kEthernet, &p), DecodeResult::kFragmentDropped);
}

TEST(PacketDecoderTest, Ipv6FragmentsExpire) {
  PacketDecoderConfig cfg;
  cfg.fragment_timeout_ns = 1'000'000'000;
  PacketDecoder dec(cfg);
  DecodedPacket p;
  Bytes udp = Udp(1, 2, std::string(40, 'e'));
  EXPECT_EQ(DecodeBytes(dec, Ipv6Fragment(udp, 0, 24, true, 5), LinkType::kEthernet, &p,
                        1'000'000'000),
            DecodeResult::kFragmentPending);
  Bytes other = EthTcp4("10.0.0.1", "10.0.0.2", {});
  EXPECT_EQ(DecodeBytes(dec, other, LinkType::kEthernet, &p, 5'000'000'000), DecodeResult::kOk);
  EXPECT_EQ(dec.pending_fragment_datagrams(), 0u);
  EXPECT_EQ(dec.pending_fragment_bytes(), 0u);
  // The late second half alone is pending again, not a datagram.
  EXPECT_EQ(DecodeBytes(dec, Ipv6Fragment(udp, 24, 48, false, 5), LinkType::kEthernet, &p,
                        5'000'000'000),
            DecodeResult::kFragmentPending);
}

Bytes InnerFrame() {
  return EthTcp4("172.16.0.1", "172.16.0.2", {.sport = 33000, .dport = 8080, .payload = "GET"});
}

void ExpectInner(const DecodedPacket& p) {
  EXPECT_EQ(p.tuple.src_ip.ToString(), "172.16.0.1");
  EXPECT_EQ(p.tuple.dst_port, 8080);
  EXPECT_EQ(p.payload_wire_bytes, 3u);
}

TEST(PacketDecoderTest, Vxlan) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes vx = {0x08, 0, 0, 0, 0, 0x12, 0x34, 0};
  Bytes pkt = Ethernet(0x0800, Ipv4("10.0.0.1", "10.0.0.2", 17, Udp(5555, 4789, Concat(vx, InnerFrame()))));
  ASSERT_EQ(DecodeBytes(dec, pkt, LinkType::kEthernet, &p), DecodeResult::kOk);
  ExpectInner(p);
  EXPECT_EQ(p.tunnel_type, common::v1::TUNNEL_TYPE_VXLAN);
  EXPECT_EQ(p.tunnel_id, 0x1234u);
}

TEST(PacketDecoderTest, VxlanGpeWithNsh) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes gpe = {0x0c, 0, 0, 4, 0, 0, 7, 0};
  Bytes nsh = {0x0f, 0xc2, 0x02, 0x01, 0, 0, 0, 0};  // length 2 words, next = IPv4
  Bytes inner_ip = Ipv4("172.16.0.1", "172.16.0.2", 6, Tcp({.sport = 1, .dport = 8080, .payload = "GET"}));
  Bytes pkt = Ethernet(0x0800, Ipv4("10.0.0.1", "10.0.0.2", 17,
                                    Udp(1849, 4790, Concat(Concat(gpe, nsh), inner_ip))));
  ASSERT_EQ(DecodeBytes(dec, pkt, LinkType::kEthernet, &p), DecodeResult::kOk);
  ExpectInner(p);
  EXPECT_EQ(p.tunnel_type, common::v1::TUNNEL_TYPE_VXLAN);
  EXPECT_EQ(p.tunnel_id, 7u);
}

TEST(PacketDecoderTest, Geneve) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes gen = {0x01, 0, 0x65, 0x58, 0, 0, 0x2a, 0, 1, 2, 3, 4};  // one 4-byte option
  Bytes pkt = Ethernet(0x0800, Ipv4("10.0.0.1", "10.0.0.2", 17, Udp(5555, 6081, Concat(gen, InnerFrame()))));
  ASSERT_EQ(DecodeBytes(dec, pkt, LinkType::kEthernet, &p), DecodeResult::kOk);
  ExpectInner(p);
  EXPECT_EQ(p.tunnel_type, common::v1::TUNNEL_TYPE_GENEVE);
  EXPECT_EQ(p.tunnel_id, 42u);
}

TEST(PacketDecoderTest, GreWithKeyAndTeb) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes gre = {0x20, 0, 0x65, 0x58, 0, 0, 0x01, 0x02};
  Bytes pkt = Ethernet(0x0800, Ipv4("10.0.0.1", "10.0.0.2", 47, Concat(gre, InnerFrame())));
  ASSERT_EQ(DecodeBytes(dec, pkt, LinkType::kEthernet, &p), DecodeResult::kOk);
  ExpectInner(p);
  EXPECT_EQ(p.tunnel_type, common::v1::TUNNEL_TYPE_GRE);
  EXPECT_EQ(p.tunnel_id, 0x102u);
}

TEST(PacketDecoderTest, ErspanTypeTwo) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes gre = {0x10, 0, 0x88, 0xBE, 0, 0, 0, 1};  // sequence present => type II
  Bytes erspan = {0x10, 0x00, 0x00, 0x05, 0, 0, 0, 0};
  Bytes pkt = Ethernet(0x0800, Ipv4("10.0.0.1", "10.0.0.2", 47, Concat(Concat(gre, erspan), InnerFrame())));
  ASSERT_EQ(DecodeBytes(dec, pkt, LinkType::kEthernet, &p), DecodeResult::kOk);
  ExpectInner(p);
  EXPECT_EQ(p.tunnel_type, common::v1::TUNNEL_TYPE_ERSPAN);
  EXPECT_EQ(p.tunnel_id, 5u);
}

TEST(PacketDecoderTest, IpInIp) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes inner = Ipv4("172.16.0.1", "172.16.0.2", 6, Tcp({.sport = 1, .dport = 8080, .payload = "GET"}));
  Bytes pkt = Ethernet(0x0800, Ipv4("10.0.0.1", "10.0.0.2", 4, inner));
  ASSERT_EQ(DecodeBytes(dec, pkt, LinkType::kEthernet, &p), DecodeResult::kOk);
  ExpectInner(p);
  EXPECT_EQ(p.tunnel_type, common::v1::TUNNEL_TYPE_IPIP);
}

TEST(PacketDecoderTest, TunnelDepthIsBounded) {
  PacketDecoder dec;
  DecodedPacket p;
  Bytes ip = Ipv4("172.16.0.1", "172.16.0.2", 6, Tcp({}));
  for (int i = 0; i < 5; ++i) ip = Ipv4("10.0.0.1", "10.0.0.2", 4, ip);
  EXPECT_EQ(DecodeBytes(dec, ip, LinkType::kRaw, &p), DecodeResult::kTunnelTooDeep);
}

}  // namespace
}  // namespace sonde::agent::flow
