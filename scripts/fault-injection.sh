#!/usr/bin/env bash
# Storage fault injection against the running release binary. Each scenario prints what it
# did and what it saw, and the script exits non-zero on the first unexpected answer.
#
#   1. disk full      data dir on a 512 KiB tmpfs, filled up, then freed
#   2. read-only      the same tmpfs remounted read-only, then read-write
#   3. fsync EIO      libfiu (fiu-run/fiu-ctrl) makes fsync(2) fail in the running process
#   4. rename EIO     libfiu makes rename(2) fail
#   5. frozen holder  an instance SIGSTOPped while it holds a user's lock (seen in /proc/locks)
#
# ESTALE cannot be produced without NFS; the store's unit tests inject it (src/storage/tests.rs).
# Needs root (mount) and Debian's fiu-utils and curl. Usage: scripts/fault-injection.sh
#
#   FAULT_INJECTION_BINARY  test this binary instead of building the release one (CI builds it
#                           as the unprivileged user first, so that cargo never runs as root)
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "fault-injection: needs root for mount" >&2; exit 1; }
for tool in fiu-run fiu-ctrl curl sha256sum; do
  command -v "$tool" >/dev/null || { echo "fault-injection: $tool not found (apt-get install fiu-utils curl)" >&2; exit 1; }
done

. scripts/lib.sh
BIN=${FAULT_INJECTION_BINARY:-}
if [ -z "$BIN" ]; then
  echo "==> building the release binary"
  release_build --bin hello-birthday
  BIN=$RELEASE/hello-birthday
else
  echo "==> testing the prebuilt binary $BIN"
fi
[ -x "$BIN" ] || { echo "fault-injection: $BIN is not an executable file" >&2; exit 1; }

WORK=$(mktemp -d)
MNT="$WORK/tmpfs"
PIDS=()
cleanup() {
  # Every background job, including a server that failed to start before its pid was noted.
  for pid in "${PIDS[@]}" $(jobs -p); do kill -CONT "$pid" 2>/dev/null || true; kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# request ADDR METHOD PATH [JSON]: prints "STATUS BODY" on one line; the headers in $WORK/headers.
request() {
  local addr=$1 method=$2 path=$3 json=()
  [ -z "${4:-}" ] || json=(-H 'Content-Type: application/json' -d "$4")
  curl -sS --max-time 10 -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}' -X "$method" "http://$addr$path" "${json[@]}"
  printf ' %s\n' "$(tr -d '\n' <"$WORK/body")"
}

# expect ADDR STATUS METHOD PATH [JSON]: one request; its status must be STATUS. A 5xx must
# be problem+json naming no path.
expect() {
  local addr=$1 want=$2; shift 2
  local got; got=$(request "$addr" "$@")
  local status=${got%% *}
  printf '    %-5s %-22s -> %s\n' "$1" "$2" "$got" | cut -c1-170
  [ "$status" = "$want" ] || fail "$1 $2: expected $want, got $got"
  if [ "${status:0:1}" = 5 ]; then
    grep -q '"status":'"$status" "$WORK/body" || fail "a $status without a problem body"
    if grep -q "$WORK" "$WORK/body"; then fail "the error leaks a path"; fi
  fi
}

date_of() { request "$1" GET "/hello/$2" | sed -n 's/.*in \([0-9]*\) day.*/\1/p;s/.*Happy birthday.*/0/p'; }
# refused_put ADDR DATE: a PUT of alice's DATE is answered 503, and she keeps her old one.
refused_put() {
  local before; before=$(date_of "$1" alice)
  expect "$1" 503 PUT /hello/alice "{\"dateOfBirth\":\"$2\"}"
  expect "$1" 200 GET /hello/alice
  [ "$(date_of "$1" alice)" = "$before" ] || fail "the old record changed"
  echo "    alice still has her old date of birth"
}
no_temp_files() {
  local left; left=$(find "$1" -name '*.tmp-*' -o -name '.probe-*' | sed -n 1,3p)
  [ -z "$left" ] || fail "files left behind: $left"
  echo "    no temp or probe files left in the data directory"
}
ready_is() { [ "$(request "$1" GET /health/ready | cut -d' ' -f1)" = "$2" ]; }
expect_ready() { # expect_ready ADDR STATUS: readiness reaches STATUS (the probe is cached 1 s)
  poll 10 ready_is "$1" "$2" || fail "readiness never became $2"
  echo "    GET   /health/ready          -> $2 ($(request "$1" GET /health/ready | cut -c5-130))"
}

echo "==> 1. disk full: data dir on a 512 KiB tmpfs"
mkdir -p "$MNT"
mount -t tmpfs -o size=512k tmpfs "$MNT"
start_server FULL "$BIN" --data-dir "$MNT/data"
PIDS+=("$FULL_PID")
expect "$FULL_ADDR" 204 PUT /hello/alice '{"dateOfBirth":"1990-01-15"}'
dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null || true
echo "    filled the file system: $(df -h "$MNT" | awk 'NR==2 {print $3" used of "$2}')"
refused_put "$FULL_ADDR" 2001-06-01
expect "$FULL_ADDR" 503 PUT /hello/bob '{"dateOfBirth":"2001-06-01"}'
expect_ready "$FULL_ADDR" 503
no_temp_files "$MNT/data"
rm "$MNT/filler"
echo "    freed the space"
expect "$FULL_ADDR" 204 PUT /hello/alice '{"dateOfBirth":"2001-06-01"}'
expect "$FULL_ADDR" 204 PUT /hello/bob '{"dateOfBirth":"2001-06-01"}'
expect_ready "$FULL_ADDR" 200

echo "==> 2. read-only: the same tmpfs remounted read-only"
mount -o remount,ro "$MNT"
refused_put "$FULL_ADDR" 1980-02-02
expect_ready "$FULL_ADDR" 503
mount -o remount,rw "$MNT"
echo "    remounted read-write"
expect "$FULL_ADDR" 204 PUT /hello/alice '{"dateOfBirth":"1980-02-02"}'
expect_ready "$FULL_ADDR" 200
no_temp_files "$MNT/data"

# fiu_scenario POINT DATE: make the libfiu failure point POINT fail with EIO in the running
# binary, require a failed PUT that leaves the old record and no temp file, then lift it and
# require the same PUT to succeed.
fiu_scenario() {
  local point=$1 date=$2
  fiu-ctrl -c "enable name=$point,failinfo=5" "$FIU_PID"
  echo "    fiu-ctrl: enable $point with errno 5 (EIO)"
  refused_put "$FIU_ADDR" "$date"
  no_temp_files "$WORK/fiu-data"
  fiu-ctrl -c "disable name=$point" "$FIU_PID"
  expect "$FIU_ADDR" 204 PUT /hello/alice "{\"dateOfBirth\":\"$date\"}"
}

echo "==> 3. fsync fails with EIO (libfiu, enabled in the running process)"
start_server FIU fiu-run -x "$BIN" --data-dir "$WORK/fiu-data"
PIDS+=("$FIU_PID")
expect "$FIU_ADDR" 204 PUT /hello/alice '{"dateOfBirth":"1990-01-15"}'
fiu_scenario posix/io/sync/fsync 2002-07-07

echo "==> 4. rename fails with EIO (libfiu)"
fiu_scenario posix/io/dir/rename 2003-08-08

echo "==> 5. a lock holder frozen with SIGSTOP"
SHARED="$WORK/shared"
start_server A "$BIN" --data-dir "$SHARED"
start_server B "$BIN" --data-dir "$SHARED" --lock-timeout 500
PIDS+=("$A_PID" "$B_PID")
# The lock file of a user: stripe = last byte of SHA-256(name) mod 64 (src/storage/layout.rs).
stripe_of() { local h; h=$(printf '%s' "$1" | sha256sum | cut -c63-64); echo $(( 16#$h % 64 )); }
lock_inode() { stat -c %i "$SHARED/locks/$(printf '%02d' "$(stripe_of "$1")").lock"; }
expect "$A_ADDR" 204 PUT /hello/alice '{"dateOfBirth":"1990-01-15"}'
other=bob
while [ "$(stripe_of "$other")" = "$(stripe_of alice)" ]; do other="${other}b"; done
inode=$(lock_inode alice)
# A write storm on alice through A (one curl, one kept-alive connection: its URL glob makes
# 100,000 PUTs; the server ignores the query); freeze A until it is caught holding alice's lock.
curl -s --max-time 30 -o /dev/null -X PUT "http://$A_ADDR/hello/alice?[1-100000]" \
  -H 'Content-Type: application/json' -d '{"dateOfBirth":"1985-01-15"}' &
STORM_PID=$!
PIDS+=("$STORM_PID")
caught=
for attempt in $(seq 1 2000); do
  kill -STOP "$A_PID"
  if grep -qE "FLOCK +ADVISORY +WRITE +$A_PID +[0-9a-f]+:[0-9a-f]+:$inode " /proc/locks; then
    caught=$attempt; break
  fi
  kill -CONT "$A_PID"
done
[ -n "$caught" ] || fail "never caught A holding the lock"
echo "    A (pid $A_PID) frozen while holding alice's lock (attempt $caught; /proc/locks shows it)"
start=$(date +%s%N)
expect "$B_ADDR" 503 PUT /hello/alice '{"dateOfBirth":"1999-09-09"}'
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
retry_after=$(tr -d '\r' <"$WORK/headers" | sed -n 's/^retry-after: //Ip')
echo "    B answered 503 after ${elapsed_ms} ms (lock timeout 500 ms), Retry-After: $retry_after"
[ "$elapsed_ms" -lt 2000 ] || fail "B waited ${elapsed_ms} ms"
[ -n "$retry_after" ] || fail "no Retry-After"
expect "$B_ADDR" 204 PUT "/hello/$other" '{"dateOfBirth":"1999-09-09"}'
expect "$B_ADDR" 200 GET /hello/alice
kill -CONT "$A_PID"
echo "    SIGCONT A"
kill "$STORM_PID" 2>/dev/null || true
wait "$STORM_PID" 2>/dev/null || true
expect "$B_ADDR" 204 PUT /hello/alice '{"dateOfBirth":"1999-09-09"}'
expect "$A_ADDR" 200 GET /hello/alice
no_temp_files "$SHARED"

echo "fault-injection: PASS (disk full, read-only, fsync EIO, rename EIO, frozen lock holder)"
