#!/usr/bin/env bash
# Side-by-side flow-tracking throughput on one synthetic capture: sonde's FlowTracker vs
# nDPI's ndpiReader and TShark's TCP conversation table. Prints packets/s per core (CPU time,
# user+sys, single-threaded runs). Not a test.
# Usage: bench/flow/run.sh [BENCH_BINARY] [PACKETS]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$HERE/../../build/release/bench/flow/sonde_flow_bench}
PACKETS=${2:-3000000}
PCAP=${SONDE_FLOW_BENCH_PCAP:-/tmp/sonde_flow_bench_${PACKETS}.pcap}
[ -f "$PCAP" ] || python3 "$HERE/make_capture.py" "$PCAP" --packets "$PACKETS" --concurrent 20000
N=$(capinfos -c -M "$PCAP" | awk '/Number of packets/ {print $NF}')

cpu() {  # prints user+sys seconds of a command
  /usr/bin/time -f "%U %S" -o /tmp/sonde_bench_time "$@" >/dev/null 2>&1 || true
  awk '{print $1 + $2}' /tmp/sonde_bench_time
}
rate() { awk -v n="$N" -v s="$1" 'BEGIN { printf "%12.0f", (s > 0 ? n / s : 0) }'; }

echo "capture: $PCAP ($N packets)"
printf "%-44s %10s %14s\n" "tool" "cpu s" "packets/s/core"
"$BIN" "$PCAP"
"$BIN" "$PCAP" --streams
S=$(cpu "$BIN" "$PCAP")
printf "%-44s %10.2f %s\n" "sonde FlowTracker (incl. pcap load)" "$S" "$(rate "$S")"
if command -v ndpiReader >/dev/null; then
  S=$(cpu ndpiReader -i "$PCAP" -q -v 0 -n 1)
  printf "%-44s %10.2f %s\n" "ndpiReader -i FILE -n 1" "$S" "$(rate "$S")"
fi
if command -v tshark >/dev/null; then
  S=$(cpu tshark -r "$PCAP" -q -z conv,tcp)
  printf "%-44s %10.2f %s\n" "tshark -q -z conv,tcp" "$S" "$(rate "$S")"
fi
"$BIN" "$PCAP" --memory-flows 1000000
