#!/usr/bin/env bash
# CI entry point for the container rehearsal: the real image, built from the unchanged
# Dockerfile and run as ECS runs it.
#
#   1. the checkers' own tests (taskdef.py, check.py), and the task definitions of staging and
#      production as Terraform renders them (scripts/terraform-offline/run.sh: the real
#      terraform test, offline; written to target/task-definitions/<env>.json)
#   2. build.sh: the FROM images made locally (base-images.sh: stand-ins, cached under
#      target/container/), then `docker build --network none` of the Dockerfile; image size
#      and build time
#   3. check.py, per environment: one container run as its rendered task definition says, and
#      what ECS relies on: healthy, PUT/GET, readiness, build_info's commit, `docker stop` -> exit 0
#      well within stopTimeout, volume files owned by 65532, uid 65532, no shell
#   4. scripts/rolling-deploy/run.sh --launcher container: three containers of the image on
#      one bind mount behind HAProxy, rolled under load (zero failed requests, ...)
#
# One dockerd for all steps, with its data root in target/container/docker (images and the
# build cache survive between runs); it and every container are stopped on every exit. Each
# step runs under a deadline. Installs nothing: needs, as root, the Debian packages docker.io
# debootstrap haproxy python3 (and the Rust toolchain and terraform, as for the rest of CI).
#
# Usage: scripts/container/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
. scripts/container/lib.sh
LOG_PREFIX=container

BUILD_DEADLINE=1800   # s; a cold build is ~3-4 min here (debootstrap, toolchain, cargo build)
CHECK_DEADLINE=300
ROLL_DEADLINE=600

[ "$(id -u)" = 0 ] || die "run as root (dockerd, debootstrap, chown to 65532)"
for tool in dockerd:docker.io docker:docker.io debootstrap:debootstrap haproxy:haproxy \
            python3:python3 cargo:rustup; do
  need "${tool%%:*}" "${tool#*:}"
done

banner() { printf '\n######## %s\n' "$*"; }
# step DEADLINE COMMAND...: COMMAND in a process group of its own (timeout's); at the deadline
# SIGTERM to all of it (the scripts' traps clean up), SIGKILL 30 s later. Waited for with
# `wait`, which a signal interrupts (a foreground command would hold our traps until it ends).
STEP_PID=
step() {
  local deadline=$1 code=0; shift
  timeout --kill-after=30 "$deadline" "$@" &
  STEP_PID=$!
  wait "$STEP_PID" || code=$?
  STEP_PID=
  [ "$code" -ne 124 ] || log "$* ran out of its $deadline s"
  return "$code"
}
# A SIGTERM or SIGINT (CI cancelling, ^C): the running step gets SIGTERM (timeout passes it on
# to the step's whole group) and its cleanup is waited for; then the EXIT trap stops dockerd.
on_signal() {
  if [ -n "$STEP_PID" ]; then
    kill -TERM "$STEP_PID" 2>/dev/null || true
    wait "$STEP_PID" 2>/dev/null || true
  fi
  exit "$1"
}

t0=$(date +%s)
docker_up
trap docker_down EXIT
trap 'on_signal 143' TERM
trap 'on_signal 130' INT
# Built and checked against one commit, even if HEAD moves meanwhile.
export HB_GIT_COMMIT=${HB_GIT_COMMIT:-$(git_commit)}

banner "container checkers' own tests"
python3 -m unittest discover -s scripts/container -p 'test_*.py'
step "$CHECK_DEADLINE" bash scripts/terraform-offline/run.sh terraform/staging terraform/production
t1=$(date +%s)

banner "image: base image stand-ins, then docker build of the Dockerfile"
mkdir -p "$CONTAINER_CACHE"
step "$BUILD_DEADLINE" scripts/container/build.sh >"$CONTAINER_CACHE/build.out"
sed '$d' "$CONTAINER_CACHE/build.out"
IMAGE=$(tail -n 1 "$CONTAINER_CACHE/build.out")
t2=$(date +%s)

for env in staging production; do
  banner "the image run as the ECS task definition of $env says"
  step "$CHECK_DEADLINE" python3 scripts/container/check.py "$IMAGE" "$HB_GIT_COMMIT" --env "$env"
done
t3=$(date +%s)

banner "rolling deploy of containers behind HAProxy"
HB_IMAGE=$IMAGE step "$ROLL_DEADLINE" scripts/rolling-deploy/run.sh --launcher container
t4=$(date +%s)

echo
echo "==> container rehearsal: PASS in $(( t4 - t0 )) s (engine, tests and task definitions $(( t1 - t0 )) s, image $(( t2 - t1 )) s, check $(( t3 - t2 )) s, rolling deploy $(( t4 - t3 )) s)"
