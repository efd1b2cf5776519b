#!/usr/bin/env python3
"""Writes a large synthetic Ethernet/IPv4/TCP capture for the flow-tracking benchmark.

Many concurrent HTTP-like connections (handshake, request, several response segments, FIN
close), interleaved round-robin so the flow table holds `--concurrent` live flows at once.
Usage: make_capture.py OUT.pcap [--packets 3000000] [--concurrent 20000]
"""
import argparse
import struct


def ip_checksum(hdr):
    s = 0
    for i in range(0, len(hdr), 2):
        s += (hdr[i] << 8) | hdr[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frame(src, dst, sport, dport, seq, ack, flags, payload):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags,
                      65535, 0, 0) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst))
    struct.pack_into("!H", ip, 10, ip_checksum(ip))
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    return eth + bytes(ip) + tcp


REQ = b"GET /item HTTP/1.1\r\nHost: bench\r\nUser-Agent: sonde-bench\r\n\r\n"
RESP_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 2800\r\n\r\n"
BODY = b"x" * 1400
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def connection(i):
    """Yields the frames of connection number i (14 packets)."""
    client = bytes([10, 1 + (i >> 16) % 200, (i >> 8) & 255, i & 255])
    server = bytes([10, 250, (i % 16), 10])
    cport = 10000 + (i % 50000)
    sport = 80 if i % 3 else 8080
    c, s = 1000 + i, 50000 + i
    yield frame(client, server, cport, sport, c, 0, SYN, b"")
    yield frame(server, client, sport, cport, s, c + 1, SYN | ACK, b"")
    c += 1
    s += 1
    yield frame(client, server, cport, sport, c, s, ACK, b"")
    yield frame(client, server, cport, sport, c, s, ACK | PSH, REQ)
    c += len(REQ)
    yield frame(server, client, sport, cport, s, c, ACK, b"")
    for part in (RESP_HEAD, BODY, BODY):
        yield frame(server, client, sport, cport, s, c, ACK | PSH, part)
        s += len(part)
    yield frame(client, server, cport, sport, c, s, ACK, b"")
    yield frame(client, server, cport, sport, c, s, ACK | FIN, b"")
    c += 1
    yield frame(server, client, sport, cport, s, c, ACK, b"")
    yield frame(server, client, sport, cport, s, c, ACK | FIN, b"")
    s += 1
    yield frame(client, server, cport, sport, c, s, ACK, b"")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--packets", type=int, default=3_000_000)
    ap.add_argument("--concurrent", type=int, default=20_000)
    a = ap.parse_args()
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        active = [connection(i) for i in range(a.concurrent)]
        next_id = a.concurrent
        written = 0
        t_us = 1_700_000_000 * 1_000_000
        slot = 0
        out = []
        while written < a.packets:
            try:
                fr = next(active[slot])
            except StopIteration:
                active[slot] = connection(next_id)
                next_id += 1
                fr = next(active[slot])
            t_us += 2
            out.append(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(fr), len(fr)))
            out.append(fr)
            written += 1
            slot = (slot + 1) % len(active)
            if len(out) > 20000:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
    print(f"{a.out}: {written} packets, {next_id} connections, {a.concurrent} concurrent")


if __name__ == "__main__":
    main()
