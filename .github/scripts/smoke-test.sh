#!/usr/bin/env bash
# Smoke test of a running hello-birthday: readiness, then a PUT and a GET of a canary user.
# The deploy workflow runs it against the load balancer after every deploy.
#
#   .github/scripts/smoke-test.sh BASE_URL          e.g. https://hello.example.com
#
# Exits non-zero, saying what was wrong, on the first unexpected answer.
set -euo pipefail

base="${1:?usage: smoke-test.sh BASE_URL}"
base="${base%/}"
# Letters only (the app's username rule). Its record is overwritten by every smoke test.
user="${SMOKE_TEST_USER:-canary}"
date_of_birth="2000-01-01"

body="$(mktemp)"
trap 'rm -f "$body"' EXIT

# A few retries ride out a task that is still registering or a DNS change that is propagating.
curl_args=(--silent --show-error --max-time 10 --retry 5 --retry-delay 3 --retry-all-errors
  --output "$body" --write-out '%{http_code}')

fail() {
  echo "smoke test FAILED: $1" >&2
  echo "response body: $(head -c 2000 "$body")" >&2
  exit 1
}

echo "==> GET $base/health"
status="$(curl "${curl_args[@]}" "$base/health")"
[ "$status" = 200 ] || fail "GET /health answered $status, expected 200"
grep -q '"status":"ready"' "$body" || fail "GET /health did not report ready"

echo "==> PUT $base/hello/$user"
status="$(curl "${curl_args[@]}" -X PUT -H 'Content-Type: application/json' \
  --data "{\"dateOfBirth\":\"$date_of_birth\"}" "$base/hello/$user")"
[ "$status" = 204 ] || fail "PUT /hello/$user answered $status, expected 204"

echo "==> GET $base/hello/$user"
status="$(curl "${curl_args[@]}" "$base/hello/$user")"
[ "$status" = 200 ] || fail "GET /hello/$user answered $status, expected 200"
grep -Eq "\"message\":\"Hello, $user! (Your birthday is in [0-9]+ day\\(s\\)|Happy birthday!)\"" "$body" \
  || fail "GET /hello/$user did not greet $user"

echo "smoke test passed: $base"
