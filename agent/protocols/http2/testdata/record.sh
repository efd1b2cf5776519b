#!/bin/bash
# Records h2c_nghttpd.pcap (nghttp prior-knowledge client against nghttpd --no-tls
# on 127.0.0.1:18443) and grpc_python.pcap (python grpcio generic server/client on :18444).
# Needs root (tcpdump), nghttp2-server/-client, python3-grpcio. Usage: sudo ./record.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
PY=/usr/bin/python3
trap 'kill $SRV_PID $GRPC_PID $TCPDUMP_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/www/items"
echo "hello h2" > "$WORK/www/index.html"
echo '{"id":7}' > "$WORK/www/items/7"
nghttpd --no-tls -d "$WORK/www" 18443 &
SRV_PID=$!
$PY "$HERE/grpc_server.py" 18444 8 &
GRPC_PID=$!
sleep 1.5
tcpdump -i lo -s 0 -U -w "$HERE/h2c_nghttpd.pcap" 'tcp port 18443' 2>/dev/null &
TCPDUMP_PID=$!
sleep 1
# prior knowledge: three streams on one connection (one 404), with a trace header
nghttp -n -H 'x-request-id: h2-req' http://127.0.0.1:18443/index.html \
  http://127.0.0.1:18443/items/7 http://127.0.0.1:18443/missing
# (nghttpd --no-tls does not answer HTTP/1.1 Upgrade; parser_test.cc covers Upgrade.)
sleep 1
kill $TCPDUMP_PID; wait $TCPDUMP_PID 2>/dev/null || true
tcpdump -i lo -s 0 -U -w "$HERE/grpc_python.pcap" 'tcp port 18444' 2>/dev/null &
TCPDUMP_PID=$!
sleep 1
$PY "$HERE/grpc_client.py" 18444
sleep 1
kill $TCPDUMP_PID; wait $TCPDUMP_PID 2>/dev/null || true
echo "wrote $HERE/h2c_nghttpd.pcap $HERE/grpc_python.pcap"
