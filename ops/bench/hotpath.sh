#!/usr/bin/env bash
# ops/bench/hotpath.sh — count, not time, the publish hot path of the many-channels shape
# (2,000 channels × 2 subscribers, 4 publisher connections, pipeline 16; the `channels`
# scenario of run.sh): user-space instructions per publish (valgrind --tool=callgrind) or
# system calls per publish (strace -c -f). Counts hold on a busy machine, where timings
# do not: docs/benchmarks.md, "Hot path".
#
#   ops/bench/hotpath.sh callgrind starling [--threads 2]   # instructions per publish
#   ops/bench/hotpath.sh strace floor                       # system calls per publish
# Servers: starling (release build in $STARLING_SCRATCH or .build) or floor
# (../shared/limits/s2_limit.c, built with gcc -O2). Environment: DURATION (seconds of
# publishing, default 5), RATE (publishes/s asked, default 20000; under callgrind the
# server is the limit and every pipeline stays full), OUT (directory for the raw output),
# CACHESIM=yes (callgrind only: simulate the caches too and print first-level data read
# misses per publish; no process but the server is simulated, so read them as where the
# server's own misses fall, not as the machine's).
#
# Counting covers WINDOW seconds (default 20) in the middle of the publishing phase: from
# 2 s after every subscriber is in and (starling) the first publish was stored
# (callgrind_control -z, or strace attached then) to a
# dump (or strace detached); the publishes are the server's own count over the window
# (the floor has no /metrics: there the subscriber-side count, see below). Long head and idle
# timeouts: under callgrind the 4,000 subscribers take longer to connect than the default
# 10 s head timeout the publishers (connected first) would otherwise get; heartbeats every
# 300 s, not run.sh's 5 s, as callgrind stretches time 40-fold and heartbeats would count
# 40 times over.
#
# The Redis engine (`--redis URL` or `--redis-cluster` among the serve flags) has a periodic
# check on the wall clock: every 500 ms each watched channel that had no notification since
# the last check is read (XRANGE) at 1, 2, 4 ticks apart (RedisStore.tick). At real speed
# every one of the 2,000 channels gets ~5 publishes between two checks, so no channel is
# read; under callgrind the broker publishes ~500/s, a channel gets one every ~4 s, every
# channel looks quiet and the checks, 40 times too frequent for the work done, were a
# quarter of the count. PERIODIC=skip (the default with --redis) leaves out what that
# check costs (callgrind --toggle-collect on RedisStore.tick and on RedisStore.filled, the
# handler of its replies); PERIODIC=count counts everything, as the memory engine does.
# The hiredis parsing of those replies (a few hundred instructions each) still counts.
set -euo pipefail
TOOL=${1:?callgrind or strace}; SERVER=${2:?starling or floor}; shift 2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SCRATCH=${STARLING_SCRATCH:-$ROOT/.build}
BIN="$SCRATCH/release"
WINDOW=${WINDOW:-20} RATE=${RATE:-20000} PERIODIC=${PERIODIC:-skip} CACHESIM=${CACHESIM:-no}
DURATION=$((WINDOW + 15))  # publishing outlasts the counted window on both sides
OUT=${OUT:-$(mktemp -d /tmp/starling-hotpath.XXXXXX)}
mkdir -p "$OUT"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

case "$SERVER" in
  starling) CMD=("$BIN/starling" serve --listen "127.0.0.1:$PORT" --heartbeat 300 --retain-events 100000
                 --max-connections 19900 --log-level warning
                 --head-timeout 600 --idle-timeout 600 "$@"); BODY=() ;;
  floor) FLOOR="$OUT/s2_limit"
         gcc -O2 -o "$FLOOR" "${STARLING_FLOOR_SRC:-$ROOT/../shared/limits/s2_limit.c}"
         CMD=("$FLOOR" --port "$PORT"); BODY=(--body '{payload}') ;;
  *) echo "hotpath.sh: unknown server $SERVER" >&2; exit 64 ;;
esac

# valgrind 3.19 cannot read the DWARF 5 that swiftc writes: count a copy without it (the
# symbol table stays, so the profile still names functions).
TOGGLE=()
if [ "$TOOL" = callgrind ] && [ "$SERVER" = starling ]; then
  objcopy --strip-debug "${CMD[0]}" "$OUT/starling"; CMD[0]="$OUT/starling"
  case " $* " in
    *" --redis"*) if [ "$PERIODIC" = skip ]; then
        # Swift's mangled names: RedisStore is "05RedisB0" in module StarlingStore. A
        # --toggle-collect implies --collect-atstart=no: given after it, yes wins. The
        # "$s" starts the mangled symbol: literal, not a shell expansion.
        # shellcheck disable=SC2016
        TOGGLE=('--toggle-collect=$s13StarlingStore05RedisB0C4tick5nowMs*'
                '--toggle-collect=$s13StarlingStore05RedisB0C6filled*' --collect-atstart=yes)
        echo "PERIODIC=skip: the Redis engine's periodic check is not counted" >&2
      fi ;;
  esac
fi
case "$TOOL" in
  callgrind) env -u STARLING_SCRATCH -u STARLING_FLOOR_SRC valgrind --tool=callgrind --cache-sim="$CACHESIM" --callgrind-out-file="$OUT/callgrind.out" \
               "${TOGGLE[@]}" "${CMD[@]}" 2>"$OUT/server.err" & ;;
  strace) env -u STARLING_SCRATCH -u STARLING_FLOOR_SRC "${CMD[@]}" 2>"$OUT/server.err" & ;;
  *) echo "hotpath.sh: unknown tool $TOOL" >&2; exit 64 ;;
esac
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

"$BIN/starling-load" channels --channels 2000 --subscribers 4000 --publishers 4 --pipeline 16 --rate "$RATE" \
  --duration "$DURATION" --drain 30 --target "127.0.0.1:$PORT" "${BODY[@]}" >"$OUT/load.txt" 2>&1 &
LOAD_PID=$!

metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# Wait until the 4,000 subscribers are in (starling: its subscriber gauge; the floor, which
# subscribes on a connection's first read: open descriptors), then count for WINDOW seconds.
# Starling counts a subscriber before its first read of the store is answered, and under
# callgrind the Redis engine's 4,000 reads (XINFO STREAM each) take seconds: the window
# starts 2 s after the first publish, which the load tool sends once every stream is open.
while :; do
  kill -0 $LOAD_PID 2>/dev/null || { cat "$OUT/load.txt" >&2; exit 1; }
  if [ "$SERVER" = starling ]; then
    [ "$(metric starling_subscribers)" = 4000 ] && [ "$(metric starling_events_published_total)" -gt 0 ] 2>/dev/null && sleep 2 && break
  else [ "$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" -ge 4004 ] && break; fi
  sleep 0.1
done
case "$TOOL" in
  callgrind) callgrind_control -z "$SERVER_PID" >/dev/null ;;
  strace) strace -c -f -p "$SERVER_PID" -o "$OUT/strace.txt" 2>/dev/null & STRACE_PID=$! ;;
esac
[ "$SERVER" = starling ] && P0=$(metric starling_events_published_total)
sleep "$WINDOW"
if [ "$SERVER" = starling ]; then
  # Starling: its own publish count over the window, then a dump (callgrind.out.1).
  P1=$(metric starling_events_published_total)
  case "$TOOL" in
    callgrind) callgrind_control -d "$SERVER_PID" >/dev/null; DUMP="$OUT/callgrind.out.1" ;;
    strace) kill -INT "$STRACE_PID"; wait "$STRACE_PID" || true ;;
  esac
  PUBLISHED=$((P1 - P0))
  kill $SERVER_PID; wait $SERVER_PID 2>/dev/null || true
else
  # The floor has no /metrics: SIGTERM ends the window, and its exit line counts the
  # publishes (all inside the window: the load tool publishes once every subscriber is in).
  [ "$TOOL" = strace ] && { kill -INT "$STRACE_PID"; wait "$STRACE_PID" || true; }
  kill $SERVER_PID; wait $SERVER_PID 2>/dev/null || true
  DUMP="$OUT/callgrind.out"
  PUBLISHED=$(grep -o 'pub_reqs=[0-9]*' "$OUT/server.err" | cut -d= -f2)
fi
wait $LOAD_PID 2>/dev/null || true
trap - EXIT

echo "publishes counted: $PUBLISHED"
if [ "$TOOL" = callgrind ]; then
  IR=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
  echo "instructions (user space): $IR"
  awk -v ir="$IR" -v p="$PUBLISHED" 'BEGIN { printf "instructions per publish: %.0f\n", ir / p }'
  if [ "$CACHESIM" = yes ]; then
    # The totals line lists the counts in the order of the `events:` line.
    awk -v p="$PUBLISHED" '/^events:/ { for (i = 2; i <= NF; i++) if ($i == "D1mr") k = i }
      /^(summary|totals):/ && k { printf "first-level data read misses per publish (simulated): %.1f\n", $k / p; exit }' "$DUMP"
  fi
  echo "profile: callgrind_annotate --inclusive=yes $DUMP | swift demangle --simplified"
else
  cat "$OUT/strace.txt"
  TOTAL=$(awk '$NF == "total" {print $4}' "$OUT/strace.txt")
  awk -v t="$TOTAL" -v p="$PUBLISHED" 'BEGIN { printf "system calls per publish: %.2f\n", t / p }'
fi
echo "raw output in $OUT"
