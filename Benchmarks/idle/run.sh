#!/usr/bin/env bash
# Idle heartbeats: a server's CPU per heartbeat and RSS per connection, for Switchboard or for
# the C floor server (floor.c). Fresh server per run, loopback only. See docs/BENCHMARKS.md,
# "Idle connections".
set -euo pipefail

usage() {
    cat >&2 <<'EOF'
usage: Benchmarks/idle/run.sh floor|switchboard [CONNECTIONS] [WINDOW]

  floor        the C floor server, built from Benchmarks/idle/floor.c (cc -O2)
  switchboard  .build/release/switchboard serve, default rules

Starts the server on 127.0.0.1:PORT, opens CONNECTIONS (default 1000) connections joined to 3
channels each, waits SETTLE seconds, reads the server's user+system CPU ticks from
/proc/PID/stat over WINDOW seconds (default 50), then stops the server and the client it
started. The client:

  CLIENT=bench   (default) `switchboard bench idle`: prints its line (RSS per connection), then
                 window=50s heartbeats=N server_cpu=X% of a core per_heartbeat=Y us
                 Each connection heartbeats every 25 s from its join, so WINDOW must be a
                 multiple of 25 (every connection sends WINDOW/25 heartbeats in it) and the
                 heartbeats come in bursts shaped like the connects.
  CLIENT=spread  Benchmarks/idle/heartbeats.py (python3): heartbeats spread evenly, one
                 connection every INTERVAL/CONNECTIONS seconds; CONNECTIONS at most 25000.

Environment: CLIENT (bench), INTERVAL (25; spread only), PORT (4610), SETTLE (30),
SWITCHBOARD (.build/release/switchboard: swift build -c release --product switchboard).
Run it several times, alternating the servers, and take medians.
EOF
    exit 2
}

cd "$(dirname "$0")/../.."
[ $# -ge 1 ] && [ $# -le 3 ] || usage
mode=$1
connections=${2:-1000}
window=${3:-50}
client=${CLIENT:-bench}
interval=${INTERVAL:-25}
port=${PORT:-4610}
settle=${SETTLE:-30}
binary=${SWITCHBOARD:-.build/release/switchboard}
secret=idle-bench-secret-0123456789abcdef-0123
is_int() { [[ $1 =~ ^[0-9]+$ ]]; }
[ "$mode" = floor ] || [ "$mode" = switchboard ] || usage
is_int "$connections" && [ "$connections" -ge 1 ] && [ "$connections" -le 100000 ] || usage
is_int "$window" && [ "$window" -ge 1 ] && [ "$window" -le 600 ] || usage
is_int "$settle" && [ "$settle" -le 300 ] || usage
is_int "$port" && [ "$port" -ge 1024 ] && [ "$port" -le 65535 ] || usage
case $client in
    bench) [ $((window % 25)) -eq 0 ] || { echo "WINDOW must be a multiple of 25 s with CLIENT=bench (its heartbeat interval)" >&2; exit 2; } ;;
    spread) [ "$connections" -le 25000 ] && [[ $interval =~ ^[0-9]*\.?[0-9]+$ ]] || usage ;;
    *) usage ;;
esac
[ -x "$binary" ] || { echo "no $binary: swift build -c release --product switchboard" >&2; exit 1; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
if listening; then echo "127.0.0.1:$port is already in use" >&2; exit 1; fi

work=$(mktemp -d)
server_pid=
client_pid=
cleanup() {
    for pid in $client_pid $server_pid; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# The server, bounded in time: it outlives connect + settle + window by at most 10 minutes.
lifetime=$((settle + window + 600))
if [ "$mode" = floor ]; then
    cc -O2 -o "$work/floor" Benchmarks/idle/floor.c
    "$work/floor" "$port" "$lifetime" >"$work/server.log" 2>&1 &
else
    timeout "$lifetime" "$binary" serve --port "$port" --jwt-secret "$secret" --log-level warning \
        >"$work/server.log" 2>&1 &
fi
server_pid=$!
for _ in $(seq 100); do listening && break; sleep 0.1; done
listening || { echo "the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
measured=$server_pid
if [ "$mode" = switchboard ]; then   # timeout's only child, whatever the binary is called
    measured=$(pgrep -P "$server_pid" | head -1) || true
    [ -n "$measured" ] || { echo "could not find the server under timeout (pid $server_pid)" >&2; exit 1; }
fi

if [ "$client" = spread ]; then
    token=
    if [ "$mode" = switchboard ]; then
        token=$("$binary" token --secret "$secret" --role admin --sub bench --tier paid --ttl 2h)
    fi
    timeout $((settle + window + 400)) python3 Benchmarks/idle/heartbeats.py --port "$port" \
        --server-pid "$measured" --token "$token" --connections "$connections" --interval "$interval" \
        --settle "$settle" --window "$window"
    exit 0
fi

# bench idle holds the connections through settle + window, then closes them (stdbuf: its line
# reaches the log when printed, not when it exits).
timeout $((settle + window + 300)) stdbuf -oL "$binary" bench idle --port "$port" --secret "$secret" \
    --connections "$connections" --channels 3 --server-pid "$measured" --hold $((settle + window + 5)) \
    >"$work/bench.log" 2>&1 &
client_pid=$!
for _ in $(seq 600); do   # connects and joins: at most 300 s
    grep -q '^idle ' "$work/bench.log" && break
    kill -0 "$client_pid" 2>/dev/null || break
    sleep 0.5
done
grep '^idle ' "$work/bench.log" || { echo "bench idle failed:" >&2; cat "$work/bench.log" >&2; exit 1; }
open=$(sed -n 's/^idle .* open=\([0-9]*\).*/\1/p' "$work/bench.log")

ticks() { sed 's/.*) //' "/proc/$measured/stat" | awk '{ print $12 + $13 }'; }
sleep "$settle"
before=$(ticks)
sleep "$window"
after=$(ticks)
kill -0 "$client_pid" 2>/dev/null || { echo "bench idle ended early:" >&2; cat "$work/bench.log" >&2; exit 1; }
load=$(cut -d' ' -f1 /proc/loadavg)
awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v w="$window" -v n="$open" -v load="$load" 'BEGIN {
    beats = n * w / 25; cpu = t / hz
    printf "window=%ds heartbeats=%d server_cpu=%.2f%% of a core per_heartbeat=%.1f us (%d ticks, load %s)\n",
        w, beats, 100 * cpu / w, 1e6 * cpu / beats, t, load }'
