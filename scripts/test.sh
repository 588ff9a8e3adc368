#!/usr/bin/env bash
# README command 2: install what is missing, then run the whole test suite.
#
# The tests are built first with no time limit (a clean debug build takes ~20 minutes on two
# cores), then run with one: SWITCHBOARD_TEST_TIMEOUT seconds (default 300; the suite takes
# about 15 s on an idle machine). A run that overruns it is stopped and fails (exit 124), with
# a message saying so: a test that waits for ever is a defect to find, not to wait out
# (SWITCHBOARD_TEST_LOG=debug shows where each test server is; docs/ARCHITECTURE.md "Testing").
set -euo pipefail
cd "$(dirname "$0")/.."
SWITCHBOARD_SETUP_TESTS=1 ./scripts/setup.sh
export SWITCHBOARD_PYTHON="$PWD/.venv/bin/python3"
limit="${SWITCHBOARD_TEST_TIMEOUT:-300}"
swift build --build-tests
status=0
timeout --kill-after=10 "$limit" swift test --skip-build "$@" || status=$?
# timeout stops `swift test`, not the test process it started.
pkill -9 -f 'SwitchboardPackageTests.xctest' 2>/dev/null || true
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "scripts/test.sh: the test run did not end within ${limit} s and was stopped (see docs/ARCHITECTURE.md \"Testing\")" >&2
    exit 124
fi
exit "$status"
