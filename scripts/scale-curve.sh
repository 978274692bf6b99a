#!/usr/bin/env bash
# The scale curve: the release binary on one data directory of N users on this machine's disk,
# for each N given, with the substrate's own limit beside it. Per size:
#   - disk used per user; start to ready; the startup sweep (lists every fan-out directory, for
#     an older layout's orphans) and the periodic sweep (lists tmp/ only): duration and the
#     file-system calls of one sweep, counted with strace
#   - GET throughput and latency for known users (random over all N) and for unknown ones,
#     PUT (random over all N), the server's RSS
#   - raw open+read+close of random record files from several threads: the disk's own cost
#     per record, for the same files
# Warm (the records in the page cache) and, where the page cache can be dropped (root), cold
# too: what a task that just started on a big file system sees.
# The measuring is examples/scale.rs; this script only runs it and tabulates.
# Usage: scripts/scale-curve.sh SIZE...           e.g. scripts/scale-curve.sh 1000 100000
#        BENCH_SECONDS=N (5 by default) per load phase; SCALE_DIR=DIR for the data directory
#        (default: under the cargo target directory, CARGO_TARGET_DIR or target/; ~4.3 KB per user)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 SIZE..." >&2; exit 2; }

SECONDS_PER_PHASE=${BENCH_SECONDS:-5}
CONNECTIONS=16
RAW_THREADS=4
. scripts/lib.sh

command -v strace >/dev/null || { echo "scale-curve: strace not found (apt-get install strace)" >&2; exit 1; }

echo "==> building the release binary and the scale tool"
release_build --bin hello-birthday --example scale
BIN=$RELEASE/hello-birthday
SCALE=$RELEASE/examples/scale

# The real path: strace -y names descriptors by it, and sweep_calls counts the lines with it.
WORK=$(realpath "$(mktemp -d "${SCALE_DIR:-$TARGET_DIR}/scale-curve.XXXXXX")")
cleanup() { for pid in $(jobs -p); do kill -9 "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# Cold measurements need to empty the page cache, which only root can.
COLD=
if [ -w /proc/sys/vm/drop_caches ]; then COLD=--cold; fi

declare -A cell
# field LINE KEY: the value of KEY in one of scale's `key=value` lines.
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
# rate_cell LINE: "ops/s; mean, p50, p99" of a load or raw line; and how many ops, for cold runs
# (each user once: a small N runs out before the time is up).
rate_cell() {
  awk -v r="$(field "$1" ops_per_s)" -v mean="$(field "$1" mean_us)" -v p50="$(field "$1" p50_us)" \
    -v p99="$(field "$1" p99_us)" -v n="$(field "$1" ops)" -v cold="${2:-}" \
    'function t(us) { return us >= 1000 ? sprintf("%.1f ms", us / 1000) : sprintf("%.0f µs", us) }
     BEGIN { printf "%d/s; mean %s, p50 %s, p99 %s", r, t(mean), t(p50), t(p99); if (cold) printf " (%d users)", n }'
}
# sweep_calls DATA SCOPE: the data-directory file-system calls of one sweep, as "total (name
# count, ...)": a traced run of one sweep minus a traced run of none (opening the store), of
# strace's classes of calls that take a path or a descriptor (scripts/lib/fs_calls.py counts).
sweep_calls() {
  local data=$1 scope=$2 runs
  for runs in 0 1; do
    strace -f -y -qq -o "$WORK/sweep-trace-$runs" -e trace=%file,%desc \
      "$SCALE" sweep --data-dir "$data" --scope "$scope" --runs "$runs" >/dev/null
  done
  python3 scripts/lib/fs_calls.py "$data" 1 "$WORK/sweep-trace-0" "$WORK/sweep-trace-1"
}

SIZES=("$@")
for users in "${SIZES[@]}"; do
  data="$WORK/data-$users"
  echo "==> $users users (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  line=$("$SCALE" seed --data-dir "$data" --users "$users")
  echo "    seeded: $line"
  cell[seed,$users]="$(field "$line" seed_s) s"
  cell[disk,$users]=$(du -s --block-size=1 "$data/users" | awk -v n="$users" '{printf "%.0f B", $1 / n}')

  # Warm first: seeding leaves every record in the page cache. Cold ones after, each just
  # after the cache is dropped.
  line=$("$SCALE" startup --data-dir "$data" --runs 3 -- "$BIN")
  echo "    $line"
  cell[ready,$users]="$(field "$line" ready_median_ms) ms"
  cell[startup_sweep,$users]="$(field "$line" startup_sweep_median_ms) ms"

  line=$("$SCALE" sweep --data-dir "$data" --scope in-flight --runs 5)
  echo "    periodic sweep: $line"
  cell[sweep,$users]="$(field "$line" median_ms) ms"
  cell[sweep_calls,$users]=$(sweep_calls "$data" in-flight)
  cell[legacy_calls,$users]=$(sweep_calls "$data" with-legacy)
  echo "    file-system calls: periodic sweep ${cell[sweep_calls,$users]}; startup sweep ${cell[legacy_calls,$users]}"

  line=$("$SCALE" raw --data-dir "$data" --users "$users" --threads "$RAW_THREADS" --seconds "$SECONDS_PER_PHASE")
  echo "    $line"
  cell[raw,$users]=$(rate_cell "$line")

  start_server SERVER "$BIN" --data-dir "$data"
  # Load starts once the startup sweep is over: it lists every user, and would be measured too.
  # (grep reads the whole page: with -q it could close the pipe under curl, which complains.)
  poll 600 sh -c "curl -fsS 'http://$SERVER_ADDR/metrics' | grep '^storage_operation_duration_seconds_count{operation=\"sweep\"} [1-9]' >/dev/null"
  for kind in known unknown put; do
    line=$("$SCALE" load --target "$SERVER_ADDR" --users "$users" --kind "$kind" \
      --connections "$CONNECTIONS" --seconds "$SECONDS_PER_PHASE")
    echo "    $line"
    cell[$kind,$users]=$(rate_cell "$line")
  done
  if [ -n "$COLD" ]; then
    line=$("$SCALE" load --target "$SERVER_ADDR" --users "$users" --kind known \
      --connections "$CONNECTIONS" --seconds "$SECONDS_PER_PHASE" --cold)
    echo "    cold: $line"
    cell[known_cold,$users]=$(rate_cell "$line" cold)
  fi
  cell[rss,$users]=$(awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {printf "%.1f MB (peak %.1f MB)", r / 1024, h / 1024}' "/proc/$SERVER_PID/status")
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true

  if [ -n "$COLD" ]; then
    line=$("$SCALE" raw --data-dir "$data" --users "$users" --threads "$RAW_THREADS" --seconds "$SECONDS_PER_PHASE" --cold)
    echo "    cold: $line"
    cell[raw_cold,$users]=$(rate_cell "$line" cold)
    line=$("$SCALE" startup --data-dir "$data" --runs 1 --cold -- "$BIN")
    echo "    cold: $line"
    cell[ready_cold,$users]="$(field "$line" ready_median_ms) ms"
    cell[startup_sweep_cold,$users]="$(field "$line" startup_sweep_median_ms) ms"
  fi
  # One rm per fan-out directory, 8 at a time: after the cold runs the inodes are not cached,
  # and a lone rm waits on each read in turn (a million took over ten minutes that way).
  find "$data/users" -mindepth 1 -maxdepth 1 -print0 | xargs -0 -r -n 4 -P 8 rm -rf
  rm -rf "$data"
done

cpu=$(sed -n '/^model name/{s/^model name[[:space:]]*: //p;q}' /proc/cpuinfo)
header="| measure |"; rule="|---|"
for users in "${SIZES[@]}"; do header+=" $users users |"; rule+="---|"; done
row() { # row LABEL KEY
  local out="| $1 |" users
  for users in "${SIZES[@]}"; do out+=" ${cell[$2,$users]:-n/a} |"; done
  echo "$out"
}
cat <<EOF

Machine: $(nproc) cores ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); data directory on $(df -T "$WORK" | awk 'NR==2 {print $2}').
${SECONDS_PER_PHASE}s per load phase; HTTP: $CONNECTIONS keep-alive connections, one client thread each; raw: $RAW_THREADS threads; clients on the same cores.
Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). Warm: records in the page cache, users drawn at random with repeats;
cold: just after dropping the page cache, each user once in random order (every read a miss) until the phase's time is up.

$header
$rule
$(row "seeding (not measured service work)" seed)
$(row "disk used per user (users/)" disk)
$(row "start to ready, median of 3" ready)
$(row "start to ready, cold" ready_cold)
$(row "startup sweep (lists every fan-out directory), median of 3" startup_sweep)
$(row "startup sweep, cold" startup_sweep_cold)
$(row "startup sweep: file-system calls" legacy_calls)
$(row "periodic sweep (lists tmp/), median of 5" sweep)
$(row "periodic sweep: file-system calls" sweep_calls)
$(row "raw open+read+close, $RAW_THREADS threads, warm" raw)
$(row "raw open+read+close, cold" raw_cold)
$(row "GET known user, warm" known)
$(row "GET known user, cold" known_cold)
$(row "GET unknown user (404), warm" unknown)
$(row "PUT, warm" put)
$(row "server RSS after the load" rss)
EOF
