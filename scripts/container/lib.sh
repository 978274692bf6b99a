# shellcheck shell=bash
# Sourced by the scripts in scripts/container/ (after scripts/lib.sh, for poll): logging, and a
# Docker engine of the run's own. Defines functions and two variables only.
#
# No systemd here, and no engine to share: docker_up starts dockerd with its own data root
# (under target/container/, so images and the build cache survive between runs), its own exec
# root and socket (a fresh directory under /tmp: unix socket paths must stay short), and its
# own pid file, then exports DOCKER_HOST. docker_down removes the containers the scripts made
# (all carry the label hello-birthday.ci) and stops that dockerd by its pid. A script that
# finds DOCKER_HOST answering already (run.sh starts one engine for all its steps) uses it and
# stops nothing.

CONTAINER_CACHE=target/container
# Every container the scripts start carries it, so docker_down (and a later run, after a crash)
# removes them and nothing else.
CI_LABEL=hello-birthday.ci

log() { echo "${LOG_PREFIX:-container}: $*" >&2; }
die() { log "$*"; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 not found (apt-get install $2)"; }

# gone PID: the process has exited (a zombie counts: its parent has not reaped it yet).
gone() {
  local stat state
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  read -r state _ <<<"${stat##*) }"
  [ "$state" = Z ]
}

DOCKERD_PID=
DOCKERD_RUN=
docker_up() {
  if [ -n "${DOCKER_HOST:-}" ] && docker version >/dev/null 2>&1; then return 0; fi
  need dockerd docker.io
  need docker docker.io
  mkdir -p "$CONTAINER_CACHE"
  # One engine per data root. fd 8 stays open in this shell and in dockerd (which inherits
  # it): the lock is held while either lives.
  exec 8>"$CONTAINER_CACHE/.dockerd.lock"
  flock -n 8 || die "another run holds $CONTAINER_CACHE/.dockerd.lock (its dockerd uses the same data root)"
  local data_root=${HB_DOCKER_DATA_ROOT:-$PWD/$CONTAINER_CACHE/docker}
  mkdir -p "$data_root"
  # overlay2 cannot stack on an overlay file system (a CI job that itself runs in a container):
  # dockerd would fall back to vfs, a full copy per layer. Say so rather than be slow silently.
  if [ "$(stat -f -c %T "$data_root")" = overlayfs ]; then
    log "WARNING: $data_root is on overlayfs; dockerd will use vfs (slow, large). Set HB_DOCKER_DATA_ROOT to a directory on ext4/xfs."
  fi
  DOCKERD_RUN=$(mktemp -d /tmp/hb-dockerd.XXXXXX)
  # --userland-proxy=false: a published port is NAT (iptables) to the container's address, as
  # an ALB reaches a task's ENI; a port with no listener behind it refuses connections, instead
  # of docker-proxy accepting them and closing them at once.
  dockerd --data-root "$data_root" --exec-root "$DOCKERD_RUN/exec" \
    -H "unix://$DOCKERD_RUN/docker.sock" --pidfile "$DOCKERD_RUN/docker.pid" \
    --userland-proxy=false >"$DOCKERD_RUN/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  export DOCKER_HOST="unix://$DOCKERD_RUN/docker.sock"
  # shellcheck disable=SC2317  # called through poll
  engine_answers() {
    if gone "$DOCKERD_PID"; then tail -n 20 "$DOCKERD_RUN/dockerd.log" >&2; die "dockerd exited at startup"; fi
    docker version >/dev/null 2>&1
  }
  if ! poll 30 engine_answers; then
    tail -n 20 "$DOCKERD_RUN/dockerd.log" >&2
    die "dockerd did not answer on $DOCKER_HOST within 30 s"
  fi
  log "dockerd (pid $DOCKERD_PID) on $DOCKER_HOST, data root $data_root, storage driver $(docker info -f '{{.Driver}}')"
  # Containers a crashed earlier run left behind (the engine stopped them when it died).
  remove_our_containers
}

remove_our_containers() {
  local ids
  mapfile -t ids < <(docker ps -aq --filter "label=$CI_LABEL" 2>/dev/null)
  [ "${#ids[@]}" -eq 0 ] || docker rm -f "${ids[@]}" >/dev/null 2>&1 || true
}

# docker_down: only if docker_up started the engine. Safe to call twice.
docker_down() {
  [ -n "$DOCKERD_PID" ] || return 0
  local pid=$DOCKERD_PID children=()
  DOCKERD_PID=
  remove_our_containers
  # dockerd runs its containerd as a child: note it, in case dockerd must be SIGKILLed.
  mapfile -t children < <(ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' ')
  kill -TERM "$pid" 2>/dev/null || true
  if ! poll 30 gone "$pid"; then
    log "dockerd (pid $pid) still running 30 s after SIGTERM: SIGKILL"
    kill -9 "$pid" "${children[@]}" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  rm -rf "$DOCKERD_RUN"
}

# git_commit: what the image is built with and reports in hello_birthday_build_info.
git_commit() { git rev-parse HEAD; }
