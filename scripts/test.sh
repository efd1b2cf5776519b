#!/usr/bin/env bash
# The test command: installs dependencies, builds (warnings as errors) and runs the whole suite:
# every fuzzer briefly under ASan/UBSan, then every CTest label (unit, clickhouse, bpf, e2e).
# Idempotent: a second run reuses the installed packages and the build trees.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset ci >/dev/null
cmake --build --preset ci -j"$(nproc)"
# libFuzzer + ASan + UBSan, a few seconds per parser (builds build/fuzz with clang).
bash scripts/fuzz-smoke.sh "${SONDE_FUZZ_SECONDS:-5}"
# -j2 keeps two cores busy without starving the real servers the tests start.
ctest --preset ci -j2 --timeout 900 "$@"
