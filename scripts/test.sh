#!/usr/bin/env bash
# README command 2: install what is missing, then run the whole test suite.
#
# The tests are built first with no time limit (a clean debug build takes ~20 minutes on two
# cores), then run with one: SWITCHBOARD_TEST_TIMEOUT seconds (default 300; the suite takes
# about 15 s on an idle machine). A run that overruns it is stopped and run once more, with a
# message saying so. This is a stopgap: about one run in three on a busy two-core machine
# stalls for ever, with every test still running idle (see docs/ARCHITECTURE.md, "Testing").
# A run that fails is not run again.
set -euo pipefail
cd "$(dirname "$0")/.."
SWITCHBOARD_SETUP_TESTS=1 ./scripts/setup.sh
export SWITCHBOARD_PYTHON="$PWD/.venv/bin/python3"
limit="${SWITCHBOARD_TEST_TIMEOUT:-300}"
swift build --build-tests
for attempt in 1 2; do
    status=0
    timeout --kill-after=10 "$limit" swift test --skip-build "$@" || status=$?
    # timeout stops `swift test`, not the test process it started.
    pkill -9 -f 'SwitchboardPackageTests.xctest' 2>/dev/null || true
    if [ "$status" -ne 124 ] && [ "$status" -ne 137 ]; then exit "$status"; fi
    echo "scripts/test.sh: the test run did not end within ${limit} s (attempt ${attempt} of 2; a known stall, see docs/ARCHITECTURE.md \"Testing\")" >&2
done
exit 124
