#!/usr/bin/env bash
# Tests the clients against a real broker binary, on the memory and Redis engines:
#   - the Python package clients/python and the examples/ (pytest; the example page in
#     headless Chromium),
#   - the JavaScript module clients/js (node --test),
#   - docs/openapi.yaml against the running broker (schemathesis: no 5xx, every status,
#     content type, header and body as described).
#
#   ops/scripts/test-clients.sh [STARLING_BINARY]     (default: .build/debug/starling)
#
# Needs STARLING_TEST_REDIS and STARLING_TEST_REDIS_CLUSTER (ops/scripts/test.sh starts a
# private Redis and a private Redis Cluster and sets them).
# Installs what it needs: python3 and its venv module, nodejs when `node` is missing and
# chromium (Debian packages); a virtualenv ($STARLING_CLIENTS_VENV, default
# /tmp/starling-clients-venv) with ./clients/python[test], examples/requirements.txt and
# schemathesis from PyPI. Ends with one plain line
# `clients: N passed, M failed` and exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${1:-.build/debug/starling}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
export STARLING_BIN=$BIN
VENV=${STARLING_CLIENTS_VENV:-/tmp/starling-clients-venv}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/starling-clients.XXXXXX")
PIDS=()
CHROMIUM_PID=""
cleanup() {
  [ -n "$CHROMIUM_PID" ] && wait "$CHROMIUM_PID" 2>/dev/null  # never leave apt half done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

passed=0
failed=0
finish() { echo "clients: $passed passed, $failed failed"; [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]; exit $?; }
broken() { echo "FAIL: $1"; failed=$((failed + 1)); }

[ -x "$BIN" ] || { broken "no broker binary at $BIN (build it, or pass its path)"; finish; }
[ -n "${STARLING_TEST_REDIS:-}" ] || { broken "STARLING_TEST_REDIS is not set: run ops/scripts/test.sh, which starts a private Redis"; finish; }
[ -n "${STARLING_TEST_REDIS_CLUSTER:-}" ] || { broken "STARLING_TEST_REDIS_CLUSTER is not set: run ops/scripts/test.sh, which starts a private Redis Cluster"; finish; }

# ---- tools ----------------------------------------------------------------------------------
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_install() {
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}
need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v node >/dev/null || need+=(nodejs)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt_install "${need[@]}" >/dev/null || { broken "apt-get install ${need[*]}"; finish; }
fi
# Chromium (for the example page) installs in the background while pip works.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  echo "installing: chromium (in the background; log: $WORK/apt-chromium.log)"
  apt_install chromium >"$WORK/apt-chromium.log" 2>&1 &
  CHROMIUM_PID=$!
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating a virtualenv at $VENV"
  python3 -m venv "$VENV" || { broken "python3 -m venv $VENV"; finish; }
fi
# Installed from a copy, so the build leaves nothing in the work tree.
cp -r clients/python "$WORK/python-src"
echo "installing ./clients/python[test], the examples' needs and schemathesis into $VENV (log: $WORK/pip.log)"
"$VENV/bin/pip" install -q --disable-pip-version-check "$WORK/python-src[test]" -r examples/requirements.txt schemathesis \
  >"$WORK/pip.log" 2>&1 || { tail -20 "$WORK/pip.log"; broken "pip install"; finish; }
if [ -n "$CHROMIUM_PID" ] && ! wait "$CHROMIUM_PID"; then
  tail -20 "$WORK/apt-chromium.log"; broken "apt-get install chromium"
fi

# ---- Python: pytest ------------------------------------------------------------------------------
echo "== python client and examples (pytest, memory and redis engines)"
PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider clients/python/tests examples/tests 2>&1 | tee "$WORK/pytest.log"
py_status=${PIPESTATUS[0]}
py_line=$(grep -E "[0-9]+ (passed|failed)" "$WORK/pytest.log" | tail -1)
py_passed=$(echo "$py_line" | grep -oE "[0-9]+ passed" | grep -oE "[0-9]+" || echo 0)
py_failed=$(( $(echo "$py_line" | grep -oE "[0-9]+ failed" | grep -oE "[0-9]+" || echo 0) + $(echo "$py_line" | grep -oE "[0-9]+ errors?" | grep -oE "[0-9]+" || echo 0) ))
passed=$((passed + ${py_passed:-0})); failed=$((failed + py_failed))
[ "$py_status" -ne 0 ] && [ "$py_failed" -eq 0 ] && broken "pytest exited $py_status"

# ---- JavaScript: node --test -------------------------------------------------------------------
echo "== javascript client (node --test $(node --version))"
node --test --test-reporter=tap clients/js/test/*.test.mjs >"$WORK/node.log" 2>&1
js_status=$?
grep -E "^(not )?ok |^# (tests|pass|fail)" "$WORK/node.log" | grep -vE "^    " || true
[ "$js_status" -ne 0 ] && grep -B2 -A30 "^not ok" "$WORK/node.log" | head -80
js_passed=$(grep -E "^# pass [0-9]+" "$WORK/node.log" | grep -oE "[0-9]+" || echo 0)
js_failed=$(grep -E "^# fail [0-9]+" "$WORK/node.log" | grep -oE "[0-9]+" || echo 0)
passed=$((passed + ${js_passed:-0})); failed=$((failed + ${js_failed:-0}))
[ "$js_status" -ne 0 ] && [ "${js_failed:-0}" -eq 0 ] && broken "node --test exited $js_status"

# ---- OpenAPI: schemathesis against the running broker ----------------------------------------------
# The two subscribe GETs are left out: a valid subscription is a response that never ends.
start_broker() {
  # without the suite's own STARLING_* variables, which the broker would take for settings
  env $(env | grep -oE '^STARLING_[A-Z0-9_]+' | sed 's/^/-u /') "$BIN" serve --listen 127.0.0.1:0 "$@" \
    >"$WORK/broker.out" 2>"$WORK/broker.err" &
  PIDS+=($!)
  for _ in $(seq 100); do
    BROKER_URL=$(grep -oE "http://127\.0\.0\.1:[0-9]+" "$WORK/broker.out" | head -1)
    [ -n "$BROKER_URL" ] && return 0
    sleep 0.05
  done
  return 1
}
for engine in memory redis; do
  echo "== docs/openapi.yaml against the broker ($engine engine, schemathesis)"
  args=(); [ "$engine" = redis ] && args=(--redis "$STARLING_TEST_REDIS")
  if ! start_broker "${args[@]}"; then broken "broker for schemathesis ($engine)"; continue; fi
  # run from $WORK: schemathesis keeps a cache directory where it runs
  (cd "$WORK" && "$VENV/bin/schemathesis" run "$ROOT/docs/openapi.yaml" --url "$BROKER_URL" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --exclude-operation-id subscribe --exclude-operation-id subscribeMany \
    --request-timeout 5 --max-examples 40 --workers 1) >"$WORK/st-$engine.log" 2>&1
  st_status=$?
  figures=$(grep -E "[0-9]+ generated" "$WORK/st-$engine.log" | tail -1 | sed 's/^ *//')
  if [ $st_status -eq 0 ]; then
    echo "ok: schemathesis ($engine): ${figures:-no figures}"
    passed=$((passed + 1))
  else
    sed -n '/FAILURES\|ERRORS/,$p' "$WORK/st-$engine.log" | head -80
    [ -s "$WORK/broker.err" ] && tail -5 "$WORK/broker.err"
    broken "schemathesis ($engine): ${figures:-exit $st_status}"
  fi
  kill "${PIDS[-1]}" 2>/dev/null; wait "${PIDS[-1]}" 2>/dev/null
  : >"$WORK/broker.out"
done

finish
