# shellcheck shell=bash
# The rehearsal's instances as containers of the service's image, run as the ECS task
# definition says (scripts/container/taskdef.py reads it from terraform/: read-only root, the
# task's environment, stopTimeout, health check timings, ulimits, CPU and memory), each
# publishing the container port on its slot's port on 127.0.0.1, all on one bind mount owned
# by 65532:65532 (as the EFS access point makes it). Stopped as ECS stops a task: `docker
# stop -t <stopTimeout>` (SIGTERM, then SIGKILL when the timeout runs out); the exit code is
# the container's. Sourced by run.sh; the interface is described in launcher-binary.sh.
#
# The image: $HB_IMAGE if set (scripts/container/run.sh passes the one it built and checked),
# else scripts/container/build.sh builds it (cached: seconds when nothing changed). The engine:
# $DOCKER_HOST if it answers, else a dockerd of our own (scripts/container/lib.sh).

. scripts/container/lib.sh
LOG_PREFIX=rolling-deploy

declare -A NAME_OF=()     # slot -> container name
declare -A STOPPER_OF=()  # slot -> pid of the `docker stop` running for it
RUN_ARGS=()
RUN_ID=$$
RUN_LABEL=hello-birthday.rehearsal=$RUN_ID   # this run's containers, removed at exit

launcher_prepare() {
  need docker docker.io
  docker_up
  if [ -z "${HB_IMAGE:-}" ]; then
    echo "==> building the image (scripts/container/build.sh)"
    HB_IMAGE=$(scripts/container/build.sh | tee /dev/stderr | tail -n 1)
  fi
  docker image inspect "$HB_IMAGE" >/dev/null 2>&1 || fail "no image $HB_IMAGE"
  mapfile -t RUN_ARGS < <(python3 scripts/container/taskdef.py run-args)
  [ "${#RUN_ARGS[@]}" -gt 0 ] || fail "cannot read the task definition (scripts/container/taskdef.py)"
  DATA_PATH=$(python3 scripts/container/taskdef.py get dataMount)
  CONTAINER_PORT=$(python3 scripts/container/taskdef.py get containerPort)
  echo "==> building the load generator"
  cargo build --release --locked --example loadgen 2>&1 | tail -n 1
}

launcher_describe() { echo "containers of $HB_IMAGE (docker run ${RUN_ARGS[*]})"; }

prepare_data_dir() {
  mkdir -p "$1"
  chown 65532:65532 "$1"
}

launch() {
  local slot=$1 port=$2 drain=$3 data=$4 log=$5 name
  name=hb-roll-$RUN_ID-$INSTANCES-$slot
  docker run -d --name "$name" --label "$CI_LABEL" --label "$RUN_LABEL" \
    -p "127.0.0.1:$port:$CONTAINER_PORT" -v "$data:$DATA_PATH" \
    "${RUN_ARGS[@]}" --env "DRAIN_DELAY_SECS=$drain" "$HB_IMAGE" >/dev/null \
    || fail "docker run for $slot failed"
  NAME_OF[$slot]=$name
  echo "$name" >"$log"   # the slot's log file names the container; its log is `docker logs`
}

signal_stop() {
  docker stop -t "$STOP_TIMEOUT_SECS" "${NAME_OF[$1]}" >/dev/null 2>&1 &
  STOPPER_OF[$1]=$!
  started "$!"
}

await_exit() {
  local slot=$1 secs=$2 name=${NAME_OF[$1]} state
  # `docker stop` itself SIGKILLs at the stop timeout; a little more for the engine.
  if ! wait_exit "${STOPPER_OF[$slot]}" $(( secs + 10 )); then
    docker kill "$name" >/dev/null 2>&1 || true
    EXIT_CODE=137
    return 1
  fi
  unset "STOPPER_OF[$slot]"
  read -r state EXIT_CODE <<<"$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$name")"
  [ "$state" = exited ] || { EXIT_CODE=-1; return 1; }
  # 137 is docker stop's SIGKILL at the stop timeout: the task would have been killed.
  [ "$EXIT_CODE" != 137 ] || return 1
}

instance_log() { docker logs "$(cat "${LOG_OF[$1]}")" 2>&1; }

# The app runs as 65532: with its data directory's mode at 000 it can neither create nor open
# anything there, as with a broken mount or access point. (Not from the start: the binary
# proves its data directory writable at startup and exits 1 otherwise.)
break_data_dir() { chmod 000 "$1"; }

launcher_cleanup() {
  local ids
  mapfile -t ids < <(docker ps -aq --filter "label=$RUN_LABEL" 2>/dev/null)
  [ "${#ids[@]}" -eq 0 ] || docker rm -f "${ids[@]}" >/dev/null 2>&1 || true
  docker_down
}
