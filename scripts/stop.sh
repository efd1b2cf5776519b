#!/usr/bin/env bash
# Stops the all-in-one platform started by setup-and-run.sh (the server stops its ClickHouse).
set -uo pipefail
STATE=${SONDE_STATE_DIR:-/var/lib/sonde}
for p in agent server; do
  f="$STATE/$p.pid"
  if [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; then
    kill -TERM "$(cat "$f")"
    for _ in $(seq 1 30); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 1; done
    echo "stopped sonde-$p"
  fi
  rm -f "$f"
done
