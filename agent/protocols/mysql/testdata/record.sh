#!/bin/bash
# Records mysql.pcap: a real MariaDB server on loopback port 13306 (temp datadir) driven by a
# scripted client speaking the wire protocol directly (no TLS, mysql_native_password): login,
# COM_QUERY (DDL, insert, select, error), COM_INIT_DB, COM_PING, prepared statements, COM_QUIT.
# Run as root: agent/protocols/mysql/testdata/record.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=13306
TMP=$(mktemp -d)
chown mysql: "$TMP" 2>/dev/null || true
mariadb-install-db --no-defaults --datadir="$TMP/data" --user=mysql --auth-root-authentication-method=normal >"$TMP/install.log" 2>&1
mysqld --no-defaults --datadir="$TMP/data" --user=mysql --port=$PORT --bind-address=127.0.0.1 \
  --socket="$TMP/sock" --skip-grant-tables=0 --log-error="$TMP/err.log" &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null; rm -rf "$TMP"' EXIT
for i in $(seq 50); do [ -S "$TMP/sock" ] && break; sleep 0.2; done
mysql --no-defaults -S "$TMP/sock" -uroot -e "CREATE DATABASE shop; CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'secret'; GRANT ALL ON shop.* TO 'app'@'127.0.0.1';"
tcpdump -i lo -U -w "$HERE/mysql.pcap" "tcp port $PORT" 2>/dev/null &
DUMP=$!
sleep 1
python3 "$HERE/client.py" $PORT
sleep 1
kill $DUMP
