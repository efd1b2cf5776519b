#!/usr/bin/env python3
"""Writes seeds for record_batch_wire_fuzzer (serialized RecordBatch) and agent_frame_reader_fuzzer
(serialized AgentFrame). The protobuf wire format is encoded here by hand from the field numbers of
proto/sonde/{agent,control}/v1/*.proto. Usage: server/storage/testdata/make_fuzz_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def f_varint(n, v):
    return varint(n << 3) + varint(v)


def f_bytes(n, b):
    if isinstance(b, str):
        b = b.encode()
    return varint((n << 3) | 2) + varint(len(b)) + b


def l7(time, ip0, ip1, pid0, endpoint, v6=False):
    m = f_varint(1, time) + f_varint(2, time * 1000000) + f_varint(4, 1) + f_varint(5, 77)
    if v6:
        m += f_bytes(9, bytes(range(16))) + f_bytes(10, bytes(range(16, 32)))
    else:
        m += f_varint(6, 1) + f_varint(7, ip0) + f_varint(8, ip1)
    m += f_varint(11, 40000) + f_varint(12, 8080) + f_varint(13, 6) + f_varint(14, 1)
    m += f_bytes(15, "1.1") + f_bytes(16, "GET") + f_bytes(17, "cart.shop.svc") + f_bytes(19, endpoint)
    m += f_varint(21, 1) + f_varint(22, 200) + f_varint(25, 1234) + f_varint(27, 512)
    m += f_bytes(28, "okhttp/4.9.3") + f_varint(36, pid0) + f_bytes(38, "java")
    return m


def l4(time, ip0, ip1):
    return (f_varint(1, time) + f_varint(6, 1) + f_varint(7, ip0) + f_varint(8, ip1) + f_varint(12, 443) +
            f_varint(13, 6) + f_varint(22, 10) + f_varint(24, 4096) + f_varint(45, 99) + f_bytes(47, "nginx"))


def network(time, g):
    return f_varint(1, time) + f_varint(2, 1) + f_varint(3, 0x0A000001) + f_varint(4, 0x0A000002) + \
        f_varint(9, 3) + f_varint(27, g)


def application(time, g):
    return f_varint(1, time) + f_bytes(6, bytes(16)) + f_bytes(11, "GET /api") + f_varint(12, 5) + f_varint(20, g)


def process(pid, name):
    return f_varint(1, pid) + f_varint(2, 1) + f_bytes(3, name) + f_bytes(4, name + " --serve")


def batches():
    t = 1700000000
    yield "l7_v4", f_bytes(1, l7(t, 0x0A000001, 0x0A000102, 1001, "/api/v1/cart/{id}")) * 3
    yield "l7_v6", f_bytes(1, l7(t, 0, 0, 7, "/h\u00e9llo", v6=True))
    yield "mixed", (f_bytes(1, l7(t, 1, 2, 3, "/a")) + f_bytes(2, l4(t, 1, 2)) + f_bytes(3, network(t, 1)) +
                    f_bytes(4, application(t, 60)) + f_bytes(5, process(1001, "java")) +
                    f_varint(8191, 1))
    yield "group", f_bytes(1, l7(t, 1, 2, 3, "/g") + varint((100 << 3) | 3) + f_varint(1, 5) +
                           varint((100 << 3) | 4))


def frame_of(records, seq):
    return f_bytes(3, f_varint(1, seq) + f_bytes(2, records))


def write(dirname, name, data):
    os.makedirs(dirname, exist_ok=True)
    with open(os.path.join(dirname, name), "wb") as f:
        f.write(data)


def main():
    rb_dir = os.path.join(HERE, "record_batch_seeds")
    af_dir = os.path.join(ROOT, "ingest", "testdata", "agent_frame_seeds")
    for i, (name, rb) in enumerate(batches()):
        write(rb_dir, name, rb)
        write(af_dir, "batch_" + name, frame_of(rb, i + 1))
    rb = dict(batches())
    write(af_dir, "batch_in_two_pieces", frame_of(rb["l7_v4"], 5) + frame_of(rb["mixed"], 6))
    host = f_bytes(1, "node-1") + f_bytes(4, f_bytes(1, "eth0") + f_bytes(3, "10.0.0.1/24"))
    write(af_dir, "register", f_bytes(1, f_varint(1, 1) + f_bytes(2, "0.1") + f_bytes(3, "node-1") +
                                      f_bytes(4, "boot") + f_bytes(5, host)))
    write(af_dir, "heartbeat", f_bytes(2, f_varint(1, 1700000000000000) + f_varint(2, 100)))
    write(af_dir, "register_then_batch", f_bytes(1, f_varint(1, 1)) + frame_of(rb["mixed"], 9))


if __name__ == "__main__":
    main()
