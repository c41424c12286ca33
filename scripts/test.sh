#!/usr/bin/env bash
# Runs the whole suite the way CI does:
#   1. scripts/infra.sh           Postgres, Redis, the broker and promtool are ready;
#   2. cargo build --bins         the e2e tests (crates/e2e) run the real binaries: bad config,
#                                 health, /metrics through promtool, SIGTERM drain, and the
#                                 fault suite (kills, freezes, restarts under load);
#   3. cargo nextest run --workspace --no-fail-fast   (cargo test when nextest is missing).
# The test runner goes last so its summary ends the output.
#
# Usage: scripts/test.sh [extra arguments for the test runner, e.g. -E 'test(outbox)']
# Environment: DATABASE_URL, REDIS_URL, KAFKA_BROKERS (see scripts/infra.sh).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export DATABASE_URL REDIS_URL KAFKA_BROKERS

say "== infrastructure"
# A broker with empty storage each run: the suite makes topics of its own every time.
BROKER_FRESH=1 bash "$ROOT/scripts/infra.sh"

cd "$ROOT"
say "== cargo build --bins"
cargo build --bins

if cargo nextest --version >/dev/null 2>&1; then
  runner=(cargo nextest run --workspace --no-fail-fast)
else
  warn "cargo-nextest not found; falling back to cargo test"
  runner=(cargo test --workspace --no-fail-fast)
fi
say "== tests: ${runner[*]}${*:+ $*}"
# Nothing is printed after the runner's summary.
exec "${runner[@]}" "$@"
