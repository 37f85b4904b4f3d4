#!/usr/bin/env bash
# ops/bench/merge-figures.sh — token merge figures (SPEC §4): events and bytes that a slow
# subscriber and a late joiner receive for one 2,000-token generation, merged and not.
# Counts, not timings: runs the broker binary (memory engine, one loop) under the test
# TokenMergeFigures and prints its "figure:" lines.
#
#   ops/bench/merge-figures.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build --build-tests > /tmp/starling-merge-figures-build.log 2>&1 \
  || { grep -E "error" -A3 /tmp/starling-merge-figures-build.log | head -40; exit 1; }
STARLING_TEST_ENGINES=memory swift test --skip-build --disable-swift-testing --filter TokenMergeFigures 2>&1 \
  | tee /tmp/starling-merge-figures.log | grep -E "^figure:|error|failed" | sed 's/^figure: //'
grep -q "passed" /tmp/starling-merge-figures.log
