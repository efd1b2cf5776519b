#!/bin/bash
# Records http1_nginx.pcap: curl and raw-socket clients against nginx on loopback port 18080.
# Needs root (tcpdump), nginx, curl, python3. Usage: sudo ./record.sh  (writes next to itself)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'kill $(cat "$WORK/nginx.pid" 2>/dev/null) 2>/dev/null || true; kill $TCPDUMP_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/www/users" "$WORK/logs"
echo "hello" > "$WORK/www/index.html"
head -c 20000 /dev/zero | tr '\0' 'a' > "$WORK/www/big.txt"
echo '{"id":42}' > "$WORK/www/users/42"
cat > "$WORK/nginx.conf" <<CONF
daemon on; pid $WORK/nginx.pid; error_log $WORK/logs/error.log;
events {}
http {
  access_log off; client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  server {
    listen 127.0.0.1:18080; root $WORK/www; gzip on; gzip_types text/plain; gzip_min_length 10;
    location /echo { return 201 "created"; }
    location /fail { return 503; }
  }
}
CONF
nginx -c "$WORK/nginx.conf"
sleep 0.5
tcpdump -i lo -s 0 -U -w "$HERE/http1_nginx.pcap" 'tcp port 18080' 2>/dev/null &
TCPDUMP_PID=$!
sleep 1
# keep-alive: three requests on one connection, with trace headers
curl -s -o /dev/null -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
  -H 'X-Request-ID: req-1' http://127.0.0.1:18080/ http://127.0.0.1:18080/users/42 \
  http://127.0.0.1:18080/missing/123
# gzip -> chunked response
curl -s -o /dev/null -H 'Accept-Encoding: gzip' http://127.0.0.1:18080/big.txt
# POST with 100-continue and a body
head -c 3000 /dev/zero | curl -s -o /dev/null -H 'Expect: 100-continue' --data-binary @- \
  http://127.0.0.1:18080/echo
# 5xx, HEAD, HTTP/1.0
curl -s -o /dev/null http://127.0.0.1:18080/fail
curl -s -o /dev/null -I -H 'b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' http://127.0.0.1:18080/index.html
curl -s -o /dev/null -0 http://127.0.0.1:18080/index.html
# pipelining: two requests in one write
python3 - <<'PY'
import socket, time
s = socket.create_connection(("127.0.0.1", 18080))
s.sendall(b"GET /index.html HTTP/1.1\r\nHost: pipe\r\n\r\nGET /users/42 HTTP/1.1\r\nHost: pipe\r\nConnection: close\r\n\r\n")
time.sleep(0.3)
while s.recv(65536): pass
s.close()
PY
sleep 1
kill $TCPDUMP_PID; wait $TCPDUMP_PID 2>/dev/null || true
echo "wrote $HERE/http1_nginx.pcap"
