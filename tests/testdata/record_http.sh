#!/usr/bin/env bash
# Records http_known.pcap: a known HTTP/1.1 workload on loopback against python3's http.server.
# Workload: 3 x GET /hello.txt (200), 2 x GET /missing (404), 1 x POST /hello.txt (501),
# each on its own TCP connection (curl without keep-alive between invocations) = 6 connections.
# Run as root from this folder: ./record_http.sh
set -euo pipefail
out=${1:-http_known.pcap}
port=18080
www=$(mktemp -d)
echo "hello sonde" >"$www/hello.txt"
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$www" >/dev/null 2>&1 &
srv=$!
tcpdump -i lo -U -s 0 -w "$out" "tcp port $port" >/dev/null 2>&1 &
dump=$!
trap 'kill $srv $dump 2>/dev/null; rm -rf "$www"' EXIT
sleep 1
for _ in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$port/hello.txt"; done
for _ in 1 2; do curl -s -o /dev/null "http://127.0.0.1:$port/missing"; done
curl -s -o /dev/null -X POST -d 'x=1' "http://127.0.0.1:$port/hello.txt"
sleep 1
kill -INT $dump
wait $dump 2>/dev/null || true
echo "wrote $out"
