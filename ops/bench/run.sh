#!/usr/bin/env bash
# ops/bench/run.sh — Starling, Nchan and the floor side by side, with the same load client (SPEC §9).
#
# Installs what is missing (nginx, libnginx-mod-nchan, redis-server when the broker has
# --redis, gcc for the floor), builds Starling and starling-load in release mode, then for
# each scenario and each run starts a fresh server pinned to its cores, runs starling-load
# pinned to the others, and finally prints one table (medians over the runs, min–max beside
# each) and, per scenario, each server's share of the floor and ratio to Nchan. Every server
# runs under a private temp prefix on a free loopback port; nothing system-wide is touched.
#
#   ops/bench/run.sh            # full: 3 runs of each scenario, 10 s each (~15 min)
#   ops/bench/run.sh --quick    # 1 run, 3 s each (a couple of minutes)
# Options: --runs N  --duration S  --servers "starling nchan starling-redis nchan-redis floor"
#          (nchan-redis: Nchan with its Redis storage on a private redis-server, which is
#          measured with it, as starling-redis's)
#          (also starling-redis-cluster and starling-redis-cluster-wait: the broker on a
#          local 3-master + 3-replica Redis Cluster, ops/redis/cluster/cluster.sh, the
#          second with --redis-wait 1; every redis-server's CPU counts as the server's)
#          (also starling-paced: the broker with --turn-pace, and starling-redis-paced: the
#          Redis engine with --redis-pace, each as --pace gives it, default 1ms; docs/operations.md;
#          and starling-redis-unpaced: the Redis engine with --redis-pace 0, as before its default 1ms;
#          and starling-auth: the broker with a JWT key, every request of the load carrying a
#          bearer token for every channel, as workers and browsers send one in production)
#          --scenarios "broadcast-1k broadcast-10k channels channels-flat idle replay slow-base slow"
#          (also channels-light: the channels shape at 2,000 publishes/s, where nothing
#          saturates, for publish round trips, e.g. with and without --redis-wait)
#          (also channels-workers: the channels shape from 200 unpipelined publisher
#          connections at 100 publishes/s each, as workers publishing tokens send them)
#          --threads N (starling --threads N; Nchan worker_processes N; default 1)
#          --pace T (the --turn-pace of starling-paced, the --redis-pace of starling-redis-paced; default 1ms)
#          (replay: 10 subscribers read 100,000 events, 20,000 with --quick: server CPU
#          time comes in 10 ms ticks, and 200,000 events were only 9 of them on the memory
#          engine, so its figures came in steps of ~10 %)
#          --procs N (starling-load --procs N: client processes)
#          --server-cpus LIST --client-cpus LIST (taskset lists; default: the server on the
#          first N cores, the client on the rest, or both unpinned when nothing is left)
#          --out FILE (also write the tables as markdown)  --keep (keep the temp dir)
# Environment: STARLING_SCRATCH (SwiftPM scratch path, default <repo>/.build);
#              STARLING_FLOOR_SRC (the floor's source, default <repo>/../shared/limits/s2_limit.c).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/ops/bench"
SCRATCH=${STARLING_SCRATCH:-$ROOT/.build}
FLOOR_SRC=${STARLING_FLOOR_SRC:-$ROOT/../shared/limits/s2_limit.c}
PACE=1ms RUNS=3 DURATION=10 HOLD=15 REPLAY=100000 KEEP=0 OUT="" THREADS=1 PROCS=1 SERVER_CPUS="" CLIENT_CPUS=""
SERVERS="starling nchan starling-redis"
SCENARIOS="broadcast-1k broadcast-10k channels channels-flat idle replay slow-base slow"

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) RUNS=1 DURATION=3 HOLD=5 REPLAY=20000 ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --pace) PACE=$2; shift ;;
    --procs) PROCS=$2; shift ;;
    --server-cpus) SERVER_CPUS=$2; shift ;;
    --client-cpus) CLIENT_CPUS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
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
if [[ " $SERVERS " == *" floor "* ]]; then
  [ -f "$FLOOR_SRC" ] || { echo "run.sh: the floor's source is not at $FLOOR_SRC (set STARLING_FLOOR_SRC)" >&2; exit 66; }
  command -v gcc >/dev/null || need+=(gcc)
fi
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

# ---- cores: the server on the first THREADS cores, the load tool on the rest ------
CORES=$(nproc)
if [ -z "$SERVER_CPUS" ] && [ -z "$CLIENT_CPUS" ] && [ "$CORES" -gt "$THREADS" ]; then
  SERVER_CPUS="0-$((THREADS - 1))" CLIENT_CPUS="$THREADS-$((CORES - 1))"
fi
SERVER_PIN=() LOAD_PIN=()
[ -n "$SERVER_CPUS" ] && SERVER_PIN=(taskset -c "$SERVER_CPUS")
[ -n "$CLIENT_CPUS" ] && LOAD_PIN=(taskset -c "$CLIENT_CPUS")
say "server cores: ${SERVER_CPUS:-all (unpinned)}; client cores: ${CLIENT_CPUS:-all (unpinned)}; $THREADS server thread(s), $PROCS client process(es)"
# Pinning keeps the run's processes apart, not other work off their cores: every report
# says how much CPU other processes took on them ("others %").
read -r LOAD1 _ </proc/loadavg
if awk -v l="$LOAD1" 'BEGIN { exit !(l > 0.5) }'; then
  say "warning: load average $LOAD1 before the first run: the machine is not quiet; watch the 'others %' column"
fi

WORK=$(mktemp -d /tmp/starling-bench.XXXXXX)
mkdir -p "$WORK/results"
SERVER_PID="" REDIS_PID="" PIDS=() CLUSTER_DIR="" CLUSTER_SEEDS=""
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
  for p in "${PIDS[@]:-}"; do if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi; done
  for p in "${PIDS[@]:-}"; do if [ -n "$p" ]; then wait "$p" 2>/dev/null || true; fi; done
  if [ -n "$CLUSTER_DIR" ]; then bash "$ROOT/ops/redis/cluster/cluster.sh" stop "$CLUSTER_DIR" 2>/dev/null || true; fi
  PIDS=() SERVER_PID="" REDIS_PID="" ALSO_PIDS=() CLUSTER_DIR="" CLUSTER_SEEDS=""
}
ALSO_PIDS=()  # processes whose CPU and RSS count as the server's (its Redis, more nginx workers)

has_redis_engine() { "$BIN/starling" serve --help 2>&1 | grep -- '--redis' >/dev/null; }
has_redis_cluster() { "$BIN/starling" serve --help 2>&1 | grep -- '--redis-cluster' >/dev/null; }
has_threads() { "$BIN/starling" serve --help 2>&1 | grep -- '--threads' >/dev/null; }  # not -q: an early exit is a SIGPIPE under pipefail

STARLING_FLAGS=(--heartbeat 5 --retain-events 100000 --max-connections 19900 --log-level warning)

start_starling() {  # [extra flags]
  PORT=$(free_port)
  local threads=()
  if has_threads; then threads=(--threads "$THREADS")
  elif [ "$THREADS" != 1 ]; then echo "run.sh: this starling has no --threads" >&2; return 1; fi
  "${SERVER_PIN[@]}" env -u STARLING_SCRATCH -u STARLING_FLOOR_SRC "$BIN/starling" serve --listen "127.0.0.1:$PORT" "${STARLING_FLAGS[@]}" "${threads[@]}" "$@" \
    >"$WORK/starling.out" 2>"$WORK/starling.err" &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  wait_port "$PORT" "$SERVER_PID" || { cat "$WORK/starling.err" >&2; return 1; }
}

start_redis() {
  REDIS_PORT=$(free_port)
  mkdir -p "$WORK/redis"
  "${SERVER_PIN[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK/redis" --daemonize no >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!; PIDS+=("$REDIS_PID"); ALSO_PIDS+=("$REDIS_PID")
  wait_port "$REDIS_PORT" "$REDIS_PID"
}

# A fresh 3-master + 3-replica Redis Cluster (ops/redis/cluster/cluster.sh) on free
# loopback ports below the ephemeral range, its six redis-server processes pinned to the
# server's cores and measured with the broker (replicas too: replication is part of the cost).
start_redis_cluster() {
  local dir="$WORK/cluster" first p pid
  for _ in $(seq 20); do
    first=$((20000 + RANDOM % 2700))
    CLUSTER_SEEDS=$(bash "$ROOT/ops/redis/cluster/cluster.sh" start "$dir" "$first" 2>>"$WORK/cluster.log") && break
    CLUSTER_SEEDS=""
  done
  [ -n "$CLUSTER_SEEDS" ] || { tail -20 "$WORK/cluster.log" >&2; return 1; }
  CLUSTER_DIR=$dir
  for p in $(seq "$first" $((first + 5))); do
    pid=$(cat "$dir/$p/redis.pid")
    if [ -n "$SERVER_CPUS" ]; then taskset -apc "$SERVER_CPUS" "$pid" >/dev/null; fi
    ALSO_PIDS+=("$pid")
  done
}

start_nchan() {  # [redis port: Nchan with its Redis storage]
  PORT=$(free_port)
  local upstream="" pass=""
  if [ -n "${1:-}" ]; then
    upstream="upstream bench_redis { nchan_redis_server redis://127.0.0.1:$1; }" pass=" nchan_redis_pass bench_redis;"
  fi
  local dir="$WORK/nchan"
  rm -rf "$dir"; mkdir -p "$dir"
  local user=""; [ "$(id -u)" = 0 ] && user="user root;"
  sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$PORT|g" -e "s|@MODULE@|$NCHAN_MODULE|g" -e "s|@USER@|$user|g" \
    -e "s|@WORKERS@|$THREADS|g" -e "s|@REDIS_UPSTREAM@|$upstream|g" -e "s|@REDIS_PASS@|$pass|g" "$HERE/nchan.conf.template" >"$dir/nginx.conf"
  "${SERVER_PIN[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>"$dir/stderr" &
  local master=$!; PIDS+=("$master")
  wait_port "$PORT" "$master" || { cat "$dir/stderr" "$dir/error.log" >&2; return 1; }
  # The workers do the work: their CPU and RSS are what we measure (the first one is the
  # "server", the others are counted with it).
  local workers=()
  for _ in $(seq 1 50); do
    mapfile -t workers < <(pgrep -P "$master" || true)
    [ "${#workers[@]}" -ge "$THREADS" ] && break; sleep 0.1
  done
  SERVER_PID=${workers[0]:-}
  ALSO_PIDS+=("${workers[@]:1}")
}

FLOOR_BIN=""
start_floor() {
  if [ -z "$FLOOR_BIN" ]; then
    FLOOR_BIN="$WORK/s2_limit"  # built into the temp dir, never into the repository
    gcc -O2 -o "$FLOOR_BIN" "$FLOOR_SRC"
  fi
  PORT=$(free_port)
  "${SERVER_PIN[@]}" "$FLOOR_BIN" --port "$PORT" 2>"$WORK/floor.err" &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  wait_port "$PORT" "$SERVER_PID" || { cat "$WORK/floor.err" >&2; return 1; }
}

start_server() {
  case "$1" in
    starling) start_starling ;;
    starling-redis) start_redis && start_starling --redis "redis://127.0.0.1:$REDIS_PORT/0" ;;
    starling-paced) start_starling --turn-pace "$PACE" ;;
    starling-auth) start_starling --jwt-secret-file "$WORK/jwt.secret" ;;
    starling-redis-paced) start_redis && start_starling --redis "redis://127.0.0.1:$REDIS_PORT/0" --redis-pace "$PACE" ;;
    starling-redis-unpaced) start_redis && start_starling --redis "redis://127.0.0.1:$REDIS_PORT/0" --redis-pace 0 ;;
    starling-redis-cluster) start_redis_cluster && start_starling --redis-cluster "$CLUSTER_SEEDS" ;;
    starling-redis-cluster-wait) start_redis_cluster && start_starling --redis-cluster "$CLUSTER_SEEDS" --redis-wait 1 ;;
    nchan) start_nchan ;;
    nchan-redis) start_redis && start_nchan "$REDIS_PORT" ;;
    floor) start_floor ;;
  esac
}

# The floor speaks only the many-channels shape (GET and POST /v1/channels/{ch}/events, no
# history, no heartbeats), single-threaded: it runs the channels scenarios only.
server_runs() {  # server scenario
  case "$1" in
    floor) case "$2" in channels|channels-flat|channels-light|channels-workers) return 0 ;; *) return 1 ;; esac ;;
    *) return 0 ;;
  esac
}

# Scenario → starling-load arguments (the same for every server).
scenario_args() {
  local src="--sources 127.0.0.2-127.0.0.9"
  case "$1" in
    broadcast-1k)  echo "broadcast --subscribers 1000 --duration $DURATION" ;;
    broadcast-10k) echo "broadcast --subscribers 10000 --duration $DURATION --ramp 5000 $src" ;;
    channels)      echo "channels --channels 2000 --subscribers 4000 --publishers 4 --pipeline 16 --rate 20000 --duration $DURATION" ;;
    channels-flat) echo "channels --channels 2000 --subscribers 4000 --publishers 4 --pipeline 32 --duration $DURATION" ;;
    channels-light) echo "channels --channels 2000 --subscribers 4000 --publishers 4 --pipeline 16 --rate 2000 --duration $DURATION" ;;
    channels-workers) echo "channels --channels 2000 --subscribers 4000 --publishers 200 --pipeline 1 --rate 20000 --duration $DURATION" ;;
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
    nchan|nchan-redis)
      if [ "$2" = replay ]; then echo "--publish-url /pub/{ch} --subscribe-url /replay/{ch} --body {payload} --replay-from none"
      else echo "--publish-url /pub/{ch} --subscribe-url /sub/{ch} --body {payload}"; fi ;;
    floor) echo "--body {payload}" ;;  # no "data" string in the body: the floor sends the raw body as the data
    *) echo "" ;;
  esac
}

if [[ " $SERVERS " == *"-paced "* ]] && ! "$BIN/starling" serve --help 2>&1 | grep -- '--turn-pace' >/dev/null; then
  say "this starling has no --turn-pace yet: skipping starling-paced and starling-redis-paced"
  SERVERS=$(tr ' ' '\n' <<<"$SERVERS" | grep -v -- '-paced$' | paste -sd' ' -)
fi
if [[ " $SERVERS " == *" starling-redis-"*"paced "* ]] && ! "$BIN/starling" serve --help 2>&1 | grep -- '--redis-pace' >/dev/null; then
  say "this starling has no --redis-pace yet: skipping starling-redis-paced and starling-redis-unpaced"
  SERVERS=$(tr ' ' '\n' <<<"$SERVERS" | grep -vx -- 'starling-redis-paced\|starling-redis-unpaced' | paste -sd' ' -)
fi

if [[ " $SERVERS " == *" starling-redis "* ]] && ! has_redis_engine; then
  say "this starling has no --redis yet: skipping starling-redis"
  SERVERS=${SERVERS//starling-redis/}
fi

if [[ " $SERVERS " == *" starling-redis-cluster"* ]] && ! has_redis_cluster; then
  say "this starling has no --redis-cluster yet: skipping starling-redis-cluster and starling-redis-cluster-wait"
  SERVERS=$(tr ' ' '\n' <<<"$SERVERS" | grep -v '^starling-redis-cluster' | paste -sd' ' -)
fi

if [[ " $SERVERS " == *" floor "* ]] && [ "$THREADS" != 1 ]; then
  say "the floor is single-threaded: it runs with one thread whatever --threads says"
fi

# starling-auth: one key for the run, one token (every channel, both ways) for the load.
AUTH_TOKEN=""
if [[ " $SERVERS " == *" starling-auth "* ]]; then
  head -c 48 /dev/urandom | base64 | tr -d '\n' >"$WORK/jwt.secret"
  AUTH_TOKEN=$("$BIN/starling" token --secret-file "$WORK/jwt.secret" --publish '*' --subscribe '*' --ttl 24h)
fi

failures=0
for scenario in $SCENARIOS; do
  for server in $SERVERS; do
    if ! server_runs "$server" "$scenario"; then say "$scenario: not run on $server"; continue; fi
    for run in $(seq 1 "$RUNS"); do
      say "$scenario on $server, run $run/$RUNS"
      start_server "$server"
      also=()
      for p in "${ALSO_PIDS[@]:-}"; do [ -n "$p" ] && also+=(--also-measure-pid "$p"); done
      [ "$server" = starling-auth ] && also+=(--header "Authorization: Bearer $AUTH_TOKEN")
      # shellcheck disable=SC2046  # the argument lists are word-split on purpose
      if ! "${LOAD_PIN[@]}" "$BIN/starling-load" $(scenario_args "$scenario") $(target_args "$server" "$scenario") \
          --procs "$PROCS" --target "127.0.0.1:$PORT" --server-pid "$SERVER_PID" "${also[@]}" \
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
echo "cores: server ${SERVER_CPUS:-unpinned}, client ${CLIENT_CPUS:-unpinned}; --threads $THREADS, --procs $PROCS" | tee -a ${OUT:+"$OUT"}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(uname -sr); nginx $(nginx -v 2>&1 | cut -d/ -f2); fd limit $(ulimit -Hn)"
[ "$failures" = 0 ] || { say "$failures run(s) failed: loss, duplicates or reordering, or nothing measured (see their FAILED lines)"; exit 1; }
