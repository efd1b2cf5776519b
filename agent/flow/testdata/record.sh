#!/usr/bin/env bash
# Records the flow-tracking test captures on loopback with tcpdump against real servers.
# Usage: agent/flow/testdata/record.sh   (needs root, tcpdump, curl, python3)
set -euo pipefail
cd "$(dirname "$0")"
PORT=18080
ROOT=$(mktemp -d)
head -c 200000 /dev/urandom | base64 > "$ROOT/big.txt"   # ~270 KB: many segments
echo "hello sonde" > "$ROOT/small.txt"
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$ROOT" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$ROOT"' EXIT
sleep 1

record() {  # record <file> <snaplen> <command...>
  local out=$1 snap=$2; shift 2
  tcpdump -i lo -s "$snap" -w "$out" -U "tcp port $PORT or tcp port 18081" >/dev/null 2>&1 &
  local dump=$!
  sleep 1
  "$@" || true
  sleep 1
  kill -INT $dump; wait $dump || true
}

# Three sequential HTTP/1.0 GETs (python closes each connection): 3 flows with FIN closes.
record http_loopback.pcap 0 bash -c "for f in small.txt big.txt small.txt; do curl -s -o /dev/null http://127.0.0.1:$PORT/\$f; done"
# The same big download with a 96-byte snap length: payload truncated -> gap markers.
record http_snaplen96.pcap 96 curl -s -o /dev/null http://127.0.0.1:$PORT/big.txt
# Connection refused: SYN answered by RST.
record refused.pcap 0 curl -s -o /dev/null --max-time 2 http://127.0.0.1:18081/
ls -l ./*.pcap
