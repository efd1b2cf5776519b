#!/usr/bin/env bash
# Fuzz smoke test for CI: builds every *_fuzzer target with the `fuzz` preset (clang, libFuzzer,
# ASan + UBSan) into build/fuzz and runs each for a few seconds on its seed corpus. Fails when any
# fuzzer crashes, leaks or trips a sanitizer. New inputs go to a temporary directory, never to
# the committed seeds; crash reproducers are kept in build/fuzz/crashes/.
# Usage: scripts/fuzz-smoke.sh [SECONDS_PER_FUZZER]   (default 5; env FUZZ_JOBS for the build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${1:-5}
BUILD=$ROOT/build/fuzz
cd "$ROOT"
start=$(date +%s)

cmake --preset fuzz >/dev/null
targets=$(ninja -C "$BUILD" -t targets all | awk -F: '$1 ~ /(^|\/)[a-z0-9_]+_fuzzer$/ {print $1}' |
  sed 's#.*/##' | grep -v '^cmake_' | sort -u)
[ -n "$targets" ] || { echo "fuzz-smoke: no *_fuzzer targets"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$BUILD" --target $targets -j "${FUZZ_JOBS:-2}"

# Seed corpus of each fuzzer, from its registered "<name>_seeds" replay test.
declare -A SEEDS
while IFS=$'\t' read -r name corpus; do SEEDS[$name]=$corpus; done < <(
  ctest --test-dir "$BUILD" --show-only=json-v1 | python3 -c '
import json, os, sys
for t in json.load(sys.stdin)["tests"]:
    cmd = t.get("command") or []
    if t["name"].endswith("_seeds") and len(cmd) >= 2:
        print(os.path.basename(cmd[0]) + "\t" + cmd[1])')

mkdir -p "$BUILD/crashes"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
for t in $targets; do
  bin=$(find "$BUILD" -type f -name "$t" -perm -u+x | head -1)
  mkdir -p "$work/$t"
  seeds=${SEEDS[$t]:-}
  log=$work/$t.log
  # -rss_limit_mb keeps an unbounded allocation a failure; -timeout catches hangs (loops).
  if "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$BUILD/crashes/$t-" "$work/$t" ${seeds:+"$seeds"} >"$log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log")
    printf "fuzz-smoke: %-28s ok   %8s runs\n" "$t" "${runs:-?}"
    passed=$((passed + 1))
  else
    printf "fuzz-smoke: %-28s FAILED (reproducer in %s)\n" "$t" "$BUILD/crashes/"
    grep -E "ERROR: |runtime error|SUMMARY" "$log" | head -5 || tail -5 "$log"
    failed=$((failed + 1))
  fi
done
echo "fuzz-smoke: $(( $(date +%s) - start )) s wall"
echo "fuzz-smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
