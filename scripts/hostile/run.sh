#!/usr/bin/env bash
# The hostile-client rehearsal (rehearsal.py says what it does): the attack code's own tests,
# then the release binary and the load generator, then the rehearsal, bounded in time.
# Usage: scripts/hostile/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "==> the rehearsal's own tests"
python3 -m unittest discover -s scripts/hostile -p 'test_*.py'
echo "==> building the release binary and the load generator"
. scripts/lib.sh
release_build --bin hello-birthday --example loadgen
exec timeout 420 python3 scripts/hostile/rehearsal.py --binary "$RELEASE/hello-birthday" \
  --loadgen "$RELEASE/examples/loadgen"
