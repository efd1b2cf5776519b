#!/usr/bin/env bash
# Side-by-side flow-tracking throughput on one synthetic capture: sonde's FlowTracker vs
# nDPI's ndpiReader and TShark's TCP conversation table, in the same run. Prints packets/s and
# Gbit/s per core (CPU time, user+sys, single-threaded runs) and the ratio to ndpiReader. Not a
# test. Usage: bench/flow/run.sh [BENCH_BINARY] [PACKETS]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$HERE/../../build/release/bench/flow/sonde_flow_bench}
PACKETS=${2:-3000000}
PCAP=${SONDE_FLOW_BENCH_PCAP:-/tmp/sonde_flow_bench_${PACKETS}.pcap}
[ -f "$PCAP" ] || python3 "$HERE/make_capture.py" "$PCAP" --packets "$PACKETS" --concurrent 20000
N=$(capinfos -c -M "$PCAP" | awk '/Number of packets/ {print $NF}')
BYTES=$(capinfos -d -M "$PCAP" | awk '/Data size/ {print $(NF-1)}')
TIMES=$(mktemp)
trap 'rm -f "$TIMES"' EXIT

cpu() {  # prints user+sys seconds of a command
  /usr/bin/time -f "%U %S" -o "$TIMES" "$@" >/dev/null 2>&1 || true
  awk '{print $1 + $2}' "$TIMES"
}
row() {  # name cpu_seconds
  awk -v name="$1" -v n="$N" -v b="$BYTES" -v s="$2" 'BEGIN {
    printf "%-46s %8.2f %14.0f %10.2f\n", name, s, (s > 0 ? n / s : 0), (s > 0 ? b * 8 / s / 1e9 : 0) }'
}

echo "capture: $PCAP ($N packets, $BYTES bytes)"
echo "-- in-memory replay (capture loaded first, only flow tracking timed):"
"$BIN" "$PCAP"
"$BIN" "$PCAP" --streams
echo "-- whole process, file read included (same footing for every tool):"
printf "%-46s %8s %14s %10s\n" "tool" "cpu s" "packets/s/core" "Gbit/s"
SONDE=$(cpu "$BIN" "$PCAP")
row "sonde FlowTracker (incl. pcap load)" "$SONDE"
NDPI=0
if command -v ndpiReader >/dev/null; then
  NDPI=$(cpu ndpiReader -i "$PCAP" -q -v 0 -n 1)
  row "ndpiReader -i FILE -n 1" "$NDPI"
fi
if command -v tshark >/dev/null; then
  S=$(cpu tshark -r "$PCAP" -q -z conv,tcp)
  row "tshark -q -z conv,tcp" "$S"
fi
awk -v a="$SONDE" -v b="$NDPI" 'BEGIN { if (a > 0 && b > 0) printf "sonde / ndpiReader packet rate: %.2fx\n", b / a }'
"$BIN" "$PCAP" --memory-flows 1000000
