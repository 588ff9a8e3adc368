#!/bin/bash
# What the Lua rules cost in fan-out: `switchboard bench fanout` against the server running the
# default rules, then against the same server with `--benchmark-allow-everything` (a Swift
# policy that allows everything), alternating, ROUNDS times. Loopback only.
#
# usage: Benchmarks/fanout-rules-cost.sh [SUBSCRIBERS] [MESSAGES] [ROUNDS]
# Needs a release build: swift build -c release --product switchboard
set -euo pipefail
cd "$(dirname "$0")/.."
subscribers=${1:-100}
messages=${2:-20000}
rounds=${3:-3}
port=4600
secret=fanout-rules-cost-secret-0123456789
binary=.build/release/switchboard
[ -x "$binary" ] || { echo "build first: swift build -c release --product switchboard" >&2; exit 1; }

# The default rules with the per-channel budget lifted: one channel carries every message here.
rules=$(mktemp -d)
trap 'rm -rf "$rules"' EXIT
cp -r Rules/. "$rules"
rm -rf "$rules/tests"
sed -i 's/messages_per_minute = 100,/messages_per_minute = 100000000,/' "$rules/tiers.lua"
grep -q 'messages_per_minute = 100000000' "$rules/tiers.lua" || { echo "could not lift the limit in tiers.lua" >&2; exit 1; }

run() {
    local mode=$1 extra=()
    [ "$mode" = allow-everything ] && extra=(--benchmark-allow-everything)
    "$binary" serve --port $port --jwt-secret $secret --slow-consumer-bytes 16777216 --log-level error \
        --no-watch-rules --rules-dir "$rules" "${extra[@]}" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    printf '%-16s ' "$mode"
    timeout 300 "$binary" bench fanout --port $port --secret $secret --subscribers "$subscribers" \
        --messages "$messages" --size 1024 --server-pid $pid | head -1
    kill -TERM $pid
    wait $pid || true
}

for _ in $(seq 1 "$rounds"); do
    run default-rules
    run allow-everything
done
