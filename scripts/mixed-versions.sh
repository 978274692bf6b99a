#!/usr/bin/env bash
# Two versions of the service on one data directory, as during a rolling deploy that changes
# the on-disk layout: this checkout's binary and the binary of PREVIOUS, the last commit that
# wrote temp files beside the records instead of in tmp/ (docs/storage.md, "Versions side by
# side"). examples/nemesis.rs runs them side by side (instances 0 and 2 this version, 1 the
# previous) under SIGKILL, SIGSTOP mid-write and clocks that disagree: the history must be
# linearizable (so mutual exclusion held across versions), every answer documented and in time,
# and after this version's startup sweep no temp file of either version may be left.
#
# Usage: scripts/mixed-versions.sh [SEED...]   (default: 1 2; NEMESIS_SECONDS per run, default 20)
# Needs: git (the full history), cargo, libfaketime (Debian: faketime). The previous version is
# built once into target/mixed-versions/ (a separate target directory: a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

PREVIOUS=b0d10846eda6ea7651e1f95b36478857bf0d3010
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2)
work=target/mixed-versions
previous_bin="$work/hello-birthday-${PREVIOUS:0:12}"

if [ ! -x "$previous_bin" ]; then
  git cat-file -e "$PREVIOUS^{commit}" 2>/dev/null \
    || { echo "mixed-versions: commit $PREVIOUS is not in this clone (a shallow clone? git fetch --unshallow)" >&2; exit 1; }
  echo "==> building the previous version ${PREVIOUS:0:12} (its own source tree and target directory)"
  rm -rf "$work/src" && mkdir -p "$work/src"
  git archive "$PREVIOUS" | tar -x -C "$work/src"
  (cd "$work/src" && GIT_COMMIT=$PREVIOUS CARGO_TARGET_DIR=../target \
    cargo build --release --locked --bin hello-birthday 2>&1 | tail -1)
  cp "$work/target/release/hello-birthday" "$previous_bin"
fi
echo "==> building this version and the nemesis"
cargo build --release --locked --bin hello-birthday --example nemesis 2>&1 | tail -1

failed=()
for seed in "${seeds[@]}"; do
  timeout 300 target/release/examples/nemesis --seed "$seed" --seconds "${NEMESIS_SECONDS:-20}" \
    --binary "target/release/hello-birthday,$previous_bin" --out target/mixed-versions/runs \
    || failed+=("$seed")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "mixed-versions: FAILED on seeds ${failed[*]}" >&2
  exit 1
fi
echo "mixed-versions: PASS on seeds ${seeds[*]} (this version and ${PREVIOUS:0:12} side by side)"
