#!/usr/bin/env bash
# Runs the whole suite against a private redis-server on a free loopback port and a
# private 6-node Redis Cluster, and stops them afterwards whatever happens.
set -euo pipefail
cd "$(dirname "$0")/../.."
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port)
REDIS_DIR=$(mktemp -d /tmp/starling-redis.XXXXXX)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" --save '' --appendonly no \
  --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log"
CLUSTER_DIR=$(mktemp -d /tmp/starling-cluster.XXXXXX)
CLUSTER_PID=""
cleanup() {
  [ -n "$CLUSTER_PID" ] && wait "$CLUSTER_PID" 2>/dev/null   # a start under way ends first
  [ -f "$REDIS_DIR/redis.pid" ] && kill "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null || true
  bash ops/redis/cluster/cluster.sh stop "$CLUSTER_DIR" 2>/dev/null || true
  sleep 0.2; rm -rf "$REDIS_DIR" "$CLUSTER_DIR" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
export STARLING_TEST_REDIS="redis://127.0.0.1:$REDIS_PORT/0"
export STARLING_TEST_REDIS_PORT="$REDIS_PORT"

# A private Redis Cluster too (3 masters + 3 replicas, ops/redis/cluster/cluster.sh, about
# 3 s), started in the background so it comes up while the suite builds. Its 6 ports and
# their bus ports (+10000) lie below the kernel's ephemeral range, so no outgoing
# connection takes one meanwhile; cluster.sh refuses ports in use, and another base is tried.
(
  for _ in $(seq 20); do
    first=$((20000 + RANDOM % 2700))   # nodes 20000-22705, bus 30000-32705
    bash ops/redis/cluster/cluster.sh start "$CLUSTER_DIR" "$first" >"$CLUSTER_DIR/seeds" 2>>"$CLUSTER_DIR/start.log" && exit 0
  done
  exit 1
) &
CLUSTER_PID=$!
echo "building (log: /tmp/starling-build.log)"
swift build --build-tests > /tmp/starling-build.log 2>&1 || { grep -E "error" -A3 /tmp/starling-build.log | head -60; tail -20 /tmp/starling-build.log; exit 1; }
wait "$CLUSTER_PID" || { cat "$CLUSTER_DIR/start.log"; echo "could not start the test Redis Cluster"; exit 1; }
CLUSTER_PID=""
# The masters' URLs (what --redis-cluster takes) and the nodes' directory (DIR/<port>/).
export STARLING_TEST_REDIS_CLUSTER; STARLING_TEST_REDIS_CLUSTER=$(cat "$CLUSTER_DIR/seeds")
export STARLING_TEST_REDIS_CLUSTER_DIR="$CLUSTER_DIR"
echo "redis cluster: $STARLING_TEST_REDIS_CLUSTER"
set +e
# The ops files (nginx, systemd, Prometheus, Grafana, container) against the fresh binary.
bash ops/scripts/check-ops.sh .build/debug/starling
ops_status=$?
# The clients (Python, JavaScript) and docs/openapi.yaml against the same binary.
bash ops/scripts/test-clients.sh .build/debug/starling
clients_status=$?
swift test --skip-build --disable-swift-testing 2>&1 | tee /tmp/starling-test.log
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] && status=$ops_status
[ "$status" -eq 0 ] && status=$clients_status

# ThreadSanitizer: the multi-loop tests again, against a broker built with
# -sanitize=thread (its own build folder); any race report fails the run.
echo "building the broker with ThreadSanitizer (log: /tmp/starling-tsan-build.log)"
if swift build --sanitize=thread --product starling --scratch-path .build-tsan > /tmp/starling-tsan-build.log 2>&1; then
  TSAN_DIR=$(mktemp -d /tmp/starling-tsan.XXXXXX)
  STARLING_BIN="$PWD/.build-tsan/debug/starling" TSAN_OPTIONS="log_path=$TSAN_DIR/race halt_on_error=0" \
    swift test --skip-build --disable-swift-testing --filter 'MultiLoopTests|RaceTests|DrainTests' 2>&1 | tee /tmp/starling-tsan-test.log
  tsan_status=${PIPESTATUS[0]}
  if ls "$TSAN_DIR"/race.* >/dev/null 2>&1; then
    echo "ThreadSanitizer reported races:"; cat "$TSAN_DIR"/race.* | head -80
    tsan_status=1
  else
    echo "ThreadSanitizer: no race reported"
  fi
  rm -rf "$TSAN_DIR"
else
  tail -30 /tmp/starling-tsan-build.log
  tsan_status=1
fi
[ "$status" -eq 0 ] && status=$tsan_status
# One plain closing line: XCTest's last summary, restated.
summary=$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" /tmp/starling-test.log | tail -1)
tsan_summary=$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" /tmp/starling-tsan-test.log 2>/dev/null | tail -1)
total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
failed=$(echo "$summary" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')
if [ -n "$summary" ] && [ -n "$tsan_summary" ]; then
  total=$((total + $(echo "$tsan_summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')))
  failed=$((failed + $(echo "$tsan_summary" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')))
fi
if [ -n "$summary" ]; then echo "tests: $((total - failed)) passed, $failed failed"; fi
exit "$status"
