#!/usr/bin/env bash
# ops/bench/run.sh — Starling and Nchan side by side, with the same load client (SPEC §9).
#
# Installs what is missing (nginx, libnginx-mod-nchan, redis-server when the broker has
# --redis), builds Starling and starling-load in release mode, then for each scenario and
# each run starts a fresh server pinned to one core, runs starling-load pinned to another,
# and finally prints one table (medians over the runs). Every server runs under a private
# temp prefix on a free loopback port; nothing system-wide is configured or started.
#
#   ops/bench/run.sh            # full: 3 runs of each scenario, 10 s each (~15 min)
#   ops/bench/run.sh --quick    # 1 run, 3 s each (a couple of minutes)
# Options: --runs N  --duration S  --servers "starling nchan starling-redis"
#          --scenarios "broadcast-1k broadcast-10k channels idle replay slow-base slow"
#          --out FILE (also write the table as markdown)  --keep (keep the temp dir)
# Environment: STARLING_SCRATCH (SwiftPM scratch path, default <repo>/.build).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/ops/bench"
SCRATCH=${STARLING_SCRATCH:-$ROOT/.build}
RUNS=3 DURATION=10 HOLD=15 REPLAY=20000 KEEP=0 OUT=""
SERVERS="starling nchan starling-redis"
SCENARIOS="broadcast-1k broadcast-10k channels idle replay slow-base slow"

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) RUNS=1 DURATION=3 HOLD=5 REPLAY=20000 ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 64 ;;
  esac
  shift
done

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ---- what is missing -------------------------------------------------------------
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
need=()
command -v nginx >/dev/null || need+=(nginx)
[ -f "$NCHAN_MODULE" ] || need+=(libnginx-mod-nchan)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null \
    || { as_root apt-get update >/dev/null; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null; }
fi

# ---- build -----------------------------------------------------------------------
say "building starling and starling-load (release) in $SCRATCH"
(cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH" --product starling >&2 \
            && swift build -c release --scratch-path "$SCRATCH" --product starling-load >&2)
BIN="$SCRATCH/release"

# ---- cores: server on the first, load tool on the second -------------------------
if [ "$(nproc)" -ge 2 ]; then SERVER_PIN=(taskset -c 0) LOAD_PIN=(taskset -c 1)
else SERVER_PIN=() LOAD_PIN=(); say "one core only: no pinning"; fi

WORK=$(mktemp -d /tmp/starling-bench.XXXXXX)
mkdir -p "$WORK/results"
SERVER_PID="" REDIS_PID="" PIDS=()
cleanup() {
  stop_server
  if [ "$KEEP" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {  # port, pid to watch
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

stop_server() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  PIDS=() SERVER_PID="" REDIS_PID=""
}

has_redis_engine() { "$BIN/starling" serve --help 2>&1 | grep -q -- '--redis'; }

STARLING_FLAGS=(--heartbeat 5 --retain-events 100000 --max-connections 19900 --log-level warning)

start_starling() {  # [extra flags]
  PORT=$(free_port)
  "${SERVER_PIN[@]}" "$BIN/starling" serve --listen "127.0.0.1:$PORT" "${STARLING_FLAGS[@]}" "$@" \
    >"$WORK/starling.out" 2>"$WORK/starling.err" &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  wait_port "$PORT" "$SERVER_PID" || { cat "$WORK/starling.err" >&2; return 1; }
}

start_redis() {
  REDIS_PORT=$(free_port)
  mkdir -p "$WORK/redis"
  "${SERVER_PIN[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK/redis" --daemonize no >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!; PIDS+=("$REDIS_PID")
  wait_port "$REDIS_PORT" "$REDIS_PID"
}

start_nchan() {
  PORT=$(free_port)
  local dir="$WORK/nchan"
  rm -rf "$dir"; mkdir -p "$dir"
  local user=""; [ "$(id -u)" = 0 ] && user="user root;"
  sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$PORT|g" -e "s|@MODULE@|$NCHAN_MODULE|g" -e "s|@USER@|$user|g" \
    "$HERE/nchan.conf.template" >"$dir/nginx.conf"
  "${SERVER_PIN[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>"$dir/stderr" &
  local master=$!; PIDS+=("$master")
  wait_port "$PORT" "$master" || { cat "$dir/stderr" "$dir/error.log" >&2; return 1; }
  # The single worker does the work: its CPU and RSS are what we measure.
  for _ in $(seq 1 50); do SERVER_PID=$(pgrep -P "$master" | head -1 || true); [ -n "$SERVER_PID" ] && break; sleep 0.1; done
}

start_server() {
  case "$1" in
    starling) start_starling ;;
    starling-redis) start_redis && start_starling --redis "redis://127.0.0.1:$REDIS_PORT/0" ;;
    nchan) start_nchan ;;
  esac
}

# Scenario → starling-load arguments (the same for every server).
scenario_args() {
  local src="--sources 127.0.0.2-127.0.0.9"
  case "$1" in
    broadcast-1k)  echo "broadcast --subscribers 1000 --duration $DURATION" ;;
    broadcast-10k) echo "broadcast --subscribers 10000 --duration $DURATION --ramp 5000 $src" ;;
    channels)      echo "channels --channels 2000 --subscribers 4000 --publishers 4 --rate 20000 --duration $DURATION" ;;
    idle)          echo "idle --subscribers 19000 --duration $HOLD --ramp 5000 $src" ;;
    replay)        echo "replay --subscribers 10 --replay-events $REPLAY --duration 30" ;;
    slow-base)     echo "slow --subscribers 100 --slow 0 --rate 300 --payload 1000 --duration $DURATION" ;;
    slow)          echo "slow --subscribers 110 --slow 10 --rate 300 --payload 1000 --duration $DURATION" ;;
    *) echo "run.sh: unknown scenario $1" >&2; return 1 ;;
  esac
}

# Server → URL/body templates (Nchan: POST /pub/{ch} with the raw data, GET /sub/{ch}).
target_args() {
  case "$1" in
    nchan)
      if [ "$2" = replay ]; then echo "--publish-url /pub/{ch} --subscribe-url /replay/{ch} --body {payload} --replay-from none"
      else echo "--publish-url /pub/{ch} --subscribe-url /sub/{ch} --body {payload}"; fi ;;
    *) echo "" ;;
  esac
}

if [[ " $SERVERS " == *" starling-redis "* ]] && ! has_redis_engine; then
  say "this starling has no --redis yet: skipping starling-redis"
  SERVERS=${SERVERS//starling-redis/}
fi

failures=0
for scenario in $SCENARIOS; do
  for server in $SERVERS; do
    for run in $(seq 1 "$RUNS"); do
      say "$scenario on $server, run $run/$RUNS"
      start_server "$server"
      # shellcheck disable=SC2046  # the argument lists are word-split on purpose
      if ! "${LOAD_PIN[@]}" "$BIN/starling-load" $(scenario_args "$scenario") $(target_args "$server" "$scenario") \
          --target "127.0.0.1:$PORT" --server-pid "$SERVER_PID" ${REDIS_PID:+--also-measure-pid "$REDIS_PID"} \
          --output "$WORK/results/$server.$scenario.$run.json" >"$WORK/results/$server.$scenario.$run.txt"; then
        failures=$((failures + 1))
        say "starling-load reported a failure:"; cat "$WORK/results/$server.$scenario.$run.txt" >&2
      fi
      stop_server
    done
  done
done

say "results"
python3 "$HERE/table.py" "$WORK/results" | tee ${OUT:+"$OUT"}
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(uname -sr); nginx $(nginx -v 2>&1 | cut -d/ -f2); fd limit $(ulimit -Hn)"
[ "$failures" = 0 ] || { say "$failures run(s) reported loss, duplicates, reordering or no connection"; exit 1; }
