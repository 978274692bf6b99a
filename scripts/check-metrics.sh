#!/usr/bin/env bash
# Starts the given hello-birthday binary on a free port, exercises every route once, scrapes
# /metrics and runs `promtool check metrics` on it (format and naming lint).
set -euo pipefail
binary=${1:?usage: check-metrics.sh PATH_TO_BINARY}
command -v promtool >/dev/null || { echo "promtool not found (apt-get install prometheus)" >&2; exit 1; }

WORK=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
M_PID=
cleanup() { [ -n "$M_PID" ] && kill "$M_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

start_server M "$binary" --data-dir "$WORK/data"
addr=$M_ADDR
base="http://$addr"
curl -fsS -X PUT "$base/hello/alice" -H 'Content-Type: application/json' -d '{"dateOfBirth":"1990-01-15"}'
curl -fsS "$base/hello/alice" >/dev/null
curl -sS "$base/hello/nobody" >/dev/null
curl -sS "$base/health" >/dev/null
curl -sS "$base/nowhere" >/dev/null
curl -fsS "$base/metrics" >"$WORK/metrics"

promtool check metrics <"$WORK/metrics"
echo "promtool: $(grep -c '^# TYPE' "$WORK/metrics") metric families, $(grep -vc '^#' "$WORK/metrics") samples, no problems"
