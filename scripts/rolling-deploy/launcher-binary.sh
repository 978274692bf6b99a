# shellcheck shell=bash
# The rehearsal's instances as processes of the release binary on the host, all on one data
# directory. Sourced by run.sh, which defines started/wait_exit/fail and $WORK. The developer's
# path: no Docker engine, no root, no image build; CI runs launcher-container.sh.
#
# The launcher interface (launcher-container.sh defines the same):
#   launcher_prepare             build or find what instances run
#   launcher_describe            one line: what an instance is
#   prepare_data_dir DIR         make DIR a data directory instances can use
#   launch SLOT PORT DRAIN DATA LOG   start one instance serving on 127.0.0.1:PORT with
#                                drain delay DRAIN (s) and data directory DATA; LOG is
#                                run.sh's LOG_OF[SLOT], for the launcher to use as it likes
#   signal_stop SLOT             what ECS does to stop a task: SIGTERM (the stop timeout runs)
#   await_exit SLOT SECS         wait up to SECS for it to exit; exit status in EXIT_CODE;
#                                returns 1 if it had to be killed
#   instance_log SLOT            the instance's log so far
#   break_data_dir DIR           make DIR unusable under a running instance
#   launcher_cleanup             end everything the launcher started (the EXIT trap)

declare -A PID_OF=()   # slot -> pid of the instance serving it

launcher_prepare() {
  echo "==> building the release binary and the load generator"
  cargo build --release --locked --bin hello-birthday --example loadgen 2>&1 | tail -n 1
  BIN=target/release/hello-birthday
}

launcher_describe() { echo "instances of the release binary ($BIN)"; }

prepare_data_dir() { mkdir -p "$1"; }

launch() {
  local slot=$1 port=$2 drain=$3 data=$4 log=$5
  "$BIN" --listen "127.0.0.1:$port" --data-dir "$data" --log-format json \
    --drain-delay "$drain" >"$log" 2>&1 &
  PID_OF[$slot]=$!
  started "$!"
}

signal_stop() { kill -TERM "${PID_OF[$1]}"; }

await_exit() {
  local slot=$1 secs=$2
  wait_exit "${PID_OF[$slot]}" "$secs" || return 1
  unset "PID_OF[$slot]"
}

instance_log() { cat "${LOG_OF[$1]}"; }

# Its data directory is gone, as if its mount were: every probe fails. Renamed away in one
# step (removed with $WORK at exit): `rm -rf` raced with a probe file the instance was
# creating and failed with "Directory not empty".
break_data_dir() { mv "$1" "$1.gone"; }

launcher_cleanup() { :; }  # run.sh's cleanup ends every process started with `started`
