#!/usr/bin/env bash
# Linearizability under disagreeing clocks, pauses and crashes (examples/nemesis.rs), on one
# machine: three instances of the release binary on one data directory, one run per seed.
# Each run prints its seed, its fault schedule and the checker's verdict; a failing user's
# timeline is written under target/nemesis/<seed>/linearizability/.
#
# --previous: two versions on one data directory, as during a rolling deploy that changes the
# on-disk layout. Instance 1 runs the binary of PREVIOUS, the last commit that wrote temp files
# beside the records instead of in tmp/ (docs/storage.md, "Versions side by side"); instances 0
# and 2 this checkout's. The history must still be linearizable (so mutual exclusion held across
# versions), every answer documented and in time, and after this version's startup sweep no temp
# file of either version may be left. PREVIOUS is built once into <target>/mixed-versions/ (its own
# source tree and target directory: a few minutes; needs the full git history).
#
# Usage: scripts/nemesis.sh [--previous] [SEED...]   (default: 1 2 3; NEMESIS_SECONDS per run,
#        default 20)
# Needs: libfaketime (Debian: faketime), cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

PREVIOUS=b0d10846eda6ea7651e1f95b36478857bf0d3010
name=nemesis extra=(--binary "$RELEASE/hello-birthday")  # nemesis itself defaults to ./target's
if [ "${1:-}" = --previous ]; then
  shift
  name=mixed-versions work=$TARGET_DIR/mixed-versions
  previous_bin="$work/hello-birthday-${PREVIOUS:0:12}"
  if [ ! -x "$previous_bin" ]; then
    git cat-file -e "$PREVIOUS^{commit}" 2>/dev/null \
      || { echo "$name: commit $PREVIOUS is not in this clone (a shallow clone? git fetch --unshallow)" >&2; exit 1; }
    echo "==> building the previous version ${PREVIOUS:0:12} (its own source tree and target directory)"
    rm -rf "$work/src" && mkdir -p "$work/src"
    git archive "$PREVIOUS" | tar -x -C "$work/src"
    (cd "$work/src" && GIT_COMMIT=$PREVIOUS CARGO_TARGET_DIR=../target release_build --bin hello-birthday)
    cp "$work/target/release/hello-birthday" "$previous_bin"
  fi
  extra=(--binary "$RELEASE/hello-birthday,$previous_bin" --out "$work/runs")
fi
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
echo "==> building the release binary and the nemesis"
release_build --bin hello-birthday --example nemesis
failed=()
for seed in "${seeds[@]}"; do
  # Bounded: the run is NEMESIS_SECONDS of load plus start-up, the final reads and the check.
  timeout 300 "$RELEASE/examples/nemesis" --seed "$seed" --seconds "${NEMESIS_SECONDS:-20}" "${extra[@]}" \
    || failed+=("$seed")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "$name: FAILED on seeds ${failed[*]} (replay: $RELEASE/examples/nemesis --seed N ${extra[*]})" >&2
  exit 1
fi
echo "$name: PASS on seeds ${seeds[*]}${work:+ (this version and ${PREVIOUS:0:12} side by side)}"
