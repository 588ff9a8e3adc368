#!/usr/bin/env bash
# README command 2: install what is missing, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
SWITCHBOARD_SETUP_TESTS=1 ./scripts/setup.sh
export SWITCHBOARD_PYTHON="$PWD/.venv/bin/python3"
exec swift test "$@"
