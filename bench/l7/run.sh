#!/usr/bin/env bash
# Side-by-side L7 throughput: for each protocol, a large capture generated from our recorded
# test capture (make_capture.py, written to /tmp, never committed), then in the same run
#   sonde_l7_bench: L7 records/s per core, L7 parsing alone and through the whole pipeline;
#   tshark -q -z io,stat,0,<proto>: the same file fully dissected (its CPU time, user+sys).
# The ratio is sonde's records/s (whole pipeline, file read included, like tshark) over
# tshark's rate for the same records. Not a test.
# Variant row http1-ka: the same HTTP/1 exchanges on long-lived keep-alive connections (each
# connection carries the template's exchanges 20 times over, make_capture.py --keep-alive), as
# service-to-service traffic looks; the http1 row (one connection per template connection, so
# 2-3 requests per connection) stays as it was.
# Usage: bench/l7/run.sh [BENCH_BINARY] [PACKETS] [PROTOCOLS...]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-$ROOT/build/release/bench/l7/sonde_l7_bench}
PACKETS=${2:-2000000}
shift $(( $# > 2 ? 2 : $# ))
PROTOCOLS=("$@")
[ ${#PROTOCOLS[@]} -gt 0 ] || PROTOCOLS=(http1 http1-ka mysql postgres redis mqtt dns tls http2)

# protocol -> template capture, server port, tshark dissector
declare -A TEMPLATE=(
  [http1]=http1/testdata/http1_nginx.pcap [mysql]=mysql/testdata/mysql.pcap
  [postgres]=postgres/testdata/postgres.pcap [redis]=redis/testdata/redis.pcap
  [mqtt]=mqtt/testdata/mqtt.pcap [dns]=dns/testdata/dns_dnsmasq.pcap
  [tls]=tls/testdata/tls_openssl.pcap [http2]=http2/testdata/h2c_nghttpd.pcap
  [http1-ka]=http1/testdata/http1_nginx.pcap)
declare -A EXTRA=([http1-ka]="--keep-alive 20")
declare -A PORT=([http1]=18080 [http1-ka]=18080 [mysql]=13306 [postgres]=15432 [redis]=16379 [mqtt]=11883
  [dns]=15353 [tls]=18445 [http2]=18443)
declare -A DISSECTOR=([http1]=http [http1-ka]=http [mysql]=mysql [postgres]=pgsql [redis]=resp [mqtt]=mqtt
  [dns]=dns [tls]=tls [http2]=http2)

TIMES=$(mktemp)
trap 'rm -f "$TIMES"' EXIT
printf "%-9s %9s %9s %13s %13s %11s %12s %8s\n" protocol packets records "l7-only r/s" \
  "pipeline r/s" "tshark s" "tshark r/s" ratio
for p in "${PROTOCOLS[@]}"; do
  pcap=/tmp/sonde_l7_${p}_${PACKETS}.pcap
  if [ ! -f "$pcap" ]; then
    tmpl="$ROOT/agent/protocols/${TEMPLATE[$p]}"
    if [ "$(capinfos -t -M "$tmpl" | awk -F': *' '/File type/ {print $2}')" != "Wireshark/tcpdump/... - pcap" ]; then
      editcap -F pcap "$tmpl" /tmp/sonde_l7_template.pcap && tmpl=/tmp/sonde_l7_template.pcap
    fi
    # shellcheck disable=SC2086  # EXTRA holds several words
    python3 "$HERE/make_capture.py" "$tmpl" "$pcap" --server-port "${PORT[$p]}" --packets "$PACKETS" \
      ${EXTRA[$p]:-} 2>/dev/null
  fi
  out=$("$BIN" "$pcap")
  get() { awk -v k="$1" '$1 == k {print $2}' <<<"$out"; }
  proto=${DISSECTOR[$p]}
  transport=tcp
  [ "$p" = dns ] && transport=udp
  /usr/bin/time -f "%U %S" -o "$TIMES" tshark -r "$pcap" -d "$transport.port==${PORT[$p]},$proto" \
    -q -z "io,stat,0,$proto" >/dev/null 2>&1 || true
  tshark_s=$(awk '{print $1 + $2}' "$TIMES")
  awk -v p="$p" -v n="$(get packets)" -v r="$(get records)" -v l7="$(get l7_only_records_per_s)" \
    -v pl="$(get pipeline_records_per_s)" -v ts="$tshark_s" 'BEGIN {
      tr = ts > 0 ? r / ts : 0
      printf "%-9s %9d %9d %13.0f %13.0f %11.2f %12.0f %7.1fx\n", p, n, r, l7, pl, ts, tr, (tr > 0 ? pl / tr : 0) }'
done
