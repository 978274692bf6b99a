#!/usr/bin/env bash
# The hostile-client rehearsal (rehearsal.py says what it does): the attack code's own tests,
# then the release binary and the load generator, then the rehearsal, bounded in time.
# Usage: scripts/hostile/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "==> the rehearsal's own tests"
python3 -m unittest discover -s scripts/hostile -p 'test_*.py'
echo "==> building the release binary and the load generator"
cargo build --release --locked --bin hello-birthday --example loadgen 2>&1 | tail -n 1
exec timeout 420 python3 scripts/hostile/rehearsal.py --binary target/release/hello-birthday \
  --loadgen target/release/examples/loadgen
