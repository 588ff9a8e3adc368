#!/usr/bin/env bash
# Runs the whole test suite N times in a row (default 10) while two busy loops of its own keep
# both cores loaded, as CI's shared machine may be; ends with one line: "N passed, M failed".
# Exits 0 only when every run passed. Each failed run's log is kept and named.
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
if ! [[ "$runs" =~ ^[1-9][0-9]{0,3}$ ]]; then
  echo "usage: scripts/stress-test.sh [N]   (N: how many suite runs, 1 to 9999; default 10)" >&2
  exit 2
fi
SWITCHBOARD_SETUP_TESTS=1 ./scripts/setup.sh || exit 1
export SWITCHBOARD_PYTHON="$PWD/.venv/bin/python3"
echo "stress-test: building once, before the load starts" >&2
swift build --build-tests >/dev/null || { echo "stress-test: the build failed" >&2; exit 1; }

logs="$(mktemp -d -t switchboard-stress.XXXXXX)"
load=()
stop_load() { [ ${#load[@]} -eq 0 ] || kill "${load[@]}" 2>/dev/null; wait 2>/dev/null; }
trap stop_load EXIT INT TERM
# The background load: one busy loop per core, each capped at 6 hours in case this script is
# killed without running its trap.
for _ in 1 2; do
  timeout 6h yes >/dev/null &
  load+=($!)
done

passed=0
failed=0
for run in $(seq 1 "$runs"); do
  log="$logs/run-$run.log"
  if swift test --skip-build >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "run $run: passed ($(grep -Eo 'Test run with [0-9]+ tests' "$log" | head -1 | grep -Eo '[0-9]+') tests)"
  else
    failed=$((failed + 1))
    echo "run $run: FAILED, log in $log"
    grep -E '✘ Test .*(recorded an issue|failed)' "$log" | head -5
  fi
done
stop_load
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
