#!/usr/bin/env bash
# Runs the built image the way ECS does (read-only root file system, a volume at /data, the
# image's own user) and checks it: the HEALTHCHECK turns healthy, the smoke test passes, and
# `docker stop` (SIGTERM to PID 1) ends it with exit code 0 well within ECS's stopTimeout.
#
#   .github/scripts/container-smoke-test.sh IMAGE
set -euo pipefail

image="${1:?usage: container-smoke-test.sh IMAGE}"
here="$(cd "$(dirname "$0")" && pwd)"
name="hello-birthday-smoke-$$"
port=18080

cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker volume rm -f "$name" >/dev/null 2>&1 || true
}
trap cleanup EXIT

user="$(docker image inspect --format '{{.Config.User}}' "$image")"
[ "$user" = "65532:65532" ] || { echo "image runs as '$user', expected 65532:65532" >&2; exit 1; }

docker volume create "$name" >/dev/null
docker run --detach --name "$name" --read-only --volume "$name:/data" \
  --publish "127.0.0.1:$port:8080" "$image" >/dev/null

echo "==> waiting for the container's HEALTHCHECK"
for _ in $(seq 1 30); do
  health="$(docker inspect --format '{{.State.Health.Status}}' "$name")"
  [ "$health" = healthy ] && break
  sleep 2
done
if [ "$health" != healthy ]; then
  docker logs "$name" >&2
  echo "container never became healthy (last status: $health)" >&2
  exit 1
fi

bash "$here/smoke-test.sh" "http://127.0.0.1:$port"

echo "==> docker stop (SIGTERM to PID 1)"
start="$(date +%s)"
docker stop --time 30 "$name" >/dev/null
elapsed=$(( $(date +%s) - start ))
code="$(docker inspect --format '{{.State.ExitCode}}' "$name")"
docker logs "$name" 2>&1 | tail -n 5
[ "$code" = 0 ] || { echo "container exited $code after SIGTERM, expected 0" >&2; exit 1; }
[ "$elapsed" -lt 25 ] || { echo "container took ${elapsed}s to stop" >&2; exit 1; }
echo "container smoke test passed: $image (stopped in ${elapsed}s, exit 0)"
