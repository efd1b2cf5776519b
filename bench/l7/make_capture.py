#!/usr/bin/env python3
"""Large L7 benchmark capture from one of our recorded protocol captures (a template).

Every connection of the template is replayed COPIES times; copy k comes from one of CLIENTS client
addresses (10.0.x.y in place of the template's client) with its own client ports, sequence/ack
numbers shifted by a per-copy offset,
and WINDOW copies run interleaved packet by packet, so the flow table holds many live connections
like a busy server would. Only the client side is rewritten: server address and port stay, so
tshark needs the same decode-as as for the template. Output: classic pcap (microsecond
timestamps, 1 us apart). Not committed; written to /tmp by bench/l7/run.sh.

usage: make_capture.py TEMPLATE.pcap OUT.pcap --server-port P [--packets N] [--window W]
"""
import argparse
import struct
import sys


def read_pcap(path):
    data = open(path, 'rb').read()
    magic = struct.unpack('<I', data[:4])[0]
    if magic in (0xa1b2c3d4, 0xa1b23c4d):
        endian = '<'
    elif magic in (0xd4c3b2a1, 0x4d3cb2a1):
        endian = '>'
    else:
        sys.exit(f'{path}: not a classic pcap (convert pcapng with editcap -F pcap)')
    linktype = struct.unpack(endian + 'I', data[20:24])[0]
    packets, off = [], 24
    while off + 16 <= len(data):
        _, _, caplen, _ = struct.unpack(endian + 'IIII', data[off:off + 16])
        packets.append(data[off + 16:off + 16 + caplen])
        off += 16 + caplen
    return linktype, packets


def l3_offset(linktype, frame):
    if linktype == 1:  # Ethernet (with one optional VLAN tag)
        off, ethertype = 14, struct.unpack('>H', frame[12:14])[0]
        if ethertype == 0x8100:
            off, ethertype = 18, struct.unpack('>H', frame[16:18])[0]
        return off if ethertype == 0x0800 else None
    if linktype == 113:  # Linux cooked v1
        return 16 if struct.unpack('>H', frame[14:16])[0] == 0x0800 else None
    if linktype == 276:  # Linux cooked v2
        return 20 if struct.unpack('>H', frame[0:2])[0] == 0x0800 else None
    sys.exit(f'unsupported link type {linktype}')


class Template:
    """The template's IPv4 TCP/UDP packets with the offsets needed to rewrite them."""

    def __init__(self, linktype, frames, server_port):
        self.packets = []  # (frame, ip_off, l4_off, proto, from_client, connection index)
        self.conns = {}  # template client port -> connection index
        for f in frames:
            ip = l3_offset(linktype, f)
            if ip is None or len(f) < ip + 20:
                continue
            ihl = (f[ip] & 0x0f) * 4
            proto = f[ip + 9]
            l4 = ip + ihl
            if proto not in (6, 17) or len(f) < l4 + 8:
                continue
            sport, dport = struct.unpack('>HH', f[l4:l4 + 4])
            if server_port not in (sport, dport):
                continue
            client_port = sport if dport == server_port else dport
            conn = self.conns.setdefault(client_port, len(self.conns))
            self.packets.append((bytes(f), ip, l4, proto, dport == server_port, conn))
        if not self.packets:
            sys.exit('no packets to or from the server port in the template')

    def keep_alive(self, repeats):
        """Turns the template into ONE long-lived connection (service-to-service traffic): the
        first connection's handshake, then the data packets of every template connection
        `repeats` times over, then the last connection's teardown. Sequence and ack numbers are
        rewritten to continue across the joined exchanges. Needs TCP with handshakes."""
        by_conn = {}
        for p in self.packets:
            by_conn.setdefault(p[5], []).append(p)
        isn = {}  # (conn, from_client) -> sequence number of the first payload byte
        for conn, pkts in by_conn.items():
            for frame, ip, l4, proto, from_client, _ in pkts:
                if proto != 6:
                    sys.exit('--keep-alive needs a TCP template')
                flags = frame[l4 + 13]
                if flags & 0x02:  # SYN or SYN-ACK
                    isn[(conn, from_client)] = (struct.unpack('>I', frame[l4 + 4:l4 + 8])[0] + 1) & 0xffffffff
            if (conn, True) not in isn or (conn, False) not in isn:
                sys.exit('--keep-alive needs every template connection to start with a handshake')

        def payload_len(frame, ip, l4):
            total = struct.unpack('>H', frame[ip + 2:ip + 4])[0]
            return total - (l4 - ip) - (frame[l4 + 12] >> 4) * 4

        def rewrite(p, conn, offset):
            frame, ip, l4, proto, from_client, _ = p
            b = bytearray(frame)
            seq, ack = struct.unpack('>II', b[l4 + 4:l4 + 12])
            seq = (isn[(0, from_client)] + offset[from_client] + ((seq - isn[(conn, from_client)]) & 0xffffffff)) & 0xffffffff
            if b[l4 + 13] & 0x10:
                ack = (isn[(0, not from_client)] + offset[not from_client] + ((ack - isn[(conn, not from_client)]) & 0xffffffff)) & 0xffffffff
            struct.pack_into('>II', b, l4 + 4, seq, ack)
            return (bytes(b), ip, l4, proto, from_client, 0)

        conns = sorted(by_conn)
        out = []
        first = by_conn[conns[0]]
        for p in first:  # handshake: up to the first payload packet
            if payload_len(p[0], p[1], p[2]) > 0:
                break
            out.append(p)
        offset = {True: 0, False: 0}
        last_tail = []
        for _ in range(repeats):
            for conn in conns:
                sent = {True: 0, False: 0}
                for p in by_conn[conn]:
                    n = payload_len(p[0], p[1], p[2])
                    if n > 0:
                        out.append(rewrite(p, conn, offset))
                        rel = (struct.unpack('>I', p[0][p[2] + 4:p[2] + 8])[0] - isn[(conn, p[4])]) & 0xffffffff
                        sent[p[4]] = max(sent[p[4]], rel + n)
                last_tail = [(p, conn, dict(offset)) for p in by_conn[conn]
                             if payload_len(p[0], p[1], p[2]) == 0 and p[0][p[2] + 13] & 0x05]
                offset = {d: offset[d] + sent[d] for d in offset}
        for p, conn, off in last_tail:  # FIN / RST of the last exchange, after all the data
            out.append(rewrite(p, conn, off))
        self.packets = out
        self.conns = {0: 0}

    def copy(self, k, clients):
        """The template's packets for copy k, rewritten: client k % clients, and ports that no
        other copy from that client uses."""
        c = k % clients
        client_ip = struct.pack('>BBBB', 10, 0, (c >> 8) & 0xff, c & 0xff)
        round_ = k // clients
        shift = (k * 2654435761) & 0xffffffff
        out = []
        for frame, ip, l4, proto, from_client, conn in self.packets:
            b = bytearray(frame)
            port = 1024 + (round_ * len(self.conns) + conn) % 64000
            struct.pack_into('>H', b, l4 if from_client else l4 + 2, port)
            addr = ip + 12 if from_client else ip + 16
            b[addr:addr + 4] = client_ip
            struct.pack_into('>H', b, ip + 10, 0)
            struct.pack_into('>H', b, ip + 10, checksum(bytes(b[ip:ip + (b[ip] & 0x0f) * 4])))
            if proto == 6:
                seq, ack = struct.unpack('>II', b[l4 + 4:l4 + 12])
                if from_client:
                    seq = (seq + shift) & 0xffffffff
                elif b[l4 + 13] & 0x10:
                    ack = (ack + shift) & 0xffffffff
                struct.pack_into('>II', b, l4 + 4, seq, ack)
                struct.pack_into('>H', b, l4 + 16, 0)  # checksum not recomputed (offload-like)
            else:
                struct.pack_into('>H', b, l4 + 6, 0)  # UDP: no checksum
            out.append(bytes(b))
        return out


def checksum(header):
    s = sum(struct.unpack('>%dH' % (len(header) // 2), header))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('template')
    ap.add_argument('out')
    ap.add_argument('--server-port', type=int, required=True)
    ap.add_argument('--packets', type=int, default=2_000_000)
    ap.add_argument('--window', type=int, default=256, help='copies interleaved at once')
    ap.add_argument('--clients', type=int, default=4096, help='distinct client addresses')
    ap.add_argument('--keep-alive', type=int, default=0, metavar='R',
                    help='one long connection per copy carrying the template exchanges R times')
    a = ap.parse_args()
    linktype, frames = read_pcap(a.template)
    t = Template(linktype, frames, a.server_port)
    if a.keep_alive > 0:
        t.keep_alive(a.keep_alive)
    copies = max(1, a.packets // len(t.packets))
    ts_us = 1_700_000_000 * 1_000_000
    written = 0
    with open(a.out, 'wb') as out:
        out.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, linktype))
        for base in range(0, copies, a.window):
            group = [t.copy(k, a.clients) for k in range(base, min(copies, base + a.window))]
            for i in range(len(t.packets)):
                for pkts in group:
                    p = pkts[i]
                    out.write(struct.pack('<IIII', ts_us // 1_000_000, ts_us % 1_000_000, len(p), len(p)))
                    out.write(p)
                    ts_us += 1
                    written += 1
    print(f'{a.out}: {written} packets, {copies} copies of {len(t.packets)} template packets',
          file=sys.stderr)


if __name__ == '__main__':
    main()
