#!/usr/bin/env bash
# The gateway's hold path at 1,000 concurrent clients (docs/benchmarks.md):
#   1. starts the platform with scripts/run-local.sh (PROFILE=release unless set; the demo
#      seed skipped; the gateway's rate limits raised far above the load, so they are
#      checked on every request but never refuse one, or RATE_LIMITS=off), unless the
#      gateway already answers;
#   2. runs loadgen (crates/loadgen), by MODE:
#      closed: the closed loop, the direct baseline (the same loop against inventory's gRPC)
#        and then the gateway, each for DURATION after a warm-up; prints holds/s, hold
#        latency percentiles, errors by status and the ratio;
#      open: the open loop through the gateway, holds offered at each of OPEN_LOOP_RATES
#        holds/s in turn (at most CLIENTS outstanding), each for DURATION after a warm-up;
#        prints a markdown table of latency (from each hold's intended start, so queueing
#        shows) against rate;
#      both: closed, then open;
#   3. stops what it started with scripts/stop-local.sh --keep-broker.
#
# Environment: CLIENTS (1000), DURATION (30s), USERS (150), PROFILE (release|debug),
# RATE_LIMITS (raised|off), MODE (closed|open|both; both if OPEN_LOOP_RATES is set, else
# closed), OPEN_LOOP_RATES (holds/s, comma-separated; 250,500,1000,2000).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENTS=${CLIENTS:-1000}
DURATION=${DURATION:-30s}
USERS=${USERS:-150}
export PROFILE=${PROFILE:-release}
RATE_LIMITS=${RATE_LIMITS:-raised}
[[ $RATE_LIMITS == raised || $RATE_LIMITS == off ]] || die 'RATE_LIMITS must be raised or off'
# Setting only the rates asks for the open loop as well, after the usual closed one.
if [[ -n ${OPEN_LOOP_RATES:-} ]]; then MODE=${MODE:-both}; else MODE=${MODE:-closed}; fi
[[ $MODE == closed || $MODE == open || $MODE == both ]] || die 'MODE must be closed, open or both'
OPEN_LOOP_RATES=${OPEN_LOOP_RATES:-250,500,1000,2000}
[[ $MODE == closed || $OPEN_LOOP_RATES =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] ||
  die "OPEN_LOOP_RATES must be holds/s, comma-separated (e.g. 250,500,1000,2000), not '$OPEN_LOOP_RATES'"
GATEWAY=http://127.0.0.1:8080
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $BIN_DIR == /* ]] || BIN_DIR=$ROOT/$BIN_DIR
BIN_DIR=$BIN_DIR/$PROFILE

# Each client holds a connection to the gateway, and the gateway one back: two descriptors
# per client on this machine, plus the services' own.
want=$((CLIENTS * 2 + 4096))
if (($(ulimit -n) < want)); then
  ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  (($(ulimit -n) >= CLIENTS + 256)) || die "ulimit -n is $(ulimit -n); $CLIENTS clients need more (raise the hard limit)"
fi

started=0
if curl -fsS -o /dev/null --max-time 2 "$GATEWAY/readyz" 2>/dev/null; then
  say "the gateway already answers at $GATEWAY; measuring the running platform as it is"
else
  log=$STATE_DIR/logs/bench-run-local.log
  mkdir -p "$STATE_DIR/logs"
  say "starting the platform (PROFILE=$PROFILE; log: $log)"
  (
    export DEMO_SEED=0
    raise_rate_limits
    if [[ $RATE_LIMITS == off ]]; then export TICKETING_GATEWAY__RATE_LIMITS__ENABLED=false; fi
    export TICKETING_TELEMETRY__LOG_FILTER=${TICKETING_TELEMETRY__LOG_FILTER:-warn}
    exec setsid bash "$ROOT/scripts/run-local.sh" >"$log" 2>&1 </dev/null
  ) &
  started=1
  trap 'bash "$ROOT/scripts/stop-local.sh" --keep-broker || true' EXIT
  deadline=$((SECONDS + 3600))
  until grep -q 'Press Ctrl-C' "$log"; do
    grep -q 'run-local: error' "$log" && { tail -n 30 "$log" >&2; die "run-local.sh failed; see $log"; }
    ((SECONDS < deadline)) || die "the platform did not start within an hour; see $log"
    sleep 2
  done
fi
[[ -x $BIN_DIR/loadgen ]] || die "$BIN_DIR/loadgen is missing; build it (cargo build --bins, --release for PROFILE=release)"

pwfile=$STATE_DIR/demo-admin-password
export DEMO_ADMIN_EMAIL=${TICKETING_IDENTITY__BOOTSTRAP_ADMIN_EMAIL:-admin@ticketing.local}
export DEMO_ADMIN_PASSWORD=${TICKETING_IDENTITY__BOOTSTRAP_ADMIN_PASSWORD:-$(cat "$pwfile" 2>/dev/null || true)}
[[ -n $DEMO_ADMIN_PASSWORD ]] || die "no admin password: set TICKETING_IDENTITY__BOOTSTRAP_ADMIN_PASSWORD or run run-local.sh once"

cat <<EOF
machine:  $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
          load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)
binaries: $PROFILE; ulimit -n $(ulimit -n); gateway rate limits: $RATE_LIMITS
EOF
# The gateway's CPU per request: its CPU time (user + system, from /proc) over a loadgen run
# divided by the requests it answered meanwhile (its own http_server_requests_total).
gateway_pid=$(cat "$STATE_DIR/pids/gateway.pid" 2>/dev/null || pgrep -f "$BIN_DIR/gateway" | head -n1 || true)
gateway_cpu() { awk '{print $14 + $15}' "/proc/$gateway_pid/stat"; }
gateway_requests() {
  curl -fsS --max-time 5 "http://127.0.0.1:$((GRPC_PORT[gateway] + 1000))/metrics" |
    awk '/^http_server_requests_total\{/ {n += $NF} END {printf "%d\n", n}'
}
measured() {
  echo "command:  loadgen $*"
  if [[ -z $gateway_pid || ! -r /proc/$gateway_pid/stat ]]; then
    "$BIN_DIR/loadgen" "$@"
    return
  fi
  local cpu0 req0 cpu1 req1
  cpu0=$(gateway_cpu) req0=$(gateway_requests)
  "$BIN_DIR/loadgen" "$@"
  cpu1=$(gateway_cpu) req1=$(gateway_requests)
  awk -v c=$((cpu1 - cpu0)) -v n=$((req1 - req0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {
    if (n > 0) printf "gateway CPU: %.1f s over %d requests = %.1f us per request\n", c / hz, n, c / hz / n * 1e6 }'
}
args=(--gateway "$GATEWAY" --clients "$CLIENTS" --duration "$DURATION" --users "$USERS")
if [[ $MODE != open ]]; then measured "${args[@]}"; fi
if [[ $MODE != closed ]]; then measured "${args[@]}" --target gateway --rates "$OPEN_LOOP_RATES"; fi
if ((started)); then say "stopping the platform"; fi
