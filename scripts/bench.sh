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
  # 10M records take ~4.3 KB of disk and one inode each; refuse early rather than fill the disk.
  free_kb=$(df -Pk "${SCALE_DIR:-.}" | awk 'NR==2 {print $4}')
  free_inodes=$(df -Pi "${SCALE_DIR:-.}" | awk 'NR==2 {print $4}')
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
cargo build --release --locked --bin hello-birthday --example loadgen 2>&1 | tail -n 1
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}  # where cargo just built them
BIN=${BENCH_BINARY:-$TARGET_DIR/release/hello-birthday}
LOADGEN=$TARGET_DIR/release/examples/loadgen

WORK=$(mktemp -d)
. scripts/lib.sh
cleanup() { for pid in $(jobs -p); do kill -9 "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
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
# usage_delta BEFORE AFTER: "CPU-ticks context-switches" between the two. Switches are counted
# per thread: a thread that exits in between (a pool thread idle for its keep-alive) takes its
# count with it, and would otherwise make the difference negative; it did next to nothing in
# the phase, or it would not have gone idle.
usage_delta() {
  awk 'NR == FNR { before[$1] = $2; next }
    $1 == "cpu" { ticks = $2 - before["cpu"]; next }
    { switches += $2 - ($1 in before ? before[$1] : 0) }
    END { print ticks, switches }' "$1" "$2"
}
CLOCK_TICKS=$(getconf CLK_TCK)

# wrk_phase NAME CONNECTIONS PATH [METHOD]: runs wrk, prints "req/s p50_ms p99_ms non2xx
# socket_errors cpu_us_per_request switches_per_request", socket_errors being the sum of wrk's
# "Socket errors: connect N, read N, write N, timeout N" (a line wrk prints only when there
# were any).
wrk_phase() {
  local name=$1 connections=$2 path=$3 method=${4:-}
  local out="$WORK/wrk-$name.txt" ticks switches
  server_usage "$WORK/usage-$name-before"
  if [ -n "$method" ]; then
    WRK_METHOD=$method WRK_USERS=$USERS wrk -t2 -c"$connections" -d"${SECONDS_PER_PHASE}s" --latency \
      -s scripts/wrk/hello.lua "http://$SERVER_ADDR" >"$out"
  else
    wrk -t2 -c"$connections" -d"${SECONDS_PER_PHASE}s" --latency "http://$SERVER_ADDR$path" >"$out"
  fi
  server_usage "$WORK/usage-$name-after"
  read -r ticks switches <<<"$(usage_delta "$WORK/usage-$name-before" "$WORK/usage-$name-after")"
  awk -v ticks="$ticks" -v switches="$switches" -v hz="$CLOCK_TICKS" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
    /^Requests\/sec/ { rps = $2 } /requests in/ { n = $1 } /Non-2xx/ { bad = $NF }
    /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) sock += $i }
    END { n = n > 0 ? n : 1; printf "%.0f %.2f %.2f %d %d %.1f %.2f\n", rps, p50, p99, bad, sock, ticks * 1e6 / hz / n, switches / n }' "$out"
}

echo "==> start to ready (spawn until /health/ready answers 200)"
startup=$("$LOADGEN" startup --runs 11 -- "$BIN" | sed -n 's/.*median \([0-9.]*\) ms.*/\1/p')
echo "    median of 11: $startup ms"

start_server SERVER "$BIN" --data-dir "$WORK/data"
# Let the runtime settle (the startup sweep, the first log lines) before reading idle RSS.
poll 5 curl -fsS -o /dev/null "http://$SERVER_ADDR/health/ready"
idle_rss=$(rss_kb "$SERVER_PID")
echo "==> idle RSS: $(mb "$idle_rss")"

"$LOADGEN" count --target "$SERVER_ADDR" --method PUT --users "$USERS" --requests "$USERS" >/dev/null
echo "==> seeded $USERS users; wrk -t2 -c$CONNECTIONS for ${SECONDS_PER_PHASE}s per phase"
read -r put_rps put_p50 put_p99 put_bad put_sock put_cpu put_csw <<<"$(wrk_phase put "$CONNECTIONS" / PUT)"
echo "    PUT  /hello/<user>: $put_rps req/s, p50 $put_p50 ms, p99 $put_p99 ms, non-2xx $put_bad, socket errors $put_sock; server CPU $put_cpu us and $put_csw context switches per request"
read -r get_rps get_p50 get_p99 get_bad get_sock get_cpu get_csw <<<"$(wrk_phase get "$CONNECTIONS" / GET)"
echo "    GET  /hello/<user>: $get_rps req/s, p50 $get_p50 ms, p99 $get_p99 ms, non-2xx $get_bad, socket errors $get_sock; server CPU $get_cpu us and $get_csw context switches per request"
read -r live_rps live_p50 live_p99 live_bad live_sock live_cpu live_csw <<<"$(wrk_phase live "$CONNECTIONS" /health/live)"
echo "    GET  /health/live:  $live_rps req/s, p50 $live_p50 ms, p99 $live_p99 ms, non-2xx $live_bad, socket errors $live_sock; server CPU $live_cpu us and $live_csw context switches per request"

echo "==> GET at 256 connections, sampling RSS"
peak_rss=$idle_rss
wrk_phase get256 256 / GET >"$WORK/get256" &
WRK_PID=$!
while kill -0 "$WRK_PID" 2>/dev/null; do
  now=$(rss_kb "$SERVER_PID"); [ "$now" -gt "$peak_rss" ] && peak_rss=$now
  sleep 0.2
done
wait "$WRK_PID"
read -r c256_rps _ c256_p99 c256_bad c256_sock _ _ <"$WORK/get256"
echo "    $c256_rps req/s, p99 $c256_p99 ms, non-2xx $c256_bad, socket errors $c256_sock; peak RSS $(mb "$peak_rss")"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true

echo "==> file-system calls per request (strace -f, $COUNTED requests, minus a run with none)"
# Only calls on the data directory count: strace -y names each descriptor's file.
TRACED="openat,read,write,close,fsync,fdatasync,flock,rename,renameat2,mkdir,unlink,getdents64,newfstatat,fstat,statx,lseek"
traced_session() { # traced_session NAME [METHOD]: trace a server that answers COUNTED requests
  local name=$1 method=${2:-}
  start_server "T$name" strace -f -y -qq -o "$WORK/trace-$name" -e trace="$TRACED" "$BIN" --data-dir "$WORK/data"
  local pid_var="T${name}_PID" addr_var="T${name}_ADDR"
  if [ -n "$method" ]; then
    "$LOADGEN" count --target "${!addr_var}" --method "$method" --users "$USERS" --requests "$COUNTED" >/dev/null
  fi
  # SIGTERM the server itself (strace would detach and leave it running), then strace exits.
  kill -TERM "$(pgrep -P "${!pid_var}")"; wait "${!pid_var}" || true
  { grep -v 'resumed>' "$WORK/trace-$name" | grep -F "$WORK/data" || true; } \
    | awk '{sub(/\(.*/, "", $2); print $2}' | sort | uniq -c | awk '{print $2, $1}' >"$WORK/calls-$name"
}
traced_session none
traced_session get GET
traced_session put PUT
per_request() { # per_request NAME: "total breakdown" per request, baseline subtracted
  awk -v n="$COUNTED" 'NR == FNR { base[$1] = $2; next }
    { c = ($2 - base[$1]) / n; if (c >= 0.01) { total += c; parts = parts sprintf("%s%s %.2f", sep, $1, c); sep = ", " } }
    END { printf "%.2f (%s)\n", total, parts }' "$WORK/calls-none" "$WORK/calls-$1"
}
get_calls=$(per_request get)
put_calls=$(per_request put)
echo "    GET: $get_calls"
echo "    PUT: $put_calls"

ratio=$(awk -v g="$get_rps" -v l="$live_rps" 'BEGIN {printf "%.2f", g / l}')
cpu_ratio=$(awk -v g="$get_cpu" -v l="$live_cpu" 'BEGIN {printf "%.2f", l / g}')
cpu=$(sed -n '/^model name/{s/^model name[[:space:]]*: //p;q}' /proc/cpuinfo)
cat <<EOF

Machine: $(nproc) cores ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); wrk -t2 on the same cores.
Data directory on $(df -T "$WORK" | awk 'NR==2 {print $2}'); ${SECONDS_PER_PHASE}s per phase.

| measure | result | target |
|---|---|---|
| GET /hello/<user>, $CONNECTIONS conns | $get_rps req/s, p50 $get_p50 ms, p99 $get_p99 ms | p99 < 5 ms |
| PUT /hello/<user>, $CONNECTIONS conns | $put_rps req/s, p50 $put_p50 ms, p99 $put_p99 ms | |
| GET /health/live, $CONNECTIONS conns | $live_rps req/s, p50 $live_p50 ms, p99 $live_p99 ms | |
| GET throughput / live throughput | $ratio | >= 0.70 |
| server CPU per request: GET, live, PUT | $get_cpu us, $live_cpu us, $put_cpu us (live / GET: $cpu_ratio) | |
| context switches per request: GET, live, PUT | $get_csw, $live_csw, $put_csw | |
| GET, 256 conns | $c256_rps req/s, p99 $c256_p99 ms | |
| idle RSS | $(mb "$idle_rss") | < 20 MB |
| peak RSS, 256 conns | $(mb "$peak_rss") | |
| start to ready | $startup ms | < 100 ms |
| file-system calls per GET | $get_calls | <= 3 reaching the server |
| file-system calls per PUT | $put_calls | |
EOF
# Every request must have been answered with a 2xx: a non-2xx answer or a connection that
# failed (connect, read, write error or timeout) fails the run.
bad=$(( put_bad + get_bad + live_bad + c256_bad ))
sock=$(( put_sock + get_sock + live_sock + c256_sock ))
[ "$bad" -eq 0 ] && [ "$sock" -eq 0 ] || {
  echo "bench: $bad non-2xx responses, $sock socket errors (wrk output in each phase above)" >&2
  exit 1
}

if [ ${#CURVE_SIZES[@]} -gt 0 ]; then
  echo
  echo "==> the scale curve: ${CURVE_SIZES[*]} users"
  scripts/scale-curve.sh "${CURVE_SIZES[@]}"
fi
