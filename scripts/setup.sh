#!/usr/bin/env bash
# Installs what building and testing Switchboard needs on Debian, skipping what is present.
# Sourced by serve.sh and test.sh; safe to run again.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
pkg-config --exists lua5.4 2>/dev/null || missing+=(liblua5.4-dev pkg-config)
if [ "${SWITCHBOARD_SETUP_TESTS:-0}" = 1 ]; then
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  # PostgreSQL 15 with wal2json: the database tests start their own cluster with it.
  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
  [ -f /usr/lib/postgresql/15/lib/wal2json.so ] || missing+=(postgresql-15-wal2json)
  # Headless Chromium and its driver: the console's tests drive a real browser.
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  # openssl makes the certificate of the TLS tests.
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${SWITCHBOARD_SETUP_TESTS:-0}" = 1 ]; then
  # Supabase's Python client, the third-party client of the interop tests.
  venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv"
  if ! "$venv/bin/python3" -c 'import realtime' 2>/dev/null; then
    echo "setup: installing realtime==2.34.1 into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check realtime==2.34.1
  fi
  # Selenium drives the headless Chromium of the console's tests.
  if ! "$venv/bin/python3" -c 'import selenium' 2>/dev/null; then
    echo "setup: installing selenium==4.27.1 into $venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check selenium==4.27.1
  fi
fi
