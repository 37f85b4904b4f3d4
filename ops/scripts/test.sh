#!/usr/bin/env bash
# Runs the whole suite against a private redis-server on a free loopback port, and
# stops that Redis afterwards whatever happens.
set -euo pipefail
cd "$(dirname "$0")/../.."
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port)
REDIS_DIR=$(mktemp -d /tmp/starling-redis.XXXXXX)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" --save '' --appendonly no \
  --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log"
cleanup() { [ -f "$REDIS_DIR/redis.pid" ] && kill "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null || true; rm -rf "$REDIS_DIR"; }
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
export STARLING_TEST_REDIS="redis://127.0.0.1:$REDIS_PORT/0"
export STARLING_TEST_REDIS_PORT="$REDIS_PORT"
swift build --build-tests
swift test --skip-build --parallel --num-workers 2 2>&1 | tee /tmp/starling-test.log | grep -vE '^\[[0-9]+/[0-9]+\]' 
