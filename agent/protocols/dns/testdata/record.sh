#!/bin/bash
# Records dns_dnsmasq.pcap: dig queries (UDP and TCP) against dnsmasq on 127.0.0.1:15353 with
# local records only. Needs root (tcpdump), dnsmasq, dig. Usage: sudo ./record.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'kill $(cat "$WORK/dnsmasq.pid" 2>/dev/null) 2>/dev/null || true; kill $TCPDUMP_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
dnsmasq --port=15353 --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
  --pid-file="$WORK/dnsmasq.pid" --local=/test/ \
  --address=/web.example.test/10.1.2.3 --host-record=v6.example.test,fd00::5 \
  --mx-host=example.test,mail.example.test,10 --txt-record=example.test,"hello dns" \
  --cname=alias.example.test,web.example.test
sleep 0.5
tcpdump -i lo -s 0 -U -w "$HERE/dns_dnsmasq.pcap" 'port 15353' 2>/dev/null &
TCPDUMP_PID=$!
sleep 1
D="dig @127.0.0.1 -p 15353 +tries=1 +time=2"
$D web.example.test A > /dev/null
$D v6.example.test AAAA > /dev/null
$D example.test MX > /dev/null
$D example.test TXT > /dev/null
$D nothing.example.test A > /dev/null
$D alias.example.test A > /dev/null
$D +tcp web.example.test A > /dev/null
$D +tcp nothing.example.test AAAA > /dev/null
sleep 1
kill $TCPDUMP_PID; wait $TCPDUMP_PID 2>/dev/null || true
echo "wrote $HERE/dns_dnsmasq.pcap"
