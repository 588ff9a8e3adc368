#!/bin/bash
# Comment latency during a typing storm, and typing frames delivered with and without batching:
# `switchboard bench typing` against the release server in three modes, alternating, ROUNDS times,
# then the median of each figure per mode. Loopback only.
#
#   no-storm    the typists join but stay silent: the baseline latency of comments
#   batched     the storm, with the default rules' user:typing policy (batch 100 ms, keep latest by user_id)
#   unbatched   the storm, with user:typing's batch policy removed from a copy of the rules
#
# Every mode gets a fresh server. Both rules copies lift the tiers' messages_per_minute so that
# comments are never refused for the channel's budget; typing keeps its own per-user budget
# (1200 a minute), which is why the bench mints one token per typist.
#
# usage: Benchmarks/typing-storm.sh [SUBSCRIBERS] [TYPISTS] [TYPING_HZ] [SECONDS] [COMMENTS_PER_S] [ROUNDS]
# Needs a release build: swift build -c release --product switchboard
set -euo pipefail
cd "$(dirname "$0")/.."
subscribers=${1:-20}
typists=${2:-20}
typing_hz=${3:-20}
seconds=${4:-5}
comment_rate=${5:-5}
rounds=${6:-3}
port=4601
secret=typing-storm-bench-secret-0123456789
binary=.build/release/switchboard
[ -x "$binary" ] || { echo "build first: swift build -c release --product switchboard" >&2; exit 1; }

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The default rules with the per-channel budget lifted ...
batched="$work/batched"
mkdir "$batched"
cp -r Rules/. "$batched"
rm -rf "$batched/tests"
sed -i 's/messages_per_minute = 100,/messages_per_minute = 100000000,/' "$batched/tiers.lua"
grep -q 'messages_per_minute = 100000000' "$batched/tiers.lua" || { echo "could not lift the limit in tiers.lua" >&2; exit 1; }
grep -q 'batch = { window_ms = 100, keep = "latest", by = "user_id" },' "$batched/events.lua" \
    || { echo "user:typing's batch policy in events.lua is not the one this script expects" >&2; exit 1; }
# ... and the same without user:typing's batch policy (the only batch line in events.lua).
unbatched="$work/unbatched"
cp -r "$batched" "$unbatched"
sed -i '/^ *batch = { window_ms = 100, keep = "latest", by = "user_id" },$/d' "$unbatched/events.lua"
if grep -q '^ *batch = ' "$unbatched/events.lua"; then echo "could not remove the batch policy from events.lua" >&2; exit 1; fi

results="$work/results"
: >"$results"

run() {
    local mode=$1 rules=$batched storm=()
    [ "$mode" = unbatched ] && rules=$unbatched
    [ "$mode" = no-storm ] && storm=(--no-storm)
    "$binary" serve --port $port --jwt-secret $secret --slow-consumer-bytes 16777216 --log-level error \
        --no-watch-rules --rules-dir "$rules" >/dev/null 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    kill -0 "$server_pid" 2>/dev/null || { echo "the server did not start" >&2; exit 1; }
    local output
    output=$(timeout 300 "$binary" bench typing --port $port --secret $secret --subscribers "$subscribers" \
        --typists "$typists" --typing-rate "$typing_hz" --duration "$seconds" --comment-rate "$comment_rate" \
        --server-pid "$server_pid" "${storm[@]}")
    printf '%-10s %s\n' "$mode" "$(echo "$output" | head -1)"
    local cpu
    cpu=$(echo "$output" | head -1 | grep -o 'server_cpu=[0-9.]*' | cut -d= -f2 || true)
    # The JSON line, and the server's CPU seconds from the summary line in the same shape.
    echo "$mode $(echo "$output" | sed -n 2p) \"serverCpuSeconds\":${cpu:--}" >>"$results"
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=
}

for _ in $(seq 1 "$rounds"); do
    run no-storm
    run batched
    run unbatched
done

# The median of one JSON number over a mode's rounds.
median() {
    local mode=$1 key=$2
    grep "^$mode " "$results" | grep -o "\"$key\":[-0-9.e+]*" | cut -d: -f2 | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "medians of $rounds rounds (comment latency in µs): $subscribers subscribers, $typists typists at $typing_hz Hz for $seconds s, $comment_rate comments/s"
printf '%-10s %9s %9s %9s %15s %14s %8s %7s %14s %16s %14s\n' mode p50_µs p99_µs max_µs \
    typing_frames/s per_subscriber max/pair final typing_refused comments_refused server_cpu_s
for mode in no-storm batched unbatched; do
    printf '%-10s %8s %8s %8s %15.0f %14.1f %8s %7s %14s %16s %14s\n' "$mode" \
        "$(median $mode p50)" "$(median $mode p99)" "$(median $mode max)" \
        "$(median $mode typingFramesPerSecond)" "$(median $mode typingFramesPerSecondPerSubscriber)" \
        "$(median $mode typingMaxPerPair)" "$(median $mode finalStates)" \
        "$(median $mode typingRefused)" "$(median $mode commentsRefused)" "$(median $mode serverCpuSeconds)"
done
