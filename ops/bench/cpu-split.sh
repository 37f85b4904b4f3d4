#!/usr/bin/env bash
# ops/bench/cpu-split.sh — where a server's CPU goes per delivery on the many-channels shape
# (S2a: 2,000 channels × 2 subscribers, 4 publishers, pipeline 16, 20,000 publishes/s):
# user and kernel microseconds per delivery from /proc/PID/stat over 5 s in the middle of
# a 12 s run, and for starling-redis the redis-server's apart. run.sh gives the totals; this
# says which side (our code, the kernel, Redis) a difference lives in. Server on CPU 0 (with
# its redis-server), client on CPU 1; a quiet machine still matters, as for run.sh.
#
#   ops/bench/cpu-split.sh starling|starling-redis|floor [extra starling serve flags]
#
# Uses the release build in $STARLING_SCRATCH or .build (swift build -c release first) and
# ../shared/limits/s2_limit.c for the floor (gcc). Environment: RATE (default 20000);
# STARLING_SCRATCH and STARLING_FLOOR_SRC are not passed on (starling refuses unknown STARLING_*).
set -euo pipefail
WHAT=${1:?starling, starling-redis or floor}; shift
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN="${STARLING_SCRATCH:-$ROOT/.build}/release"
WORK=$(mktemp -d /tmp/cpu-split.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
BODY=()
REDIS_PID=""
case "$WHAT" in
  floor)
    gcc -O2 -o "$WORK/s2_limit" "${STARLING_FLOOR_SRC:-$ROOT/../shared/limits/s2_limit.c}"
    taskset -c 0 "$WORK/s2_limit" --port "$PORT" 2>"$WORK/server.err" & SERVER_PID=$!
    BODY=(--body '{payload}') ;;
  starling|starling-redis)
    ARGS=(serve --listen "127.0.0.1:$PORT" --heartbeat 5 --retain-events 100000 --max-connections 19900 --log-level warning)
    if [ "$WHAT" = starling-redis ]; then
      RP=$(free_port)
      taskset -c 0 redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
        --daemonize no >"$WORK/redis.log" 2>&1 & REDIS_PID=$!
      PIDS+=("$REDIS_PID")
      for _ in $(seq 50); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
      ARGS+=(--redis "redis://127.0.0.1:$RP/0")
    fi
    taskset -c 0 env -u STARLING_SCRATCH -u STARLING_FLOOR_SRC "$BIN/starling" "${ARGS[@]}" "$@" 2>"$WORK/server.err" & SERVER_PID=$! ;;
  *) echo "cpu-split.sh: unknown server $WHAT" >&2; exit 64 ;;
esac
PIDS+=("$SERVER_PID")
sleep 1
taskset -c 1 "$BIN/starling-load" channels --channels 2000 --subscribers 4000 --publishers 4 --pipeline 16 \
  --rate "${RATE:-20000}" --duration 12 "${BODY[@]}" --target "127.0.0.1:$PORT" >"$WORK/load.txt" & LOAD_PID=$!
ticks() { [ -n "$1" ] && cut -d' ' -f14,15 "/proc/$1/stat" || echo "0 0"; }
sleep 6
read -r su0 ss0 <<<"$(ticks "$SERVER_PID")"; read -r ru0 rs0 <<<"$(ticks "$REDIS_PID")"
sleep 5
read -r su1 ss1 <<<"$(ticks "$SERVER_PID")"; read -r ru1 rs1 <<<"$(ticks "$REDIS_PID")"
wait "$LOAD_PID" || true
DELIVERED=$(sed -nE 's/^ *delivered .*= ([0-9]+)\/s.*/\1/p' "$WORK/load.txt")
[ -n "$DELIVERED" ] || { cat "$WORK/load.txt" >&2; exit 1; }
python3 - "$DELIVERED" "$su0" "$ss0" "$su1" "$ss1" "$ru0" "$rs0" "$ru1" "$rs1" "$(getconf CLK_TCK)" <<'PY'
import sys
dl = float(sys.argv[1]); su0, ss0, su1, ss1, ru0, rs0, ru1, rs1, hz = map(int, sys.argv[2:11])
per = lambda ticks: ticks / hz / 5 / dl * 1e6  # µs of CPU per delivery over the 5 s window
line = f"deliveries/s {dl:.0f}  server: user {per(su1 - su0):.2f} µs  kernel {per(ss1 - ss0):.2f} µs per delivery"
total = (su1 - su0 + ss1 - ss0 + ru1 - ru0 + rs1 - rs0) / hz / 5
if ru1 or rs1: line += f"  redis-server: {per(ru1 - ru0 + rs1 - rs0):.2f} µs"
print(line + f"  deliveries per server CPU-s {dl / total:.0f}")
PY
grep -E "correctness|FAILED" "$WORK/load.txt" || true
