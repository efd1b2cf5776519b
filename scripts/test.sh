#!/usr/bin/env bash
# The test command: installs dependencies, builds (warnings as errors) and runs the whole suite.
# Idempotent: a second run reuses the installed packages and the build tree.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset ci >/dev/null
cmake --build --preset ci -j"$(nproc)"
# Every label (unit, clickhouse, bpf, e2e); -j2 keeps two cores busy without starving servers.
ctest --preset ci -j2 --timeout 900 "$@"
