#!/bin/bash
# Records tls_openssl.pcap: curl (TLS 1.3, ALPN h2/http1.1, SNI) and openssl s_client (TLS 1.2)
# against openssl s_server on 127.0.0.1:18445 with a throwaway self-signed certificate, plus one
# handshake rejected with an alert (client insists on TLS 1.1). Needs root (tcpdump), openssl, curl.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'kill $SRV_PID $TCPDUMP_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=sonde.test -keyout "$WORK/k.pem" \
  -out "$WORK/c.pem" -days 1 2>/dev/null
openssl s_server -quiet -accept 127.0.0.1:18445 -cert "$WORK/c.pem" -key "$WORK/k.pem" -www \
  -alpn http/1.1 > /dev/null 2>&1 &
SRV_PID=$!
sleep 1
tcpdump -i lo -s 0 -U -w "$HERE/tls_openssl.pcap" 'tcp port 18445' 2>/dev/null &
TCPDUMP_PID=$!
sleep 1
curl -sk -o /dev/null --resolve api.sonde.test:18445:127.0.0.1 https://api.sonde.test:18445/
echo | openssl s_client -connect 127.0.0.1:18445 -servername legacy.sonde.test -tls1_2 > /dev/null 2>&1 || true
echo | openssl s_client -connect 127.0.0.1:18445 -servername old.sonde.test -tls1_1 > /dev/null 2>&1 || true
sleep 1
kill $TCPDUMP_PID; wait $TCPDUMP_PID 2>/dev/null || true
echo "wrote $HERE/tls_openssl.pcap"
