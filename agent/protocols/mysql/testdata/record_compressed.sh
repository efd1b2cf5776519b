#!/bin/bash
# Records mysql_compressed.pcap: a real MariaDB server on loopback port 13307 (temp datadir) and
# the stock `mariadb --compress` client (compression negotiated in the handshake): login, a
# few COM_QUERYs including a result set big enough to be deflated, an error, COM_QUIT.
# Run as root: agent/protocols/mysql/testdata/record_compressed.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=13307
TMP=$(mktemp -d)
chown mysql: "$TMP" 2>/dev/null || true
mariadb-install-db --no-defaults --datadir="$TMP/data" --user=mysql --auth-root-authentication-method=normal >"$TMP/install.log" 2>&1
mysqld --no-defaults --datadir="$TMP/data" --user=mysql --port=$PORT --bind-address=127.0.0.1 \
  --socket="$TMP/sock" --skip-grant-tables=0 --log-error="$TMP/err.log" &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null; rm -rf "$TMP"' EXIT
for i in $(seq 50); do [ -S "$TMP/sock" ] && break; sleep 0.2; done
mysql --no-defaults -S "$TMP/sock" -uroot -e "CREATE DATABASE shop; CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'secret'; GRANT ALL ON shop.* TO 'app'@'127.0.0.1';"
tcpdump -i lo -U -w "$HERE/mysql_compressed.pcap" "tcp port $PORT" 2>/dev/null &
DUMP=$!
sleep 1
mariadb --no-defaults --compress -h127.0.0.1 -P$PORT -uapp -psecret shop \
  -e "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(64)); INSERT INTO t VALUES (1,'apple'),(2,'pear'); SELECT * FROM t; SELECT REPEAT('x', 4000) AS big; SELECT * FROM missing_table;" || true
sleep 1
kill $DUMP
wait $DUMP 2>/dev/null || true
