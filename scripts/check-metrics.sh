#!/usr/bin/env bash
# Starts the given hello-birthday binary on a free port, exercises every route once, scrapes
# /metrics and runs `promtool check metrics` on it (format and naming lint).
set -euo pipefail
binary=${1:?usage: check-metrics.sh PATH_TO_BINARY}
command -v promtool >/dev/null || { echo "promtool not found (apt-get install prometheus)" >&2; exit 1; }

work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$binary" --listen 127.0.0.1:0 --data-dir "$work/data" --log-format json >"$work/log" 2>&1 &
server_pid=$!
addr=
for _ in $(seq 1 200); do
  addr=$(sed -n 's/.*"message":"listening".*"addr":"\([^"]*\)".*/\1/p' "$work/log" | head -n1)
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
  sleep 0.05
done
[ -n "$addr" ] || { echo "server did not start" >&2; cat "$work/log" >&2; exit 1; }

base="http://$addr"
curl -fsS -X PUT "$base/hello/alice" -H 'Content-Type: application/json' -d '{"dateOfBirth":"1990-01-15"}'
curl -fsS "$base/hello/alice" >/dev/null
curl -sS "$base/hello/nobody" >/dev/null
curl -sS "$base/health" >/dev/null
curl -sS "$base/nowhere" >/dev/null
curl -fsS "$base/metrics" >"$work/metrics"

promtool check metrics <"$work/metrics"
echo "promtool: $(grep -c '^# TYPE' "$work/metrics") metric families, $(grep -vc '^#' "$work/metrics") samples, no problems"
