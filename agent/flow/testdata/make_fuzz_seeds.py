#!/usr/bin/env python3
"""Builds packet_decoder_fuzzer seeds from the recorded captures in this folder.

Each seed is a sequence of frames: one link-type selector byte (0 = Ethernet) then the frame,
frames separated by b"SNDE". Usage: agent/flow/testdata/make_fuzz_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    pos = 24
    while pos + 16 <= len(data):
        _, _, caplen, _ = struct.unpack(endian + "IIII", data[pos:pos + 16])
        yield data[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen


def main():
    out = os.path.join(HERE, "fuzz_seeds")
    os.makedirs(out, exist_ok=True)
    for name in ("http_loopback.pcap", "http_snaplen96.pcap", "refused.pcap"):
        fr = [f[:400] for f in frames(os.path.join(HERE, name))][:12]
        seed = b"SNDE".join(b"\x00" + f for f in fr)
        with open(os.path.join(out, name.replace(".pcap", ".seed")), "wb") as f:
            f.write(seed)
        # Single frames too: the decoder alone.
        for i, f in enumerate(fr[:3]):
            with open(os.path.join(out, "%s_%d.seed" % (name.replace(".pcap", ""), i)), "wb") as g:
                g.write(b"\x00" + f)


if __name__ == "__main__":
    main()
