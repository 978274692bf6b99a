#!/usr/bin/env bash
# Builds the service's image from the unchanged Dockerfile, as a user would:
#
#   DOCKER_BUILDKIT=0 docker build --network none --build-arg GIT_COMMIT=$(git rev-parse HEAD) .
#
# on FROM images made locally by base-images.sh (stand-ins: no image can be pulled here).
# DOCKER_BUILDKIT=0: the docker client here has no buildx; the legacy builder ignores the
# Dockerfile's `# syntax=` line. --network none: the builder stand-in holds the crates and sets
# CARGO_NET_OFFLINE=true; nothing in the build reaches the network.
#
# Tags the image hello-birthday:<commit> and hello-birthday:ci, prints the build time and the
# image size, and, as its last line on stdout, the image reference (hello-birthday:<commit>).
# The build's output is in target/container/build.log.
#
# Usage: scripts/container/build.sh  (starts its own dockerd unless DOCKER_HOST answers)
#   HB_GIT_COMMIT  the commit to build in (default: git rev-parse HEAD)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
. scripts/container/lib.sh
LOG_PREFIX=build

docker_up
trap docker_down EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

t0=$(date +%s)
scripts/container/base-images.sh
t1=$(date +%s)

COMMIT=${HB_GIT_COMMIT:-$(git_commit)}
IMAGE=hello-birthday:$COMMIT
BUILD_LOG=$CONTAINER_CACHE/build.log
# The build context is what .dockerignore lets in; a change there not yet committed is built
# too, under HEAD's commit: say so.
if [ -n "$(git status --porcelain -- Cargo.toml Cargo.lock src openapi.yaml Dockerfile .dockerignore)" ]; then
  log "NOTE: uncommitted changes in the build context; the image reports commit $COMMIT all the same"
fi
log "docker build (legacy builder, --network none) -> $IMAGE (log: $BUILD_LOG)"
if ! DOCKER_BUILDKIT=0 docker build --network none --build-arg "GIT_COMMIT=$COMMIT" \
       -t "$IMAGE" -t hello-birthday:ci . >"$BUILD_LOG" 2>&1; then
  tail -n 40 "$BUILD_LOG" >&2
  die "docker build failed (full log: $BUILD_LOG)"
fi
t2=$(date +%s)
# The legacy builder's cache is untagged images (the builder stage's layers among them): a
# plain `docker image prune` would empty it. Only those unused for a week go.
docker image prune -f --filter until=168h >/dev/null

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
cached=$(grep -c '^ ---> Using cache' "$BUILD_LOG" || true)
steps=$(grep -c '^Step ' "$BUILD_LOG" || true)
echo "==> image $IMAGE ($(docker image inspect -f '{{.Id}}' "$IMAGE" | cut -c1-19))"
echo "    size $(( size / 1000000 )) MB ($size bytes)"
echo "    base images $(( t1 - t0 )) s; docker build $(( t2 - t1 )) s ($cached of $steps steps from the build cache)"
echo "$IMAGE"
