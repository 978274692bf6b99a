#!/usr/bin/env bash
# Rolling-deploy rehearsal: what ECS does during a deploy, re-enacted on loopback with real
# parts. HAProxy (the ALB) health-checks /health/ready on three instances of the release
# binary that share one data directory (three AZs, one EFS). While a load generator sends a
# steady PUT/GET mix through HAProxy on keep-alive connections and checks every answer:
#
#   roll 1 (ECS with deregistration): for each instance, start the new one, wait until HAProxy
#          marks it UP, put the old one in maintenance (deregistration), wait until its
#          sessions drain, SIGTERM it, wait for exit 0.
#   roll 2 (SIGTERM only): start the new one, wait until UP, SIGTERM the old one at once; its
#          readiness turns 503 and --drain-delay keeps it serving until HAProxy has seen that.
#   roll 3 (bad image): the new instance never becomes healthy (it listens on the wrong
#          port); the roll stops after a deadline with the old instances still serving: the
#          local twin of ECS's deployment circuit breaker.
#
# Passes when the load saw zero failures, every acknowledged write reads back, and every
# replaced instance exited 0. Usage: scripts/rolling-deploy.sh  (needs haproxy, socat)
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in haproxy socat python3; do
  command -v "$tool" >/dev/null || { echo "rolling-deploy: $tool not found (apt-get install haproxy socat)" >&2; exit 1; }
done

DRAIN_DELAY_SECS=1        # > HAProxy's detection time: fall 2 x inter 200ms
HEALTHY_DEADLINE_SECS=10  # how long a new instance gets to become UP

echo "==> building the release binary and the load generator"
cargo build --release --locked --bin hello-birthday --example loadgen 2>&1 | tail -n 1
BIN=target/release/hello-birthday
LOADGEN=target/release/examples/loadgen

WORK=$(mktemp -d)
. scripts/lib.sh
DATA="$WORK/data"
SOCK="$WORK/haproxy.sock"
declare -A PID_OF=()      # slot -> pid of the instance serving it
LOAD_PID=""
HAPROXY_PID=""
cleanup() {
  for pid in "${PID_OF[@]}" $LOAD_PID $HAPROXY_PID; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r LB_PORT P1 P2 P3 P4 P5 P6 WRONG_PORT <<<"$(free_ports 8)"
declare -A PORT=([s1]=$P1 [s2]=$P2 [s3]=$P3 [s4]=$P4 [s5]=$P5 [s6]=$P6)

cat >"$WORK/haproxy.cfg" <<EOF
global
    stats socket $SOCK mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    # A request that found a backend connection closed under it (the keep-alive race) is
    # retried elsewhere: what an ALB does too.
    retries 3
    retry-on conn-failure empty-response
    option redispatch
    option http-buffer-request
frontend lb
    bind 127.0.0.1:$LB_PORT
    default_backend app
backend app
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter 200ms fastinter 100ms downinter 200ms rise 2 fall 2
    server s1 127.0.0.1:$P1 check
    server s2 127.0.0.1:$P2 check
    server s3 127.0.0.1:$P3 check
    server s4 127.0.0.1:$P4 check disabled
    server s5 127.0.0.1:$P5 check disabled
    server s6 127.0.0.1:$P6 check disabled
EOF

hap() { echo "$*" | socat stdio "unix-connect:$SOCK"; }
# Field 18 of `show stat` is the status (UP, DOWN, MAINT, ...), field 5 the current sessions.
status_of() { hap "show stat" | awk -F, -v s="$1" '$1=="app" && $2==s {print $18}'; }
sessions_of() { hap "show stat" | awk -F, -v s="$1" '$1=="app" && $2==s {print $5}'; }

is_up() { [ "$(status_of "$1")" = "UP" ]; }
has_no_sessions() { [ "$(sessions_of "$1")" = "0" ]; }

start_instance() { # start_instance SLOT [EXTRA ARGS]: the release binary on that slot's port
  local slot=$1; shift
  "$BIN" --listen "127.0.0.1:${PORT[$slot]}" --data-dir "$DATA" --log-format json \
    --drain-delay "$DRAIN_DELAY_SECS" "$@" >>"$WORK/$slot.log" 2>&1 &
  PID_OF[$slot]=$!
}

stop_instance() { # stop_instance SLOT: SIGTERM, wait, require exit 0
  local slot=$1 pid=${PID_OF[$1]} code=0
  kill -TERM "$pid"
  wait "$pid" || code=$?
  unset "PID_OF[$slot]"
  hap "set server app/$slot state maint" >/dev/null
  if [ "$code" -ne 0 ]; then echo "FAIL: instance $slot (pid $pid) exited $code" >&2; tail -n 5 "$WORK/$slot.log" >&2; exit 1; fi
  echo "    $slot exited 0"
}

replace() { # replace OLD NEW MODE: one step of a rolling deploy
  local old=$1 new=$2 mode=$3
  start_instance "$new"
  hap "set server app/$new state ready" >/dev/null
  if ! poll "$HEALTHY_DEADLINE_SECS" is_up "$new"; then
    echo "FAIL: $new never became healthy" >&2; exit 1
  fi
  echo "    $new is UP in HAProxy"
  if [ "$mode" = deregister ]; then
    hap "set server app/$old state maint" >/dev/null
    poll 10 has_no_sessions "$old" || { echo "FAIL: $old did not drain" >&2; exit 1; }
    echo "    $old deregistered and drained"
  fi
  stop_instance "$old"
}

echo "==> starting HAProxy on 127.0.0.1:$LB_PORT and three instances sharing $DATA"
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
poll 10 test -S "$SOCK" || { cat "$WORK/haproxy.log" >&2; exit 1; }
for slot in s1 s2 s3; do start_instance "$slot"; done
for slot in s1 s2 s3; do
  poll "$HEALTHY_DEADLINE_SECS" is_up "$slot" || { echo "FAIL: $slot never became UP" >&2; exit 1; }
done

echo "==> load: 16 keep-alive connections, 320 users, PUT/GET mix through HAProxy"
"$LOADGEN" run --target "127.0.0.1:$LB_PORT" --connections 16 --users 320 \
  --stop-file "$WORK/stop" --pause-us 3000 >"$WORK/load.out" 2>&1 &
LOAD_PID=$!

echo "==> roll 1: deregister (maintenance + drain), then SIGTERM"
replace s1 s4 deregister
replace s2 s5 deregister
replace s3 s6 deregister

echo "==> roll 2: SIGTERM only (readiness 503 + drain delay)"
replace s4 s1 sigterm
replace s5 s2 sigterm
replace s6 s3 sigterm

echo "==> roll 3: a bad new version that never becomes healthy"
"$BIN" --listen "127.0.0.1:$WRONG_PORT" --data-dir "$DATA" >>"$WORK/bad.log" 2>&1 &
BAD_PID=$!
hap "set server app/s4 state ready" >/dev/null
if poll 3 is_up s4; then echo "FAIL: the bad version became healthy" >&2; exit 1; fi
hap "set server app/s4 state maint" >/dev/null
kill -9 "$BAD_PID"; wait "$BAD_PID" 2>/dev/null || true
for slot in s1 s2 s3; do is_up "$slot" || { echo "FAIL: $slot is not serving after the stopped roll" >&2; exit 1; }; done
echo "    the new instance stayed unhealthy for 3 s; roll stopped; s1 s2 s3 (the old version) still UP"

touch "$WORK/stop"
load_code=0
wait "$LOAD_PID" || load_code=$?
LOAD_PID=""
cat "$WORK/load.out"
if [ "$load_code" -ne 0 ]; then echo "FAIL: the load saw failures" >&2; exit 1; fi
echo "rolling-deploy: PASS (6 instances replaced, each exited 0; bad version stopped; 0 failed requests)"
