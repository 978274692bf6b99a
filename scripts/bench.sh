#!/usr/bin/env bash
# Benchmark of the release binary on loopback, all figures from one run so their ratios hold
# on a noisy machine:
#   - throughput and p50/p99 latency of PUT and GET /hello/<user> over 1000 users and of
#     GET /health/live (the HTTP-stack ceiling of the same binary), wrk at 64 connections
#   - the server's own CPU time and context switches per request in each phase (from /proc:
#     what a request costs the server, less shaken than req/s by wrk sharing the cores)
#   - idle RSS, peak RSS under 256 connections, start-to-ready time
#   - file-system calls per GET and per PUT, counted with strace over a known number of
#     requests, minus a run with no requests
# Then the scale curve (scripts/scale-curve.sh): the same binary on 1 thousand to 1 million
# users in one data directory, with the disk's own cost per record beside it.
# Usage: scripts/bench.sh            (10 s per load phase; the short curve: 1k and 100k users)
#        BENCH_SECONDS=3 scripts/bench.sh   (the short mode .ci/run uses)
#        BENCH_BINARY=path scripts/bench.sh (another build of the server, for an A/B; the
#                                            curve always builds its own)
#        scripts/bench.sh --curve=long      (the curve at 1k, 100k and 1M users: ~5 GB of
#                                            disk, 1M inodes, about 10 minutes)
#        scripts/bench.sh --curve=10m       (and 10M users: ~45 GB and 10M inodes; checked
#                                            before anything is written)
#        scripts/bench.sh --curve=none      (no curve)    --curve-only (the curve alone)
# Needs wrk and strace (apt-get install wrk strace). Prints Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

CURVE=short
CURVE_ONLY=
for arg in "$@"; do
  case $arg in
    --curve=short | --curve=long | --curve=10m | --curve=none) CURVE=${arg#--curve=} ;;
    --curve-only) CURVE_ONLY=1 ;;
    *) echo "usage: $0 [--curve=short|long|10m|none] [--curve-only]" >&2; exit 2 ;;
  esac
done
case $CURVE in
  short) CURVE_SIZES=(1000 100000) ;;
  long) CURVE_SIZES=(1000 100000 1000000) ;;
  10m) CURVE_SIZES=(1000 100000 1000000 10000000) ;;
  none) CURVE_SIZES=() ;;
esac
if [ "$CURVE" = 10m ]; then
  # 10M records take ~4.3 KB of disk and one inode each; refuse early rather than fill the disk
  # the curve's data directory is on (scale-curve.sh: SCALE_DIR, else the target directory).
  mkdir -p "${SCALE_DIR:-$TARGET_DIR}"
  free_kb=$(df -Pk "${SCALE_DIR:-$TARGET_DIR}" | awk 'NR==2 {print $4}')
  free_inodes=$(df -Pi "${SCALE_DIR:-$TARGET_DIR}" | awk 'NR==2 {print $4}')
  if [ "$free_kb" -lt 50000000 ] || [ "$free_inodes" -lt 11000000 ]; then
    echo "bench: --curve=10m needs 50 GB and 11M inodes free; there are $((free_kb / 1000000)) GB and $free_inodes" >&2
    exit 1
  fi
fi
if [ -n "$CURVE_ONLY" ]; then
  [ ${#CURVE_SIZES[@]} -gt 0 ] || { echo "bench: --curve-only with --curve=none does nothing" >&2; exit 2; }
  exec scripts/scale-curve.sh "${CURVE_SIZES[@]}"
fi

SECONDS_PER_PHASE=${BENCH_SECONDS:-10}
CONNECTIONS=64
USERS=1000
COUNTED=500   # requests per strace session

for tool in wrk strace; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (apt-get install wrk strace)" >&2; exit 1; }
done

echo "==> building the release binary and the load generator"
release_build --bin hello-birthday --example loadgen
BIN=${BENCH_BINARY:-$RELEASE/hello-birthday}
LOADGEN=$RELEASE/examples/loadgen

WORK=$(realpath "$(mktemp -d)")  # as strace -y names descriptors (the traced sessions below)
cleanup() { for pid in $(jobs -p); do kill -9 "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

status_kb() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$SERVER_PID/status"; } # VmRSS, VmHWM
mb() { awk -v kb="$1" 'BEGIN {printf "%.1f MB", kb / 1024}'; }

# server_usage FILE: saves the server's CPU ticks so far (all its threads, the exited ones
# included: the process's own stat sums them) and each live thread's context switches.
server_usage() {
  local status
  { awk '{print "cpu", $14 + $15}' "/proc/$SERVER_PID/stat"
    for status in /proc/"$SERVER_PID"/task/*/status; do
      awk -v tid="${status%/status}" '/ctxt_switches/ {s += $2} END {print tid, s + 0}' "$status" 2>/dev/null || true
    done; } >"$1"
}
# usage_per_request BEFORE AFTER REQUESTS: "CPU-us context-switches" per request between the
# two. Switches are counted per thread: a thread that exits in between (a pool thread idle for
# its keep-alive) takes its count with it, and would otherwise make the difference negative;
# it did next to nothing in the phase, or it would not have gone idle.
usage_per_request() {
  awk -v n="$3" -v hz="$(getconf CLK_TCK)" 'NR == FNR { before[$1] = $2; next }
    $1 == "cpu" { ticks = $2 - before["cpu"]; next }
    { switches += $2 - ($1 in before ? before[$1] : 0) }
    END { n = n > 0 ? n : 1; printf "%.1f %.2f\n", ticks * 1e6 / hz / n, switches / n }' "$1" "$2"
}

# wrk_phase NAME CONNECTIONS METHOD PATH [LABEL]: runs wrk (GET or PUT over the users, or with
# no METHOD a GET of PATH) and sets r[NAME,FIGURE] for FIGURE in rps, p50 and p99 (ms), bad
# (non-2xx), sock (socket errors), cpu (server us per request) and csw (its context switches
# per request); with a LABEL, prints them.
declare -A r
wrk_phase() {
  local name=$1 connections=$2 method=$3 path=$4 n
  server_usage "$WORK/usage-$name-before"
  WRK_METHOD=$method WRK_USERS=$USERS wrk -t2 -c"$connections" -d"${SECONDS_PER_PHASE}s" \
    -s scripts/wrk/hello.lua "http://$SERVER_ADDR$path" >"$WORK/wrk-$name.txt"
  read -r "r[$name,rps]" "r[$name,p50]" "r[$name,p99]" "r[$name,bad]" "r[$name,sock]" n < <(tail -n 1 "$WORK/wrk-$name.txt")
  server_usage "$WORK/usage-$name-after"
  read -r "r[$name,cpu]" "r[$name,csw]" < <(usage_per_request "$WORK/usage-$name-before" "$WORK/usage-$name-after" "$n")
  [ -z "${5:-}" ] || echo "    $5 ${r[$name,rps]} req/s, p50 ${r[$name,p50]} ms, p99 ${r[$name,p99]} ms, non-2xx ${r[$name,bad]}, socket errors ${r[$name,sock]}; server CPU ${r[$name,cpu]} us and ${r[$name,csw]} context switches per request"
}

echo "==> start to ready (spawn until /health/ready answers 200)"
startup=$("$LOADGEN" startup --runs 11 -- "$BIN" | sed -n 's/.*median \([0-9.]*\) ms.*/\1/p')
echo "    median of 11: $startup ms"

start_server SERVER "$BIN" --data-dir "$WORK/data"
# Let the runtime settle (the startup sweep, the first log lines) before reading idle RSS.
poll 5 curl -fsS -o /dev/null "http://$SERVER_ADDR/health/ready"
idle_rss=$(status_kb VmRSS)
echo "==> idle RSS: $(mb "$idle_rss")"

"$LOADGEN" count --target "$SERVER_ADDR" --method PUT --users "$USERS" --requests "$USERS" >/dev/null
echo "==> seeded $USERS users; wrk -t2 -c$CONNECTIONS for ${SECONDS_PER_PHASE}s per phase"
wrk_phase put "$CONNECTIONS" PUT / "PUT  /hello/<user>:"
wrk_phase get "$CONNECTIONS" GET / "GET  /hello/<user>:"
wrk_phase live "$CONNECTIONS" "" /health/live "GET  /health/live: "

echo "==> GET at 256 connections; peak RSS from the kernel (VmHWM, reset through clear_refs)"
echo 5 >"/proc/$SERVER_PID/clear_refs"  # proc(5): VmHWM starts again from the RSS now
wrk_phase get256 256 GET / "GET  /hello/<user>:"
peak_rss=$(status_kb VmHWM)
echo "    peak RSS $(mb "$peak_rss")"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true

echo "==> file-system calls per request (strace -f, $COUNTED requests, minus a run with none)"
# Only calls on the data directory count (scripts/lib/fs_calls.py: strace -y names each
# descriptor's file), of strace's classes of calls that take a path or a file descriptor.
traced_session() { # traced_session NAME [METHOD]: trace a server that answers COUNTED requests
  local name=$1 method=${2:-}
  start_server "T$name" strace -f -y -qq -o "$WORK/trace-$name" -e trace=%file,%desc "$BIN" --data-dir "$WORK/data"
  local pid_var="T${name}_PID" addr_var="T${name}_ADDR"
  if [ -n "$method" ]; then
    "$LOADGEN" count --target "${!addr_var}" --method "$method" --users "$USERS" --requests "$COUNTED" >/dev/null
  fi
  # SIGTERM the server itself (strace would detach and leave it running), then strace exits.
  kill -TERM "$(pgrep -P "${!pid_var}")"; wait "${!pid_var}" || true
}
traced_session none
traced_session get GET
traced_session put PUT
get_calls=$(python3 scripts/lib/fs_calls.py "$WORK/data" "$COUNTED" "$WORK/trace-none" "$WORK/trace-get")
put_calls=$(python3 scripts/lib/fs_calls.py "$WORK/data" "$COUNTED" "$WORK/trace-none" "$WORK/trace-put")
echo "    GET: $get_calls"
echo "    PUT: $put_calls"

ratio=$(awk -v g="${r[get,rps]}" -v l="${r[live,rps]}" 'BEGIN {printf "%.2f", g / l}')
cpu_ratio=$(awk -v g="${r[get,cpu]}" -v l="${r[live,cpu]}" 'BEGIN {printf "%.2f", l / g}')
cpu=$(sed -n '/^model name/{s/^model name[[:space:]]*: //p;q}' /proc/cpuinfo)
cat <<EOF

Machine: $(nproc) cores ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); wrk -t2 on the same cores.
Data directory on $(df -T "$WORK" | awk 'NR==2 {print $2}'); ${SECONDS_PER_PHASE}s per phase.

| measure | result | target |
|---|---|---|
| GET /hello/<user>, $CONNECTIONS conns | ${r[get,rps]} req/s, p50 ${r[get,p50]} ms, p99 ${r[get,p99]} ms | p99 < 5 ms |
| PUT /hello/<user>, $CONNECTIONS conns | ${r[put,rps]} req/s, p50 ${r[put,p50]} ms, p99 ${r[put,p99]} ms | |
| GET /health/live, $CONNECTIONS conns | ${r[live,rps]} req/s, p50 ${r[live,p50]} ms, p99 ${r[live,p99]} ms | |
| GET throughput / live throughput | $ratio | >= 0.70 |
| server CPU per request: GET, live, PUT | ${r[get,cpu]} us, ${r[live,cpu]} us, ${r[put,cpu]} us (live / GET: $cpu_ratio) | |
| context switches per request: GET, live, PUT | ${r[get,csw]}, ${r[live,csw]}, ${r[put,csw]} | |
| GET, 256 conns | ${r[get256,rps]} req/s, p99 ${r[get256,p99]} ms | |
| idle RSS | $(mb "$idle_rss") | < 20 MB |
| peak RSS, 256 conns | $(mb "$peak_rss") | |
| start to ready | $startup ms | < 100 ms |
| file-system calls per GET | $get_calls | <= 3 reaching the server |
| file-system calls per PUT | $put_calls | |
EOF
# Every request must have been answered with a 2xx: a non-2xx answer or a connection that
# failed (connect, read, write error or timeout) fails the run.
bad=0 sock=0
for name in put get live get256; do bad=$(( bad + ${r[$name,bad]} )) sock=$(( sock + ${r[$name,sock]} )); done
[ "$bad" -eq 0 ] && [ "$sock" -eq 0 ] || {
  echo "bench: $bad non-2xx responses, $sock socket errors (wrk output in each phase above)" >&2
  exit 1
}

if [ ${#CURVE_SIZES[@]} -gt 0 ]; then
  echo
  echo "==> the scale curve: ${CURVE_SIZES[*]} users"
  scripts/scale-curve.sh "${CURVE_SIZES[@]}"
fi
