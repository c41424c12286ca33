#!/usr/bin/env bash
# The memory benchmark (issue 14): resident memory of every service, from /proc, after
# start-up and the demo seed, after a burst of logins, and after the 1,000-client hold run
# of scripts/bench-gateway.sh. At each stage it prints, per service, the peak so far
# (VmHWM) and the settled figure (VmRSS after SETTLE seconds of quiet). docs/benchmarks.md
# records a run; the chart's memory requests and limits are derived from it.
#
# Usage: scripts/bench-memory.sh            against the platform scripts/run-local.sh runs
#        scripts/bench-memory.sh --start    starts one of its own first (fresh benchmem_*
#                                           databases and topics, the gateway's rate limits
#                                           raised), and stops it after
# Environment: LOGINS (default 500), LOGIN_CLIENTS (50), HOLD_CLIENTS (1000), HOLD_USERS
# (150), HOLD_SECONDS (30), SETTLE (15), PROFILE (release|debug; default release).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOGINS=${LOGINS:-500}
LOGIN_CLIENTS=${LOGIN_CLIENTS:-50}
HOLD_CLIENTS=${HOLD_CLIENTS:-1000}
HOLD_USERS=${HOLD_USERS:-150}
HOLD_SECONDS=${HOLD_SECONDS:-30}
SETTLE=${SETTLE:-15}
export PROFILE=${PROFILE:-release}
SERVICES=(gateway identity catalog inventory booking payment notification)

work=$(mktemp -d)
cleanup() {
  stop_platform
  rm -rf "$work"
}
trap cleanup EXIT

# The hold run measures holds, not 429s: as in scripts/bench-gateway.sh, the limits are raised.
if [[ ${1:-} == --start ]]; then
  raise_rate_limits
  start_platform benchmem "$work/run-local.log"
fi
curl -fsS --max-time 2 http://127.0.0.1:8080/readyz >/dev/null ||
  die "the gateway does not answer on 127.0.0.1:8080; start the platform with scripts/run-local.sh"
loadgen=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/loadgen
[[ -x $loadgen ]] || die "$loadgen is missing: scripts/run-local.sh builds it (PROFILE=$PROFILE)"
export DEMO_ADMIN_PASSWORD=${TICKETING_IDENTITY__BOOTSTRAP_ADMIN_PASSWORD:-$(cat "$ROOT/.local/demo-admin-password")}

# kib SERVICE FIELD: the field (VmRSS, VmHWM) of the service's process in KiB.
kib() {
  local pid
  pid=$(cat "$STATE_DIR/pids/$1.pid")
  awk -v f="$2:" '$1 == f {print $2}' "/proc/$pid/status"
}
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }

declare -A PEAK SETTLED
stage() {
  local name=$1 svc
  sleep "$SETTLE"
  for svc in "${SERVICES[@]}"; do
    PEAK[$name/$svc]=$(mib "$(kib "$svc" VmHWM)")
    SETTLED[$name/$svc]=$(mib "$(kib "$svc" VmRSS)")
  done
  say "$name: $(for svc in "${SERVICES[@]}"; do printf '%s %s/%s MiB  ' "$svc" "${PEAK[$name/$svc]}" "${SETTLED[$name/$svc]}"; done)"
}

say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); profile $PROFILE"
stage "started and seeded"
"$loadgen" --target logins --logins "$LOGINS" --clients "$LOGIN_CLIENTS" --users 20 | tee "$work/logins.log"
stage "after $LOGINS logins"
"$loadgen" --clients "$HOLD_CLIENTS" --users "$HOLD_USERS" --duration "${HOLD_SECONDS}s" | tee "$work/holds.log"
stage "after the $HOLD_CLIENTS-client hold run"

stages=("started and seeded" "after $LOGINS logins" "after the $HOLD_CLIENTS-client hold run")
printf '\nMiB, peak so far (VmHWM) / settled %ss later (VmRSS)\n\n| service |' "$SETTLE"
for s in "${stages[@]}"; do printf ' %s |' "$s"; done
printf '\n|---|'
for _ in "${stages[@]}"; do printf -- '---:|'; done
printf '\n'
for svc in "${SERVICES[@]}"; do
  printf '| %s |' "$svc"
  for s in "${stages[@]}"; do printf ' %s / %s |' "${PEAK[$s/$svc]}" "${SETTLED[$s/$svc]}"; done
  printf '\n'
done
