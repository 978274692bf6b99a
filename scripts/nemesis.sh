#!/usr/bin/env bash
# Linearizability under disagreeing clocks, pauses and crashes (examples/nemesis.rs), on one
# machine: three instances of the release binary on one data directory, one run per seed.
# Each run prints its seed, its fault schedule and the checker's verdict; a failing user's
# timeline is written under target/nemesis/<seed>/linearizability/.
#
# Usage: scripts/nemesis.sh [SEED...]     (default: 1 2 3; NEMESIS_SECONDS per run, default 20)
# Needs: libfaketime (Debian: faketime), cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
echo "==> building the release binary and the nemesis"
cargo build --release --locked --bin hello-birthday --example nemesis 2>&1 | tail -1
failed=()
for seed in "${seeds[@]}"; do
  # Bounded: the run is NEMESIS_SECONDS of load plus start-up, the final reads and the check.
  timeout 300 target/release/examples/nemesis --seed "$seed" --seconds "${NEMESIS_SECONDS:-20}" \
    || failed+=("$seed")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "nemesis: FAILED on seeds ${failed[*]} (replay: target/release/examples/nemesis --seed N)" >&2
  exit 1
fi
echo "nemesis: PASS on seeds ${seeds[*]}"
