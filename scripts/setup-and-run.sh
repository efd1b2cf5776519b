#!/usr/bin/env bash
# The setup-and-run command: installs dependencies (apt), builds in release mode, installs
# sonde, sonde-agent and sonde-server on PATH, and starts the all-in-one platform observing this
# host: sonde-server (which starts and supervises its own ClickHouse) and sonde-agent.
# Idempotent: a second run reuses the build and leaves running processes alone.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${SONDE_PREFIX:-/usr/local}
STATE=${SONDE_STATE_DIR:-/var/lib/sonde}
LOGS=${SONDE_LOG_DIR:-/var/log/sonde}
INGEST=${SONDE_INGEST_ADDR:-127.0.0.1:20033}
HTTP=${SONDE_HTTP_ADDR:-0.0.0.0:20080}
AGENT_METRICS=${SONDE_AGENT_METRICS_ADDR:-127.0.0.1:20090}

bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"
cmake --install build/release --prefix "$PREFIX" >/dev/null
mkdir -p "$STATE" "$LOGS"

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

if running "$STATE/server.pid"; then
  echo "sonde-server already running (pid $(cat "$STATE/server.pid"))"
else
  nohup "$PREFIX/bin/sonde-server" --data-dir "$STATE/server" --listen "$INGEST" --http "$HTTP" \
    >>"$LOGS/server.log" 2>&1 &
  echo $! >"$STATE/server.pid"
fi

http_port=${HTTP##*:}
for _ in $(seq 1 120); do
  if "$PREFIX/bin/sonde" --server "http://127.0.0.1:$http_port" status >/dev/null 2>&1; then break; fi
  if ! running "$STATE/server.pid"; then
    echo "sonde-server exited; see $LOGS/server.log" >&2
    tail -n 20 "$LOGS/server.log" >&2
    exit 1
  fi
  sleep 1
done

if running "$STATE/agent.pid"; then
  echo "sonde-agent already running (pid $(cat "$STATE/agent.pid"))"
else
  nohup "$PREFIX/bin/sonde-agent" --server "$INGEST" --metrics-listen "$AGENT_METRICS" \
    >>"$LOGS/agent.log" 2>&1 &
  echo $! >"$STATE/agent.pid"
fi

cat <<MSG

Sonde is running.
  status:        sonde status
  query:         sonde query "SELECT request_type, count() FROM l7_request_log GROUP BY request_type"
  HTTP API:      http://127.0.0.1:$http_port/v1/status   (POST /v1/query, GET /metrics)
  agent metrics: http://$AGENT_METRICS/metrics
  logs:          $LOGS/server.log, $LOGS/agent.log
  stop:          scripts/stop.sh
MSG
