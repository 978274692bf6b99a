#!/usr/bin/env bash
# A bounded fuzzing pass on stable Rust (cargo fuzz needs nightly): the proptest targets that
# throw arbitrary bytes, strings and JSON at the username parser, the date parser and the body
# decoder, then random requests at the real binary, with more cases than `cargo test` runs.
# None may panic, and no input may be answered 5xx.
#
#   FUZZ_CASES     cases per in-process target (default 5000, about 25 s on 2 cores)
#   FUZZ_REQUESTS  random requests to the binary (default 2000, a few seconds)
#
# Longer: FUZZ_CASES=1000000 FUZZ_REQUESTS=100000 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cases=${FUZZ_CASES:-5000}
requests=${FUZZ_REQUESTS:-2000}

echo "==> parsers and body decoder, $cases cases per target"
PROPTEST_CASES=$cases cargo test --locked --lib -- \
  domain::username domain::date_of_birth routes::hello

echo "==> the binary, $requests random requests"
PROPTEST_CASES=$requests cargo test --locked --test api -- \
  --exact openapi::no_generated_request_gets_a_5xx
