#!/usr/bin/env bash
# Stops what scripts/run-local.sh started, from its pid files in .local/pids/:
#   1. run-local.sh itself (run-local.pid), which stops its services in order on SIGTERM;
#   2. whatever is left: the seven services, the seed's inventory replica, the mail sink;
#   3. the broker, when run-local.sh started it (broker.pid); --keep-broker leaves it up.
# The machine's Postgres and Redis are shared and left alone. A pid is signalled only
# while it still runs the program its file names, so stale files are harmless.
set -euo pipefail
LOCAL_PLATFORM=1 # its own broker (scripts/lib.sh)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PID_DIR=$STATE_DIR/pids
SHUTDOWN_TIMEOUT=25
KEEP_BROKER=0
case ${1:-} in
  --keep-broker) KEEP_BROKER=1 ;;
  '') ;;
  *) die "usage: $0 [--keep-broker]" ;;
esac

# running NAME -> the pid in NAME.pid when that process still runs its program, else nothing.
running() {
  local file=$PID_DIR/$1.pid pid cmdline want
  [[ -f $file ]] || return 0
  pid=$(<"$file")
  if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
    cmdline=" $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) "
    case $1 in
      run-local) want=run-local.sh ;;
      mail) want=aiosmtpd ;;
      oidc-provider) want=provider.js ;;
      broker) want=tansu ;;
      inventory-seed) want=/inventory ;;
      *) want=/$1 ;;
    esac
    if [[ $cmdline == *"$want"* ]]; then
      printf '%s\n' "$pid"
      return 0
    fi
  fi
  rm -f "$file"
}

# 1. run-local.sh stops its own children and removes their pid files.
if pid=$(running run-local) && [[ -n $pid ]]; then
  say "stopping run-local.sh (pid $pid) and its services"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + SHUTDOWN_TIMEOUT + 10))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.3; done
  alive "$pid" && warn "run-local.sh (pid $pid) is still running; stopping what it started directly"
fi

# 2. Leftovers: a run-local.sh killed hard, or one that is still stopping.
names=("${SERVICES[@]}" inventory-seed mail oidc-provider)
pids=()
for name in "${names[@]}"; do
  pid=$(running "$name")
  if [[ -n $pid ]]; then
    say "stopping $name (pid $pid)"
    pids+=("$pid")
  fi
done
if ((${#pids[@]})); then
  stop_pids "$SHUTDOWN_TIMEOUT" "${pids[@]}"
  for pid in "${pids[@]}"; do
    [[ ${STOP_RC[$pid]} != 137 ]] || warn "pid $pid did not stop within ${SHUTDOWN_TIMEOUT}s; killed"
  done
fi
for name in "${names[@]}" run-local; do rm -f "$PID_DIR/$name.pid"; done

# 3. The broker, if this checkout's run-local.sh started it.
if ((!KEEP_BROKER)); then
  pid=$(running broker)
  if [[ -n $pid ]]; then
    say "stopping the broker tansu (pid $pid; its data stays in $STATE_DIR)"
    stop_pids "$SHUTDOWN_TIMEOUT" "$pid"
    rm -f "$PID_DIR/broker.pid" "$(broker_state).pid"
  fi
fi

busy=()
for svc in "${SERVICES[@]}"; do
  for port in "${GRPC_PORT[$svc]}" $((GRPC_PORT[$svc] + 1000)); do port_free "$port" || busy+=("$port"); done
done
port_free 8080 || busy+=(8080)
if ((${#busy[@]})); then
  warn "still in use (not started by run-local.sh?): ports ${busy[*]}"
  exit 1
fi
say "stopped; the platform's ports are free"
