#!/usr/bin/env bash
# Rolling-deploy rehearsal: what ECS does during a deploy, re-enacted on loopback with real
# parts. HAProxy plays the ALB: it health-checks /health/ready on the instances, which share
# one data directory (three AZs, one EFS), and like an ALB it never retries
# or redispatches a request (`retry-on none`, no `option redispatch`): a request that meets a
# refused or closed connection is a failed request. HAProxy has six server slots; a slot with
# no instance behind it is simply DOWN (nothing listens), and a new instance on it gets traffic
# only after RISE passing checks, like an ALB target in "initial" state.
#
# While a load generator sends a steady PUT/GET mix through HAProxy on keep-alive connections
# and checks every answer:
#
#   roll 1 (what ECS does): for each instance, start the new one, wait until HAProxy marks it
#          UP, deregister the old one (`state drain`: no new requests, in-flight ones finish)
#          until it has no sessions or the deregistration delay has passed, stop it (SIGTERM)
#          with DRAIN_DELAY_SECS=0 (as in the task definition), wait for exit 0.
#   roll 2 (SIGTERM only): the same without deregistration; the old instance's readiness turns
#          503 at once and --drain-delay keeps it serving until HAProxy has taken it out.
#   roll 3 (bad version): the new instance starts on its slot's port and stays live
#          (/health/live 200) but never ready (/health/ready 503: its data directory is gone,
#          or unreadable for a container);
#          the roll waits the same deadline as for a good one, stops, and the old instances
#          keep serving: the local twin of ECS's deployment circuit breaker.
#
# Passes when the load saw zero failures, every acknowledged write reads back, every replaced
# instance exited 0 within the stop timeout, the bad version got no request, and HAProxy
# retried or redispatched nothing. Prints HAProxy's counters per roll, the load's totals and
# latencies, and every failed request HAProxy logged (with the X-Request-Id it gave it, which
# the instances log too). Every process it starts is ended on exit; every wait has a deadline.
#
# What an instance is, is the launcher's (launcher-binary.sh describes the interface):
#   --launcher binary     processes of the release binary on the host: no Docker, no root;
#                         the developer's path (the default)
#   --launcher container  containers of the image built from the Dockerfile, run as the ECS
#                         task definition says (read from terraform/), published on the slots'
#                         ports, stopped with `docker stop -t <stopTimeout>`: what CI runs
#                         (scripts/container/run.sh; alone, this builds the image first)
# Usage: scripts/rolling-deploy/run.sh [--launcher binary|container]
#   (needs haproxy, socat, curl, python3; the container launcher also docker.io, as root)
set -euo pipefail
cd "$(dirname "$0")/../.."

LAUNCHER=binary
case "${1:-}" in
  "") ;;
  --launcher=*) LAUNCHER=${1#--launcher=} ;;
  --launcher) LAUNCHER=${2:-} ;;
  *) echo "usage: $0 [--launcher binary|container]" >&2; exit 2 ;;
esac
case "$LAUNCHER" in
  binary | container) ;;
  *) echo "usage: $0 [--launcher binary|container]" >&2; exit 2 ;;
esac

for tool in haproxy socat curl python3; do
  command -v "$tool" >/dev/null || { echo "rolling-deploy: $tool not found (apt-get install haproxy socat curl)" >&2; exit 1; }
done

# The Terraform target group (terraform/modules/load-balancer), its times divided by 50,
# except the check timeout: the readiness probe fsyncs a file on the disk all instances share,
# and on a busy machine one fsync can take over a second. With 100 ms (5 s / 50) one run lost
# all three instances at once, and HAProxy, which unlike an ALB does not "fail open" when no
# target is healthy, answered 957 requests with 503 NOSRV.
CHECK_INTER=200ms     # health_check.interval 10 s
CHECK_TIMEOUT=2s      # health_check.timeout 5 s, not scaled (above)
RISE=2                # healthy_threshold
FALL=2                # unhealthy_threshold
DEREG_DELAY_MS=400    # deregistration_delay 20 s (ends early once no request is in flight)
# The task (terraform/modules/service), in whole seconds as the app takes them, not scaled:
# stopTimeout: SIGTERM to exit, else SIGKILL (here: SIGKILL and FAIL). Read from the Terraform.
STOP_TIMEOUT_SECS=$(python3 scripts/container/taskdef.py get container.stopTimeout)
# The app's --shutdown-timeout is left at its default (20 s), as in the task definition.
ROLL1_DRAIN_DELAY_SECS=0  # DRAIN_DELAY_SECS of the task definition (unset there: 0)
# Roll 2 has no deregistration: the old instance must keep serving until HAProxy has seen FALL
# failed checks, FALL x INTER = 0.4 s after SIGTERM (its readiness answers 503 at once). On
# ECS that is 20 s. Set ROLL2_DRAIN_DELAY_SECS=0 to watch the roll fail without it.
ROLL2_DRAIN_DELAY_SECS=${ROLL2_DRAIN_DELAY_SECS:-1}
HEALTHY_DEADLINE_SECS=15  # how long a new instance (good or bad) gets to become UP

WORK=$(mktemp -d)
. scripts/lib.sh
# shellcheck source=scripts/rolling-deploy/launcher-binary.sh
. "scripts/rolling-deploy/launcher-$LAUNCHER.sh"
LOADGEN=target/release/examples/loadgen
DATA="$WORK/data"
SOCK="$WORK/haproxy.sock"
declare -A DRAIN_OF=() # slot -> that instance's drain delay
declare -A LOG_OF=()   # slot -> that instance's log file (each instance has its own)
INSTANCES=0
declare -A RUNNING=()  # pid -> 1 for every process this script started and has not reaped
started() { RUNNING[$1]=1; }
cleanup() {
  local pid
  exec 3>&2 2>/dev/null   # not bash's "Killed" notice for each process ended here
  for pid in "${!RUNNING[@]}"; do is_child "$pid" && kill -9 "$pid" || true; done
  for pid in "${!RUNNING[@]}"; do
    wait_exit "$pid" 5 || echo "rolling-deploy: pid $pid did not die after SIGKILL" >&3
  done
  launcher_cleanup 2>&3
  rm -rf "$WORK"
}
trap cleanup EXIT
# A SIGTERM or SIGINT (CI cancelling, ^C) leaves through the EXIT trap too.
trap 'exit 143' TERM
trap 'exit 130' INT

fail() {
  echo "FAIL: $*" >&2
  errors_seen >&2
  echo "    HAProxy's last server state changes:" >&2
  grep '^Server app/\|^backend app' "$WORK/haproxy.log" 2>/dev/null | tail -n 12 | sed 's/^/      /' >&2 || true
  exit 1
}
now_ms() { date +%s%3N; }

# is_child PID: PID is still a child of this shell, not a pid reused since bash reaped it
# (bash reaps exited children on its own and keeps their status for `wait`).
is_child() {
  local stat state ppid
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r state ppid _ <<<"${stat##*) }"
  [ "$ppid" = "$$" ]
}
# exited PID: the process is a zombie, or already reaped.
exited() {
  local stat state ppid
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  read -r state ppid _ <<<"${stat##*) }"
  [ "$ppid" != "$$" ] || [ "$state" = Z ]
}
# wait_exit PID SECS: waits up to SECS for PID to exit, then reaps it; its status is in
# EXIT_CODE. After the deadline: SIGKILL, reap, return 1.
wait_exit() {
  local pid=$1 deadline=$(( $(now_ms) + $2 * 1000 ))
  EXIT_CODE=0
  until exited "$pid"; do
    if [ "$(now_ms)" -ge "$deadline" ]; then
      is_child "$pid" && kill -9 "$pid" 2>/dev/null || true
      { wait "$pid"; } 2>/dev/null || true
      unset "RUNNING[$pid]"
      return 1
    fi
    sleep 0.05
  done
  { wait "$pid"; } 2>/dev/null || EXIT_CODE=$?
  unset "RUNNING[$pid]"   # reaped: its pid may be reused and must not be signalled again
}

free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r LB_PORT P1 P2 P3 P4 P5 P6 <<<"$(free_ports 7)"
declare -A PORT=([s1]=$P1 [s2]=$P2 [s3]=$P3 [s4]=$P4 [s5]=$P5 [s6]=$P6)

cat >"$WORK/haproxy.cfg" <<EOF
global
    stats socket $SOCK mode 600 level admin
    log stdout format raw local0
defaults
    mode http
    log global
    # Only failed or aborted requests are logged, with the id that the app logs too.
    option dontlog-normal
    unique-id-format %{+X}o%ci-%cp-%Ts-%rt
    unique-id-header X-Request-Id
    log-format "%tr id=%ID %b/%s status=%ST term=%tsc Tc=%Tc Tr=%Tr retries=%rc %{+Q}r"
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    # As an ALB: a request is sent once. A refused or closed backend connection is an error
    # answered to the client (503/502), never retried nor sent to another server.
    retries 0
    retry-on none
    # As an ALB: any request may go out on any idle pooled backend connection (HAProxy's
    # default, "safe", never puts a client's first request on one).
    http-reuse always
    option http-buffer-request
frontend lb
    bind 127.0.0.1:$LB_PORT
    default_backend app
backend app
    balance roundrobin
    option httpchk GET /health/ready
    option log-health-checks
    http-check expect status 200
    timeout check $CHECK_TIMEOUT
    default-server inter $CHECK_INTER rise $RISE fall $FALL
    server s1 127.0.0.1:$P1 check
    server s2 127.0.0.1:$P2 check
    server s3 127.0.0.1:$P3 check
    server s4 127.0.0.1:$P4 check
    server s5 127.0.0.1:$P5 check
    server s6 127.0.0.1:$P6 check
EOF

hap() { echo "$*" | socat -T 10 stdio "unix-connect:$SOCK"; }
# hstat PROXY SERVER FIELD...: fields of `show stat`, by name, space-separated.
hstat() {
  local px=$1 sv=$2; shift 2
  hap "show stat" | awk -F, -v px="$px" -v sv="$sv" -v want="$*" '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == px && $2 == sv { n = split(want, w, " "); out = ""
      for (i = 1; i <= n; i++) out = out (i > 1 ? " " : "") $(col[w[i]]); print out }'
}
status_of() { hstat app "$1" status; }
is_up() { [ "$(status_of "$1")" = UP ]; }       # UP for good, not "UP 1/2" (one check failed)
is_down() { [ "$(status_of "$1")" = DOWN ]; }   # DOWN for good, not "DOWN 1/2" (one passed)
has_no_sessions() { [ "$(hstat app "$1" scur)" = 0 ]; }

# Failed or aborted requests HAProxy logged (with dontlog-normal it logs nothing else).
errors_seen() {
  local n
  n=$(grep -c ' status=' "$WORK/haproxy.log" 2>/dev/null) || true
  echo "    HAProxy logged ${n:-0} failed or aborted requests"
  grep ' status=' "$WORK/haproxy.log" 2>/dev/null | sed -n '1,20s/^/      /p' || true
}

# counters LABEL: what HAProxy saw since the previous call: requests and answers (frontend);
# connection errors, response errors (a backend connection closed under a request), retries,
# redispatches, server aborts, backend connections opened and reused (backend).
declare -A LAST=()
counters() {
  local -a now
  read -r -a now <<<"$(hstat lb FRONTEND req_tot hrsp_2xx hrsp_4xx hrsp_5xx) $(hstat app BACKEND econ eresp wretr wredis srv_abrt connect reuse)"
  local names=(requests 2xx 4xx 5xx econ eresp wretr wredis srv_abrt connect reuse) i out=""
  for i in "${!names[@]}"; do
    out+="${out:+, }${names[$i]} $(( now[i] - ${LAST[${names[$i]}]:-0} ))"
    LAST[${names[$i]}]=${now[$i]}
  done
  echo "    $1 $out"
}

start_instance() { # start_instance SLOT DRAIN_DELAY [DATA_DIR]: an instance on the slot's port
  local slot=$1 drain=$2 data=${3:-$DATA}
  is_down "$slot" || fail "slot $slot is $(status_of "$slot"), not DOWN, before its instance starts"
  INSTANCES=$(( INSTANCES + 1 ))
  LOG_OF[$slot]="$WORK/instance$INSTANCES-$slot.log"
  DRAIN_OF[$slot]=$drain
  launch "$slot" "${PORT[$slot]}" "$drain" "$data" "${LOG_OF[$slot]}"
}

# log_count SLOT PATTERN: lines of the instance's log matching PATTERN (grep -c reads it all:
# `grep -q` could end the pipe early and pipefail would turn that into a failure).
log_count() { { instance_log "$1" | grep -c -- "$2"; } || true; }

reap_instance() { # reap_instance SLOT: after the stop signal, wait up to the stop timeout, require exit 0
  local slot=$1
  if ! await_exit "$slot" "$STOP_TIMEOUT_SECS"; then
    instance_log "$slot" | tail -n 5 >&2
    fail "instance $slot still running ${STOP_TIMEOUT_SECS} s after SIGTERM: SIGKILLed (exit code $EXIT_CODE)"
  fi
  [ "$EXIT_CODE" -eq 0 ] || { instance_log "$slot" | tail -n 5 >&2; fail "instance $slot exited $EXIT_CODE"; }
  STOPPED=$(( STOPPED + 1 ))
}
STOPPED=0

replace() { # replace OLD NEW MODE DRAIN_DELAY: one step of a rolling deploy. DRAIN_DELAY is the
            # new instance's --drain-delay, for the roll that will stop it.
  local old=$1 new=$2 mode=$3 drain=$4 t0 t served
  t0=$(now_ms)
  start_instance "$new" "$drain"
  poll "$HEALTHY_DEADLINE_SECS" is_up "$new" || fail "$new never became healthy"
  echo "    $new UP after $(( $(now_ms) - t0 )) ms ($RISE passing checks)"
  if [ "$mode" = deregister ]; then
    t0=$(now_ms)
    hap "set server app/$old state drain" >/dev/null
    served=$(hstat app "$old" stot)
    until has_no_sessions "$old" || [ $(( $(now_ms) - t0 )) -ge "$DEREG_DELAY_MS" ]; do sleep 0.02; done
    t0=$(now_ms)
    signal_stop "$old"
    reap_instance "$old"
    echo "    $old deregistered, SIGTERM, exited 0 after $(( $(now_ms) - t0 )) ms; requests it got after deregistration: $(( $(hstat app "$old" stot) - served ))"
    # The slot is free again once HAProxy has seen nothing listen there.
    poll 10 is_down "$old" || fail "$old is $(status_of "$old") after its instance exited"
    hap "set server app/$old state ready" >/dev/null
  else
    t0=$(now_ms)
    signal_stop "$old"
    poll "$STOP_TIMEOUT_SECS" is_down "$old" || fail "$old never went DOWN after SIGTERM"
    t=$(( $(now_ms) - t0 ))
    [ "$t" -lt $(( DRAIN_OF[$old] * 1000 )) ] || echo "    WARNING: HAProxy took $old out after $t ms, after its drain delay of ${DRAIN_OF[$old]} s"
    reap_instance "$old"
    echo "    $old SIGTERM: DOWN in HAProxy after $t ms (drain delay ${DRAIN_OF[$old]} s), exited 0 after $(( $(now_ms) - t0 )) ms"
  fi
}

launcher_prepare
prepare_data_dir "$DATA"
echo "==> instances: $(launcher_describe)"
echo "==> starting HAProxy on 127.0.0.1:$LB_PORT and three instances sharing $DATA"
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
started "$!"
poll 10 test -S "$SOCK" || { cat "$WORK/haproxy.log" >&2; fail "HAProxy did not start"; }
# HAProxy starts every server UP; slots with nothing behind them fall to DOWN.
for slot in s1 s2 s3 s4 s5 s6; do poll 10 is_down "$slot" || fail "$slot is $(status_of "$slot")"; done
for slot in s1 s2 s3; do start_instance "$slot" "$ROLL1_DRAIN_DELAY_SECS"; done
for slot in s1 s2 s3; do
  poll "$HEALTHY_DEADLINE_SECS" is_up "$slot" || fail "$slot never became UP"
done
counters "start:"

echo "==> load: 16 keep-alive connections, 320 users, PUT/GET mix through HAProxy"
# Every request is recorded; at the end the whole history is checked for linearizability and
# kept, with a timeline of any failing user, in target/rolling-deploy/history-<launcher>/.
"$LOADGEN" run --target "127.0.0.1:$LB_PORT" --connections 16 --users 320 \
  --stop-file "$WORK/stop" --pause-us 3000 --history "target/rolling-deploy/history-$LAUNCHER" \
  >"$WORK/load.out" 2>&1 &
LOAD_PID=$!
started "$LOAD_PID"
sleep 1

counters "steady load before the rolls:"
echo "==> roll 1: deregister (state drain), then SIGTERM; drain delay $ROLL1_DRAIN_DELAY_SECS s"
# The new instances of roll 1 are the old ones of roll 2: they get roll 2's drain delay.
replace s1 s4 deregister "$ROLL2_DRAIN_DELAY_SECS"
replace s2 s5 deregister "$ROLL2_DRAIN_DELAY_SECS"
replace s3 s6 deregister "$ROLL2_DRAIN_DELAY_SECS"
counters "roll 1:"

echo "==> roll 2: SIGTERM only (readiness 503 + drain delay $ROLL2_DRAIN_DELAY_SECS s)"
replace s4 s1 sigterm "$ROLL1_DRAIN_DELAY_SECS"
replace s5 s2 sigterm "$ROLL1_DRAIN_DELAY_SECS"
replace s6 s3 sigterm "$ROLL1_DRAIN_DELAY_SECS"
counters "roll 2:"

echo "==> roll 3: a bad new version (live, never ready) replacing s1"
# HAProxy takes a fresh instance UP after RISE checks, possibly before the script could break
# it; so the slot is held in drain (checked, but given no request) until it is broken and DOWN.
hap "set server app/s4 state drain" >/dev/null
served=$(hstat app s4 stot)
prepare_data_dir "$WORK/bad-data"
start_instance s4 0 "$WORK/bad-data"
listening() { [ "$(log_count s4 '"message":"listening"')" -gt 0 ]; }
poll "$HEALTHY_DEADLINE_SECS" listening || fail "the bad version did not start"
# Its data directory breaks under it (the launcher's way: gone, or unreadable): every probe
# fails from now on.
break_data_dir "$WORK/bad-data"
# Once it has answered FALL checks with 503 (it answers nothing else from then on) and HAProxy
# shows it DOWN, no check can pass any more.
broken_and_down() {
  [ "$(log_count s4 '"route":"/health/ready".*"status":503')" -ge "$FALL" ] && is_down s4
}
poll 10 broken_and_down || fail "the bad version is $(status_of s4) with its data directory gone"
live=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$P4/health/live")
ready=$(curl -s --max-time 5 -w ' %{http_code}' "http://127.0.0.1:$P4/health/ready")
echo "    bad version: /health/live $live, /health/ready ${ready##* }: $(sed 's/.*"detail":"\([^"]*\)".*/\1/' <<<"${ready% *}")"
[ "$live" = 200 ] && [ "${ready##* }" = 503 ] || fail "the bad version is not live-but-unready"
t0=$(now_ms)
hap "set server app/s4 state ready" >/dev/null   # from here, the roll as for a good instance
if poll "$HEALTHY_DEADLINE_SECS" is_up s4; then fail "the bad version became healthy"; fi
echo "    s4 not UP after $(( ($(now_ms) - t0) / 1000 )) s: roll stopped; s1 neither deregistered nor stopped"
got=$(( $(hstat app s4 stot) - served ))
[ "$got" -eq 0 ] || fail "the bad version got $got requests"
signal_stop s4   # what the circuit breaker does to the new tasks
await_exit s4 "$STOP_TIMEOUT_SECS" || fail "the bad version did not exit within ${STOP_TIMEOUT_SECS} s of SIGTERM"
for slot in s1 s2 s3; do poll 5 is_up "$slot" || fail "$slot is $(status_of "$slot") after the stopped roll"; done
echo "    the bad version got 0 requests and was stopped; s1 s2 s3 (the old version) still UP"
sleep 1   # the load goes on against the old version for a second more
counters "roll 3:"

touch "$WORK/stop"
wait_exit "$LOAD_PID" 60 || fail "the load generator did not finish"
load_code=$EXIT_CODE
cat "$WORK/load.out"
read -r wretr wredis <<<"$(hstat app BACKEND wretr wredis)"
echo "HAProxy retries (wretr) $wretr, redispatches (wredis) $wredis"
[ "$load_code" -eq 0 ] || fail "the load saw failures"
[ "$wretr" = 0 ] && [ "$wredis" = 0 ] || fail "HAProxy retried or redispatched requests"
errors_seen
# Per server. No request goes to a server that is not UP, so these cost time, not requests.
# With containers, a new container's published port drops connections (no refusal) for about
# half a second while the engine wires its network: checks in that window time out.
timeouts=$(grep 'Health check for server app/.*timeout' "$WORK/haproxy.log" \
  | sed 's|.*server app/\([^ ]*\) .*|\1|' | sort | uniq -c | awk '{printf "%s%s %s", sep, $2, $1; sep=", "}') || true
echo "    health checks that timed out: $(grep -c 'Health check for server app/.*timeout' "$WORK/haproxy.log" || true)${timeouts:+ ($timeouts)}"
[ "$STOPPED" -eq 6 ] || fail "$STOPPED instances replaced, not 6"
echo "rolling-deploy ($LAUNCHER): PASS (6 instances replaced, each exited 0; bad version stopped; 0 failed requests, 0 retries)"
