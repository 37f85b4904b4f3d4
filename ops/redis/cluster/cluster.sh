#!/usr/bin/env bash
# A local Redis Cluster for Starling: 6 redis-server nodes (3 masters + 3 replicas) on
# loopback ports FIRST_PORT..FIRST_PORT+5 (cluster bus: each port + 10000), each in its
# own directory DIR/<port>/ rendered from node.conf.template.
#
#   ops/redis/cluster/cluster.sh start DIR FIRST_PORT   # prints the seed list (the masters)
#   ops/redis/cluster/cluster.sh stop DIR               # stops every node started in DIR
#   ops/redis/cluster/cluster.sh seeds DIR              # the seed list of a running cluster
#
# `start` makes a new cluster: it first stops whatever runs from DIR and removes the node
# directories there (DIR/<port>/ holding a redis.conf), starts the 6 nodes, joins them with `redis-cli --cluster create
# --cluster-replicas 1 --cluster-yes`, and waits until every node reports cluster_state:ok
# with all 16384 slots served, 6 known nodes and every replica in sync. Then it prints one
# line on stdout, the masters' URLs comma-separated, what `starling serve --redis-cluster`
# takes:  redis://127.0.0.1:7000,redis://127.0.0.1:7001,redis://127.0.0.1:7002
# Progress and errors go to stderr. A start that fails stops what it started and exits 1.
#
# `stop` is idempotent and works on a half-started cluster: it stops every node whose
# directory is in DIR (by its pid file, else by asking the port for its process_id), waits
# for them to exit (SIGKILL after 5 s) and leaves DIR (logs, nodes.conf) in place.
#
# Environment: REDIS_SERVER, REDIS_CLI (default: from PATH), CLUSTER_BIND (default
# 127.0.0.1), CLUSTER_NODE_TIMEOUT (ms, overrides the template's cluster-node-timeout).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TEMPLATE="$HERE/node.conf.template"
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
BIND=${CLUSTER_BIND:-127.0.0.1}
NODES=6

say() { echo "cluster.sh: $*" >&2; }
usage() { sed -n '6,8p' "$0" | sed 's/^# *//' >&2; exit 64; }
cli() { "$REDIS_CLI" -h "$BIND" -p "$@"; }

# The pid of the node with directory $1 (its pid file, else the port's own INFO), or nothing.
node_pid() {
  local dir=$1 pid="" port
  [ -f "$dir/redis.pid" ] && pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
  if [ -z "$pid" ] || ! is_redis "$pid"; then
    pid=""
    port=$(sed -n 's/^port //p' "$dir/redis.conf" 2>/dev/null || true)
    if [ -n "$port" ]; then
      # Only when the process listening there is the node of this directory.
      local info
      info=$(cli "$port" INFO server 2>/dev/null | tr -d '\r' || true)
      if grep -qx "config_file:$dir/redis.conf" <<<"$info"; then
        pid=$(sed -n 's/^process_id://p' <<<"$info")
      fi
    fi
  fi
  [ -n "$pid" ] && is_redis "$pid" && echo "$pid"
  return 0
}
# The ports among FIRST..+5 and their bus ports that cannot be bound now (python3 binds
# each; without python3 nothing is checked and a taken port fails the node's start).
ports_taken() {
  command -v python3 >/dev/null || return 0
  python3 - "$BIND" "$1" "$NODES" <<'PY'
import socket, sys
host, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
taken = []
for p in [first + i for i in range(n)] + [first + 10000 + i for i in range(n)]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis-server binds
    try:
        s.bind((host, p))
    except OSError:
        taken.append(str(p))
    finally:
        s.close()
print(" ".join(taken))
PY
}
is_redis() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q redis-server; }

stop() {
  local dir=$1 d pid pids=()
  [ -d "$dir" ] || return 0
  for d in "$dir"/*/; do
    d=${d%/}
    [ -f "$d/redis.conf" ] || continue
    pid=$(node_pid "$d")
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; pids+=("$pid"); fi
  done
  local left=("${pids[@]}") p
  for _ in $(seq 50); do
    [ ${#left[@]} -eq 0 ] && break
    sleep 0.1
    local still=()
    for p in "${left[@]}"; do is_redis "$p" && still+=("$p"); done
    left=("${still[@]}")
  done
  for p in "${left[@]}"; do say "node pid $p did not exit: SIGKILL"; kill -9 "$p" 2>/dev/null || true; done
  for d in "$dir"/*/; do rm -f "${d%/}/redis.pid"; done
  [ ${#pids[@]} -gt 0 ] && say "stopped ${#pids[@]} node(s) in $dir"
  return 0
}

# Every node answers cluster_state:ok, all slots served, 6 nodes known, replicas in sync.
healthy() {
  local port info repl
  for port in "$@"; do
    info=$(cli "$port" CLUSTER INFO 2>/dev/null | tr -d '\r') || return 1
    grep -qx 'cluster_state:ok' <<<"$info" || return 1
    grep -qx 'cluster_slots_ok:16384' <<<"$info" || return 1
    grep -qx "cluster_known_nodes:$NODES" <<<"$info" || return 1
    repl=$(cli "$port" INFO replication 2>/dev/null | tr -d '\r') || return 1
    if grep -qx 'role:slave' <<<"$repl"; then grep -qx 'master_link_status:up' <<<"$repl" || return 1; fi
  done
}

# The masters' URLs, from the node at $1's view of the cluster.
seeds() {
  cli "$1" CLUSTER NODES | tr -d '\r' | awk '$3 ~ /master/ && $3 !~ /fail/ && NF > 8 { split($2, a, "@"); print a[1] }' \
    | sort -t: -k2 -n | sed 's#^#redis://#' | paste -sd, -
}

start() {
  local dir=$1 first=$2 ports=() port d
  case $first in ''|*[!0-9]*) say "FIRST_PORT must be a number"; exit 64 ;; esac
  if [ "$first" -lt 1 ] || [ $((first + NODES - 1 + 10000)) -gt 65535 ]; then
    say "ports $first..+5 and their bus ports (+10000) must fit below 65536"; exit 64
  fi
  [ -f "$TEMPLATE" ] || { say "no $TEMPLATE"; exit 66; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  stop "$dir"
  # A new cluster: no node directory of an earlier one stays (other ports, old state).
  for d in "$dir"/*/; do
    d=${d%/}
    case ${d##*/} in *[!0-9]*) continue ;; esac
    [ -f "$d/redis.conf" ] && rm -rf "$d"
  done
  local taken
  taken=$(ports_taken "$first") || true
  [ -z "$taken" ] || { say "ports in use on $BIND: $taken (the nodes need $first..$((first + NODES - 1)) and each + 10000)"; exit 1; }
  for i in $(seq 0 $((NODES - 1))); do
    port=$((first + i)); ports+=("$port"); d="$dir/$port"
    mkdir -p "$d"
    rm -f "$d/nodes.conf" "$d/dump.rdb" "$d/redis.log" "$d"/temp-*.rdb
    sed -e "s#@PORT@#$port#g" -e "s#@DIR@#$d#g" -e "s#@BIND@#$BIND#g" "$TEMPLATE" >"$d/redis.conf"
    [ -n "${CLUSTER_NODE_TIMEOUT:-}" ] && echo "cluster-node-timeout $CLUSTER_NODE_TIMEOUT" >>"$d/redis.conf"
  done
  # From here on a failure stops what was started.
  abort() { say "$1"; say "start failed; stopping the nodes in $dir"; stop "$dir"; exit 1; }
  for port in "${ports[@]}"; do
    "$REDIS_SERVER" "$dir/$port/redis.conf" >&2 || abort "redis-server on port $port did not start: $(tail -3 "$dir/$port/redis.log" 2>/dev/null)"
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 100); do
      [ "$(cli "$port" PING 2>/dev/null)" = PONG ] && break
      # a daemonized node that died (a port taken meanwhile) leaves no process behind
      [ -f "$dir/$port/redis.pid" ] && ! is_redis "$(cat "$dir/$port/redis.pid")" && break
      sleep 0.05
    done
    [ "$(cli "$port" PING 2>/dev/null)" = PONG ] || abort "node $port does not answer PING: $(tail -3 "$dir/$port/redis.log" 2>/dev/null)"
  done
  local addrs=()
  for port in "${ports[@]}"; do addrs+=("$BIND:$port"); done
  "$REDIS_CLI" --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
    || abort "redis-cli --cluster create failed: $(tail -20 "$dir/create.log")"
  local ok=0
  for _ in $(seq 300); do
    if healthy "${ports[@]}"; then ok=1; break; fi
    sleep 0.1
  done
  if [ $ok = 0 ]; then
    for port in "${ports[@]}"; do
      say "  $port: $(cli "$port" CLUSTER INFO 2>&1 | tr -d '\r' | grep -E 'cluster_state|slots_ok|known_nodes' | paste -sd' ' -)"
    done
    abort "the cluster is not healthy after 30 s"
  fi
  local list
  list=$(seeds "$first")
  [ "$(tr ',' '\n' <<<"$list" | wc -l)" = 3 ] || abort "expected 3 masters, got: $list"
  say "cluster up in $dir: masters $list"
  echo "$list"
}

case ${1:-} in
  start) [ $# -eq 3 ] || usage; start "$2" "$3" ;;
  stop) [ $# -eq 2 ] || usage; stop "$2" ;;
  seeds)
    [ $# -eq 2 ] || usage
    for c in "$2"/*/redis.conf; do
      [ -f "$c" ] || continue
      p=$(sed -n 's/^port //p' "$c")
      if [ "$(cli "$p" PING 2>/dev/null)" = PONG ]; then seeds "$p"; exit 0; fi
    done
    say "no node of $2 answers"; exit 1 ;;
  *) usage ;;
esac
