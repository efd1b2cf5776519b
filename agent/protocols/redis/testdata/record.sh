#!/bin/bash
# Records redis.pcap: a real redis-server on loopback port 16379 driven by scripted clients
# (RESP2 commands, an error, pipelining, inline command, RESP3 via HELLO 3, pub/sub in both).
# Run as root from anywhere: agent/protocols/redis/testdata/record.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=16379
TMP=$(mktemp -d)
redis-server --port $PORT --dir "$TMP" --save '' --appendonly no --daemonize no >"$TMP/log" 2>&1 &
SRV=$!
tcpdump -i lo -U -w "$HERE/redis.pcap" "tcp port $PORT" 2>/dev/null &
DUMP=$!
trap 'kill $DUMP $SRV 2>/dev/null; rm -rf "$TMP"' EXIT
sleep 1
python3 - "$PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port)); return s
def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out
def rt(s, data, wait=0.05):
    s.sendall(data); time.sleep(wait); return s.recv(65536)
# 1: RESP2 basics and errors, one command at a time.
s = conn()
for c in [("SET", "key3", "me"), ("GET", "key3"), ("GET", "missing"), ("LLEN", "key3"),
          ("INCR", "counter"), ("HSET", "h", "f1", "v1", "f2", "v2"), ("HGETALL", "h"),
          ("NOSUCHCMD", "x"), ("DEL", "key3", "h")]:
    rt(s, cmd(*c))
# pipelining: three commands in one write.
rt(s, cmd("SET", "p1", "a") + cmd("GET", "p1") + cmd("EXISTS", "p1"), 0.1)
# inline command.
rt(s, b"PING\r\n")
rt(s, cmd("QUIT"))
s.close()
# 2: RESP3.
s = conn()
for c in [("HELLO", "3"), ("HSET", "h3", "a", "1"), ("HGETALL", "h3"), ("SADD", "s3", "x"),
          ("SMEMBERS", "s3"), ("GET", "nothing"), ("INCRBYFLOAT", "f", "1.5")]:
    rt(s, cmd(*c))
# 3: pub/sub, RESP2 subscriber and RESP3 subscriber, one publisher.
sub2 = conn(); rt(sub2, cmd("SUBSCRIBE", "ch1", "ch2"), 0.1)
sub3 = conn(); rt(sub3, cmd("HELLO", "3")); rt(sub3, cmd("SUBSCRIBE", "ch1"), 0.1)
pub = conn()
rt(pub, cmd("PUBLISH", "ch1", "hello"), 0.1)
rt(pub, cmd("PUBLISH", "ch2", "world"), 0.1)
rt(sub2, cmd("UNSUBSCRIBE"), 0.1)
rt(sub3, cmd("UNSUBSCRIBE", "ch1"), 0.1)
for x in (sub2, sub3, pub): x.close()
PY
sleep 1
