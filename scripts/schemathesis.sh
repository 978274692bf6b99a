#!/usr/bin/env bash
# Black-box contract fuzzing: starts the release binary on a free loopback port with a fresh
# data directory and runs schemathesis against the openapi.yaml it serves, with every check
# and every phase (examples, coverage, fuzzing, stateful), a fixed seed and a bounded number
# of examples. Exits non-zero on any failure, or if the server panicked or did not stop
# cleanly.
#
# Longer runs: SCHEMATHESIS_MAX_EXAMPLES=2000 SCHEMATHESIS_SEED=$RANDOM scripts/schemathesis.sh
#
#   SCHEMATHESIS_MAX_EXAMPLES  examples per operation and phase (default 200, about 30 s)
#   SCHEMATHESIS_SEED          the seed (default fixed, so CI runs are reproducible)
#   SCHEMATHESIS_WORKERS       concurrent workers (default 1)
#   SCHEMATHESIS_BINARY        test this binary instead of building the release one
#   SCHEMATHESIS_ARGS          extra arguments for `schemathesis run`
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ next to the hooks file

max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-200}
seed=${SCHEMATHESIS_SEED:-20261122}
workers=${SCHEMATHESIS_WORKERS:-1}
venv=target/schemathesis-venv
requirements=scripts/schemathesis-requirements.txt

. scripts/lib.sh
python_tools "$venv" "$requirements"

binary=${SCHEMATHESIS_BINARY:-}
if [ -z "$binary" ]; then
  echo "==> building the release binary"
  release_build --bin hello-birthday
  binary=$RELEASE/hello-birthday
fi

WORK=$(mktemp -d)
# Every background job still running: the server, also one that failed to start.
cleanup() { for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

start_server SERVER "$binary" --data-dir "$WORK/data"
server_pid=$SERVER_PID addr=$SERVER_ADDR log="$WORK/SERVER.log"

echo "==> schemathesis against http://$addr/openapi.yaml (seed $seed, $max_examples examples)"
status=0
# --include-path-regex '^/': schemathesis leaves out the operation that served the document
# unless a filter selects it; this selects every path, /openapi.yaml included.
# The hooks file keeps generated dates of birth in the past; it explains why.
# It runs inside target/schemathesis, where it keeps its crash cache (for `st replay`) and the
# JUnit report.
root=$(pwd)
mkdir -p target/schemathesis
(
  cd target/schemathesis
  SCHEMATHESIS_HOOKS="$root/scripts/schemathesis_hooks.py" "$root/$venv/bin/schemathesis" --no-color run \
    "http://$addr/openapi.yaml" \
    --include-path-regex '^/' \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --mode all \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --workers "$workers" \
    --generation-database none \
    --request-timeout 10 \
    --report junit --report-junit-path junit.xml \
    ${SCHEMATHESIS_ARGS:-}
) || status=$?

if grep -q "' panicked at " "$log"; then
  echo "the server panicked:" >&2
  grep -A3 "' panicked at " "$log" >&2
  status=1
fi
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "the server died during the run" >&2
  tail -n 20 "$log" >&2
  status=1
else
  kill -TERM "$server_pid"
  exit_code=0
  wait "$server_pid" || exit_code=$?
  if [ "$exit_code" -ne 0 ]; then
    echo "the server exited $exit_code after SIGTERM" >&2
    status=1
  fi
fi
# The server's own access log, independently of schemathesis: no request may have had a 5xx.
# (jq -R: each log line as text; fromjson? skips a line that is not JSON.)
read -r requests server_errors < <(jq -nrR '[inputs | fromjson? | select(.message == "request") | .status]
  | "\(length) \(map(select(. >= 500)) | length)"' "$log")
echo "server access log: $requests requests, $server_errors answered 5xx"
[ "$server_errors" -eq 0 ] || status=1
exit "$status"
