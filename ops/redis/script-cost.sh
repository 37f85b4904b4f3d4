#!/usr/bin/env bash
# Instructions per EVALSHA of a publish script in redis-server (callgrind: repeatable on a
# busy machine, unlike timing). Starts a private redis-server under valgrind on PORT,
# loads the script, warms up with 400 calls (of WARM, default the same script, so a
# variant can be measured on state the full script wrote), zeroes the counters, runs N
# calls of one 17-byte text event over R channels with redis-benchmark, dumps, and prints
# the total and the instructions per call. docs/benchmarks.md uses it.
#
#   [R=20] [PORT=16391] [WARM=other.lua] ops/redis/script-cost.sh [script.lua] [N]
#
# Needs valgrind (callgrind_control, callgrind_annotate), redis-server, redis-cli,
# redis-benchmark.
set -u
S=${1:-ops/redis/publish.lua}; N=${2:-2000}; P=${PORT:-16391}
case $S in /*) ;; *) S=$PWD/$S ;; esac
D=$(mktemp -d "${TMPDIR:-/tmp}/script-cost.XXXXXX")
cd "$D"
valgrind --tool=callgrind --callgrind-out-file="$D/cg.out.%p" redis-server --port "$P" --save '' --appendonly no --dir "$D" >/dev/null 2>"$D/vg.log" &
VP=$!
for _ in $(seq 100); do redis-cli -p "$P" ping >/dev/null 2>&1 && break; sleep 0.2; done
W=${WARM:-$S}
WSHA=$(redis-cli -p "$P" -x script load < "$W")
SHA=$(redis-cli -p "$P" -x script load < "$S")
EVENT=(1000 60 tok 'hello token 17byte' text '' 0 '' '')
redis-benchmark -p "$P" -r "${R:-20}" -n 400 -c 1 EVALSHA "$WSHA" 1 'starling:{c__rand_int__}' "${EVENT[@]}" >/dev/null
callgrind_control -z "$VP" >/dev/null
redis-benchmark -p "$P" -r "${R:-20}" -n "$N" -c 1 EVALSHA "$SHA" 1 'starling:{c__rand_int__}' "${EVENT[@]}" >/dev/null
callgrind_control -d "$VP" >/dev/null
sleep 1
F=$(ls -t "$D"/cg.out.*.* 2>/dev/null | head -1)
T=$(callgrind_annotate "$F" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$S: $T instructions for $N calls, $((T / N)) per call (profile: $F)"
redis-cli -p "$P" shutdown nosave >/dev/null 2>&1
wait "$VP" 2>/dev/null
