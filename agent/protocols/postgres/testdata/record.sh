#!/bin/bash
# Records postgres.pcap: a real PostgreSQL 15 server (temp cluster, trust auth) on loopback port
# 15432, driven by client.py speaking the protocol directly: SSLRequest (refused), startup,
# simple queries (DDL, insert, select, error), extended protocol with unnamed and named
# statements, an error inside an extended batch, and Terminate.
# Run as root: agent/protocols/postgres/testdata/record.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=15432
TMP=$(mktemp -d)
chown postgres: "$TMP"
BIN=/usr/lib/postgresql/15/bin
su postgres -c "$BIN/initdb -D $TMP/data -A trust -U postgres" >/dev/null
su postgres -c "$BIN/postgres -D $TMP/data -p $PORT -k $TMP -c listen_addresses=127.0.0.1 -c ssl=off" >"$TMP/log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null; rm -rf "$TMP"' EXIT
for i in $(seq 50); do [ -S "$TMP/.s.PGSQL.$PORT" ] && break; sleep 0.2; done
su postgres -c "psql -h $TMP -p $PORT -U postgres -c 'CREATE DATABASE shop'" >/dev/null
tcpdump -i lo -U -w "$HERE/postgres.pcap" "tcp port $PORT" 2>/dev/null &
DUMP=$!
sleep 1
python3 "$HERE/client.py" $PORT
sleep 1
kill $DUMP
