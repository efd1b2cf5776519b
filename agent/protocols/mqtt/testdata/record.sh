#!/bin/bash
# Records mqtt.pcap: a real mosquitto broker on loopback port 11883 with mosquitto_pub/sub
# (MQTT 3.1.1 and 5, QoS 0/1/2, subscriber receiving broker->client PUBLISH, UNSUBSCRIBE via
# python) and a raw CONNECT with an unsupported protocol level (refused by CONNACK).
# Run as root: agent/protocols/mqtt/testdata/record.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=11883
TMP=$(mktemp -d)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' $PORT > "$TMP/mosquitto.conf"
mosquitto -c "$TMP/mosquitto.conf" >"$TMP/log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; rm -rf "$TMP"' EXIT
sleep 0.5
tcpdump -i lo -U -w "$HERE/mqtt.pcap" "tcp port $PORT" 2>/dev/null &
DUMP=$!
sleep 1
mosquitto_sub -h 127.0.0.1 -p $PORT -V 5 -i sub5 -q 2 -t 'sensors/#' -C 3 >/dev/null &
SUB=$!
sleep 0.5
mosquitto_pub -h 127.0.0.1 -p $PORT -V mqttv311 -i pub311 -q 0 -t sensors/temp -m 21.5
mosquitto_pub -h 127.0.0.1 -p $PORT -V mqttv311 -i pub311 -q 1 -t sensors/humidity -m 40
mosquitto_pub -h 127.0.0.1 -p $PORT -V 5 -i pub5 -q 2 -t sensors/pressure -m 1013
wait $SUB
python3 - $PORT <<'PY'
import socket, sys, time
port = int(sys.argv[1])
def s(level, client):
    name = b"\x00\x04MQTT"
    vh = name + bytes([level, 0x02, 0x00, 0x3c])
    cid = len(client).to_bytes(2, "big") + client
    body = vh + cid
    return bytes([0x10, len(body)]) + body
# MQTT 3.1.1 session: subscribe, ping, unsubscribe, disconnect.
c = socket.create_connection(("127.0.0.1", port))
c.sendall(s(4, b"raw311")); time.sleep(0.1); c.recv(100)
c.sendall(bytes([0x82, 0x0a, 0x00, 0x07, 0x00, 0x05]) + b"a/b/#" + b"\x01"); time.sleep(0.1); c.recv(100)
c.sendall(b"\xc0\x00"); time.sleep(0.1); c.recv(100)
c.sendall(bytes([0xa2, 0x09, 0x00, 0x08, 0x00, 0x05]) + b"a/b/#"); time.sleep(0.1); c.recv(100)
c.sendall(b"\xe0\x00"); time.sleep(0.1); c.close()
# Unsupported protocol level: the broker answers CONNACK 0x01 and closes.
c = socket.create_connection(("127.0.0.1", port))
c.sendall(s(9, b"badlevel")); time.sleep(0.2)
try:
    c.recv(100)
except OSError:
    pass
c.close()
PY
sleep 1
kill $DUMP
