#!/usr/bin/env bash
# The alerting rehearsal (rehearsal.py says what it does): checks and unit-tests the rules,
# builds the release binary (unless ALERTING_BINARY names one), then runs the rehearsal.
# Needs root (a tmpfs) and Debian's prometheus, prometheus-alertmanager, strace and python3.
# Usage: scripts/alerting/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in promtool prometheus prometheus-alertmanager strace python3; do
  command -v "$tool" >/dev/null || { echo "alerting: $tool not found (apt-get install prometheus prometheus-alertmanager strace)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "alerting: needs root (it mounts a tmpfs)" >&2; exit 1; }

echo "==> promtool check rules, promtool test rules"
promtool check rules monitoring/rules.yml
(cd monitoring && promtool test rules tests.yml)
echo "==> the rehearsal's own tests"
python3 -m unittest discover -s scripts/alerting -p 'test_*.py'

BIN=${ALERTING_BINARY:-}
if [ -z "$BIN" ]; then
  echo "==> building the release binary"
  cargo build --release --locked --bin hello-birthday 2>&1 | tail -n 1
  BIN=target/release/hello-birthday
fi
exec timeout 780 python3 scripts/alerting/rehearsal.py --binary "$BIN"
