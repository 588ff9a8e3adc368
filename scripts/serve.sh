#!/usr/bin/env bash
# README command 1: install what is missing, build, and serve on 127.0.0.1:4000 with the
# embedded defaults (Rules/ from the repo, in-memory, a generated dev secret and token).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec swift run switchboard serve "$@"
