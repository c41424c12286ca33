#!/usr/bin/env bash
# The README's run command as a new user runs it: scripts/run-local.sh without the test
# suite's KAFKA_BROKERS, RUNS times in a row (default 2: a re-run must seed again), each run
# up, its services on its broker and its demo seed complete, then scripts/stop-local.sh.
# In CI (.ci/run) because the other checks start their platforms through lib.sh's
# start_platform on the test broker, so only this one sees run-local.sh's own broker and
# its seed.
#
# Usage: scripts/check-run-local.sh [RUNS]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${1:-2}
[[ $RUNS =~ ^[1-9][0-9]?$ ]] || die "RUNS must be 1 to 99, not '$RUNS'"
log=$STATE_DIR/logs/check-run-local.log
# Databases of its own, made afresh: a new user has none, and those another checkout's
# run-local.sh made are sealed with that checkout's key (its .local/signing-kek).
export DB_PREFIX=${DB_PREFIX:-check_run_local}
for svc in "${SERVICES[@]}"; do
  PGOPTIONS="-c client_min_messages=warning" psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS ${DB_PREFIX}_$svc WITH (FORCE)"
done
mkdir -p "$STATE_DIR/logs"
trap 'bash "$ROOT/scripts/stop-local.sh" >/dev/null 2>&1 || true' EXIT

for ((run = 1; run <= RUNS; run++)); do
  say "run $run of $RUNS: scripts/run-local.sh (log: $log)"
  env -u KAFKA_BROKERS setsid bash "$ROOT/scripts/run-local.sh" >"$log" 2>&1 </dev/null &
  pid=$!
  until grep -q 'Press Ctrl-C' "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$log" >&2
      die "run $run: run-local.sh stopped before the platform was up"
    fi
    sleep 2
  done
  # The seed's summary: what it created, or that a run before it had (run-local.sh only
  # warns when the seed fails).
  seeded='^(created [0-9]+ events|demo data already present)'
  if grep -q 'demo-seed failed' "$log" || ! grep -Eq "$seeded" "$log"; then
    tail -n 40 "$STATE_DIR/logs/demo-seed.log" >&2 || true
    die "run $run: the demo seed did not complete"
  fi
  # The services reach the broker run-local.sh chose (a seed over data that is already
  # there needs none).
  for svc in inventory booking; do
    metrics="http://127.0.0.1:$((GRPC_PORT[$svc] + 1000))/metrics"
    deadline=$((SECONDS + 60))
    until curl -fsS --max-time 5 "$metrics" | grep -Eq '^platform_dependency_up\{[^}]*dependency="kafka"[^}]*\} 1$'; do
      ((SECONDS < deadline)) || die "run $run: $svc does not reach its broker (platform_dependency_up at $metrics)"
      sleep 2
    done
  done
  say "run $run: up; $(grep -Em1 "$seeded" "$log")"
  bash "$ROOT/scripts/stop-local.sh"
  wait "$pid" 2>/dev/null || true
done
say "run-local.sh brought the platform up with its demo data $RUNS times in a row"
