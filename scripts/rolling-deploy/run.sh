#!/usr/bin/env bash
# Rolling-deploy rehearsal (roll.py says what it does): its own tests, then what the
# instances run, then roll.py.
#   --launcher binary     processes of the release binary on the host: no Docker, no root;
#                         the developer's path (the default)
#   --launcher container  containers of the image built from the Dockerfile, run as the ECS
#                         task definition says: what CI runs (scripts/container/run.sh, which
#                         passes the image it built in HB_IMAGE; alone, this builds it first),
#                         on the engine at DOCKER_HOST if it answers, else one of our own
# Usage: scripts/rolling-deploy/run.sh [--launcher binary|container]
#   (needs haproxy and python3; the container launcher also docker.io, as root)
set -euo pipefail
cd "$(dirname "$0")/../.."

case "$*" in
  "" | "--launcher binary" | --launcher=binary) LAUNCHER=binary ;;
  "--launcher container" | --launcher=container) LAUNCHER=container ;;
  *) echo "usage: $0 [--launcher binary|container]" >&2; exit 2 ;;
esac
for tool in haproxy python3; do
  command -v "$tool" >/dev/null || { echo "rolling-deploy: $tool not found (apt-get install $tool)" >&2; exit 1; }
done

echo "==> the rehearsal's own tests"
python3 -m unittest discover -s scripts/rolling-deploy -p 'test_*.py'
. scripts/lib.sh
if [ "$LAUNCHER" = binary ]; then
  echo "==> building the release binary and the load generator"
  release_build --bin hello-birthday --example loadgen
  exec python3 scripts/rolling-deploy/roll.py --launcher binary --binary "$RELEASE/hello-birthday" \
    --loadgen "$RELEASE/examples/loadgen"
fi

. scripts/container/lib.sh
LOG_PREFIX=rolling-deploy
need docker docker.io
docker_up
trap docker_down EXIT
if [ -z "${HB_IMAGE:-}" ]; then
  echo "==> building the image (scripts/container/build.sh)"
  HB_IMAGE=$(scripts/container/build.sh | tee /dev/stderr | tail -n 1)
fi
echo "==> building the load generator"
release_build --example loadgen
# Not exec'd: the EXIT trap stops our engine. A SIGTERM reaches roll.py too (the step of
# scripts/container/run.sh signals its whole process group); it ends what it started first.
python3 scripts/rolling-deploy/roll.py --launcher container --image "$HB_IMAGE" --loadgen "$RELEASE/examples/loadgen"
