#!/usr/bin/env bash
# The project's checks, in the order a failure is cheapest to find. `.ci/run` and the GitHub
# workflow both call this script, so local and CI checks are one command: scripts/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "the Python rehearsals' shared kit: its own tests"
python3 -m unittest discover -s scripts/lib -p 'test_*.py'

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test (the README's test command)"
cargo test --locked

step "promtool check metrics on a live /metrics scrape"
scripts/check-metrics.sh "${CARGO_TARGET_DIR:-target}/debug/hello-birthday"
