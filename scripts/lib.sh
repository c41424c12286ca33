# shellcheck shell=bash
# Shared helpers for the scripts in this folder. Source it; do not run it.
#
# Sets ROOT (the repo root) and STATE_DIR (default: $ROOT/.local, gitignored),
# fills in the server URLs the tests and scripts use, and describes the seven
# services once so every script agrees on names, ports and dependencies.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE_DIR=${STATE_DIR:-$ROOT/.local}
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
# scripts/run-local.sh and stop-local.sh (LOCAL_PLATFORM=1) default to a broker of their own,
# apart from the test suite's, whose topics pile up run after run: the local platform never
# shares broker state with the tests.
if [[ ${LOCAL_PLATFORM:-0} == 1 ]]; then KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:9192}; fi
# Exported: scripts/infra.sh, which run-local.sh runs, must start the broker chosen here.
export KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:9092}

# The services, in start order, with their default gRPC ports (admin = gRPC + 1000).
# shellcheck disable=SC2034 # used by the scripts that source this file
SERVICES=(gateway identity catalog inventory booking payment notification)
# shellcheck disable=SC2034
declare -A GRPC_PORT=(
  [gateway]=50050 [identity]=50051 [catalog]=50052 [inventory]=50053
  [booking]=50054 [payment]=50055 [notification]=50056
)

# Dependencies per service (docs/architecture.md's table): who owns a database,
# who keeps state in Redis, who talks to Kafka. Skeletons ignore the settings
# they do not use yet, so the scripts can pass them all along already.
svc_has_db() { [[ $1 != gateway ]]; }
svc_has_redis() { [[ $1 == gateway || $1 == identity || $1 == inventory ]]; }
svc_has_kafka() { [[ $1 != gateway ]]; }

# Prints "<script>: message" on stdout / "<script>: error: message" on stderr and exits.
SCRIPT_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
say() { printf '%s: %s\n' "$SCRIPT_NAME" "$*"; }
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
  exit 1
}

# url_host URL -> the host of a scheme://[user@]host[:port][/path] URL (brackets kept off).
url_host() {
  local rest=${1#*://}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  rest=${rest##*@}
  if [[ $rest == \[* ]]; then
    rest=${rest#\[}
    printf '%s\n' "${rest%%\]*}"
  else
    printf '%s\n' "${rest%%:*}"
  fi
}

# url_port URL DEFAULT -> the port of the URL, or DEFAULT.
url_port() {
  local rest=${1#*://}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  rest=${rest##*@}
  rest=${rest##*\]}
  if [[ $rest == *:* ]]; then printf '%s\n' "${rest##*:}"; else printf '%s\n' "$2"; fi
}

# is_loopback HOST -> true for addresses only this machine serves.
is_loopback() {
  case $1 in
    '' | localhost | 127.* | ::1) return 0 ;;
    *) return 1 ;;
  esac
}

# db_url NAME -> DATABASE_URL with its database replaced by NAME (query string kept).
db_url() {
  local url=$DATABASE_URL query=''
  if [[ $url == *\?* ]]; then
    query="?${url#*\?}"
    url=${url%%\?*}
  fi
  local scheme=${url%%://*} rest=${url#*://}
  if [[ $rest == */* ]]; then rest=${rest%%/*}; fi
  printf '%s://%s/%s%s\n' "$scheme" "$rest" "$1" "$query"
}

# with_user URL USER PASSWORD -> URL with its user and password replaced (query string kept).
with_user() {
  local scheme=${1%%://*} rest=${1#*://}
  printf '%s://%s:%s@%s\n' "$scheme" "$2" "$3" "${rest#*@}"
}

# port_free PORT -> true when nothing listens on PORT (any address).
port_free() {
  if command -v ss >/dev/null 2>&1; then
    [[ -z $(ss -Htln "sport = :$1" 2>/dev/null) ]]
  else
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# alive PID -> true while PID runs. Unlike `kill -0`, a child that exited but was not
# reaped yet (a zombie) counts as gone.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# wait_http URL SECONDS [PID] -> polls URL until it answers 2xx (returns 0), gives up after
# SECONDS (returns 1), or stops early when PID is gone (returns 2).
wait_http() {
  local url=$1 deadline=$((SECONDS + $2)) pid=${3:-}
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    if [[ -n $pid ]] && ! alive "$pid"; then return 2; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# stop_pids SECONDS PID... -> SIGTERM to each, then waits up to SECONDS for all of them.
# Sets STOP_RC[pid] to each exit status (127 for a process that is not our child, whose
# status cannot be known) and STOP_SECS[pid] to how long it took; leftovers get SIGKILL
# and rc 137.
# shellcheck disable=SC2034 # read by the scripts that source this file
declare -A STOP_RC=() STOP_SECS=()
stop_pids() {
  local timeout=$1 pid started=$SECONDS
  shift
  for pid in "$@"; do
    if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  local pending=("$@")
  while ((${#pending[@]})); do
    local still=()
    for pid in "${pending[@]}"; do
      if alive "$pid"; then
        still+=("$pid")
      else
        STOP_SECS[$pid]=$((SECONDS - started))
        STOP_RC[$pid]=0
        wait "$pid" 2>/dev/null || STOP_RC[$pid]=$?
      fi
    done
    pending=("${still[@]}")
    ((${#pending[@]})) || break
    if ((SECONDS - started >= timeout)); then
      for pid in "${pending[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        # shellcheck disable=SC2034
        STOP_RC[$pid]=137
        # shellcheck disable=SC2034
        STOP_SECS[$pid]=$((SECONDS - started))
      done
      break
    fi
    sleep 0.2
  done
}

# step NAME COMMAND...: runs a check, timing it; a failure is added to the caller's FAILED
# array and the run goes on (the check scripts report every failure at the end).
step() {
  local name=$1 started=$SECONDS
  shift
  say "== $name"
  if "$@"; then
    say "   ok ($((SECONDS - started))s)"
  else
    warn "$name FAILED"
    FAILED+=("$name")
  fi
}

# random_token -> 8 lowercase hex characters.
random_token() { od -An -N4 -tx1 /dev/urandom | tr -d ' \n'; }

# start_platform PREFIX LOG: runs scripts/run-local.sh in the background, on loopback and the
# default ports, for a check that needs a platform of its own: fresh databases (PREFIX_*, made
# afresh: the demo seed signs in as a bootstrap admin whose password this checkout generates,
# which an older database would not know), Redis keys under PREFIX: (emptied with them: hot
# state must not outlive the databases it mirrors, nor mix with another platform's), topics and
# consumer groups of its own (the broker is shared and keeps everything), and the demo data.
# Returns once it runs; stop_platform (call it from an EXIT trap) stops it. Other TICKETING_*
# variables reach every service.
PLATFORM_PID=''
start_platform() {
  local prefix=$1 log=$2 svc deadline
  export DB_PREFIX=$prefix
  # The test suite's broker, not scripts/run-local.sh's own: these platforms are tests too.
  export KAFKA_BROKERS
  export TICKETING_KAFKA__TOPIC_NAMESPACE="$prefix-$(date +%s)"
  export TICKETING_REDIS__KEY_PREFIX="$prefix:"
  for svc in identity catalog inventory booking payment notification; do
    PGOPTIONS="-c client_min_messages=warning" psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS ${prefix}_$svc WITH (FORCE)"
  done
  redis-cli -u "$REDIS_URL" --scan --pattern "$prefix:*" | xargs -r -n 1000 redis-cli -u "$REDIS_URL" unlink >/dev/null
  say "starting the platform (scripts/run-local.sh; log: $log)"
  bash "$ROOT/scripts/run-local.sh" >"$log" 2>&1 &
  PLATFORM_PID=$!
  deadline=$((SECONDS + 1200))
  until grep -q "The platform is running" "$log"; do
    if ((SECONDS > deadline)) || ! kill -0 "$PLATFORM_PID" 2>/dev/null; then
      tail -n 40 "$log" >&2
      die "the platform did not come up"
    fi
    sleep 2
  done
  if grep -q "demo-seed failed" "$log"; then
    tail -n 40 "$log" >&2
    die "the demo seed failed"
  fi
}

# raise_rate_limits: the gateway's limits far above a benchmark's load, for a platform started
# from this shell: every request is still checked in Redis, none is refused.
raise_rate_limits() {
  export TICKETING_GATEWAY__RATE_LIMITS__IP__PER_SECOND=1000000 TICKETING_GATEWAY__RATE_LIMITS__IP__BURST=1000000
  export TICKETING_GATEWAY__RATE_LIMITS__USER__PER_SECOND=1000000 TICKETING_GATEWAY__RATE_LIMITS__USER__BURST=1000000
  export TICKETING_GATEWAY__RATE_LIMITS__HEAVY__PER_SECOND=1000000 TICKETING_GATEWAY__RATE_LIMITS__HEAVY__BURST=1000000
  export TICKETING_GATEWAY__RATE_LIMITS__REGISTER__PER_SECOND=1000000 TICKETING_GATEWAY__RATE_LIMITS__REGISTER__BURST=1000000
}

# stop_platform: stops what start_platform started, if anything.
stop_platform() {
  if [[ -n $PLATFORM_PID ]]; then bash "$ROOT/scripts/stop-local.sh" --keep-broker >/dev/null 2>&1 || true; fi
  PLATFORM_PID=''
}

# broker_state -> the path prefix ($STATE_DIR/tansu-<port>) of the pid, log and data files of
# the local broker at $KAFKA_BROKERS (scripts/infra.sh starts it).
broker_state() { printf '%s/tansu-%s\n' "$STATE_DIR" "$(url_port "tcp://${KAFKA_BROKERS%%,*}" 9092)"; }

# Python with kafka-python, once scripts/infra.sh has made the venv; plain python3 otherwise.
kafka_python() {
  if [[ -x $STATE_DIR/venv/bin/python ]]; then
    printf '%s\n' "$STATE_DIR/venv/bin/python"
  else
    command -v python3
  fi
}
