#!/usr/bin/env bash
# The API contract check (issue 12): schemathesis (PyPI, pinned, in $STATE_DIR/venv) generates
# requests for every operation of the gateway's /openapi.json, valid and invalid, and checks each
# answer against the document: no 5xx, no undocumented status or media type, every body and
# header as its schema says, invalid input refused with a 4xx. It runs twice, as a demo buyer
# and as a demo organizer, with real ids from scripts/fuzz_fixtures.py (an event on sale, a
# venue, an active hold, a pending booking, a queue ticket) pinned in scripts/schemathesis.toml,
# so requests reach past the 404s. A fixed seed and a bounded number of examples per operation
# keep it to a few minutes on 2 cores.
#
# Usage: scripts/fuzz-api.sh            against the platform scripts/run-local.sh runs
#        scripts/fuzz-api.sh --start    starts one of its own first (fresh fuzz_* databases,
#                                       topics), with limits the fuzzer does not run into, and
#                                       stops it after (what .ci/run does)
# Environment: FUZZ_EXAMPLES (per operation, default 40), FUZZ_SEED (default 12), GATEWAY
# (default http://127.0.0.1:8080). Failures, with a curl command to reproduce each, are
# printed; the JUnit reports stay in $STATE_DIR/fuzz/<role>/ (`st replay <id>` there).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCHEMATHESIS_VERSION=4.32.5
FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-40}
FUZZ_SEED=${FUZZ_SEED:-12}
GATEWAY=${GATEWAY:-http://127.0.0.1:8080}
REPORTS=$STATE_DIR/fuzz

venv=$STATE_DIR/venv
if [[ ! -x $venv/bin/schemathesis ]] || [[ $("$venv/bin/schemathesis" --version) != *"$SCHEMATHESIS_VERSION"* ]]; then
  [[ -x $venv/bin/pip ]] || python3 -m venv "$venv" >/dev/null || die "python3 -m venv failed"
  say "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >/dev/null ||
    die "pip install schemathesis failed"
fi

work=$(mktemp -d)
cleanup() {
  stop_platform
  rm -rf "$work"
}
trap cleanup EXIT

if [[ ${1:-} == --start ]]; then
  # The limiter and load shedding stay on and documented (429, 503), but far above what the
  # fuzzer sends, so that its requests reach the routes.
  export TICKETING_GATEWAY__RATE_LIMITS__IP__PER_SECOND=10000 TICKETING_GATEWAY__RATE_LIMITS__IP__BURST=100000
  export TICKETING_GATEWAY__RATE_LIMITS__USER__PER_SECOND=10000 TICKETING_GATEWAY__RATE_LIMITS__USER__BURST=100000
  export TICKETING_GATEWAY__RATE_LIMITS__LOGIN__PER_SECOND=1000 TICKETING_GATEWAY__RATE_LIMITS__LOGIN__BURST=10000
  export TICKETING_GATEWAY__RATE_LIMITS__HEAVY__PER_SECOND=1000 TICKETING_GATEWAY__RATE_LIMITS__HEAVY__BURST=10000
  export TICKETING_GATEWAY__RATE_LIMITS__REGISTER__PER_SECOND=1000 TICKETING_GATEWAY__RATE_LIMITS__REGISTER__BURST=10000
  start_platform fuzz "$work/run-local.log"
fi
curl -fsS --max-time 2 "$GATEWAY/readyz" >/dev/null ||
  die "the gateway does not answer at $GATEWAY; start the platform with scripts/run-local.sh"

say "fixtures: demo buyer and organizer, an event on sale, a hold, a booking, a queue ticket"
"$venv/bin/python" "$ROOT/scripts/fuzz_fixtures.py" "$GATEWAY" >"$work/fixtures.env"
set -a
# shellcheck disable=SC1091
source "$work/fixtures.env"
set +a

rm -rf "$REPORTS"
failed=()
# fuzz ROLE TOKEN EVENT: one schemathesis run as ROLE, on EVENT.
fuzz() {
  local role=$1 started=$SECONDS
  say "fuzzing $GATEWAY/openapi.json as the $role (seed $FUZZ_SEED, $FUZZ_EXAMPLES examples per operation)"
  mkdir -p "$REPORTS/$role"
  # In the report folder: schemathesis keeps its replay cache (.schemathesis/) in the working
  # directory. One worker: hypothesis's lambda descriptions break CPython 3.11's parser when
  # two threads draw at once.
  if (cd "$REPORTS/$role" && FUZZ_TOKEN=$2 FUZZ_EVENT=$3 "$venv/bin/schemathesis" \
    --config-file "$ROOT/scripts/schemathesis.toml" run "$GATEWAY/openapi.json" --seed "$FUZZ_SEED" \
    --max-examples "$FUZZ_EXAMPLES" --workers 1 --generation-database none --no-color \
    --report junit --report-dir "$REPORTS/$role"); then
    say "the $role's run found nothing ($((SECONDS - started))s)"
  else
    warn "the $role's run found the problems above ($((SECONDS - started))s)"
    failed+=("$role")
  fi
}
fuzz buyer "$FUZZ_BUYER_TOKEN" "$FUZZ_EVENT"
fuzz organizer "$FUZZ_ORGANIZER_TOKEN" "$FUZZ_ORGANIZER_EVENT"

((${#failed[@]} == 0)) || die "the API does not keep its contract (runs: ${failed[*]}; reports: $REPORTS)"
say "the API keeps its contract: no server error, nothing undocumented"
