#!/usr/bin/env bash
# Makes this machine ready for the tests and for scripts/run-local.sh, idempotently:
#   - Postgres at $DATABASE_URL and Redis at $REDIS_URL answer (started with the
#     machine's own commands when they are local and down);
#   - the Kafka-compatible broker tansu is installed and answers Kafka requests at
#     $KAFKA_BROKERS (started in the background when local and down);
#   - promtool is installed;
#   - helm and kubectl are installed under $STATE_DIR/deploy/bin (the chart's tests render it);
#   - the gateway's API checks have their tools: chromium (headless screenshot of the Swagger
#     UI) and openapi-spec-validator (PyPI, in $STATE_DIR/venv);
#   - the certified OpenID provider of identity's social-login tests (npm's oidc-provider,
#     pinned by scripts/oidc-provider/package-lock.json) is installed under
#     $STATE_DIR/oidc-provider, with scripts/oidc-provider/provider.js beside it;
#   - the build and test packages are installed: libssl-dev and pkg-config (rdkafka's `ssl`
#     feature links the system's OpenSSL), openssl (the TLS tests make their certificates).
# It exports nothing; it prints the environment the tests use.
#
# Environment:
#   DATABASE_URL    admin URL of the Postgres server (default postgres://postgres@127.0.0.1:5432/postgres)
#   REDIS_URL       Redis server (default redis://127.0.0.1:6379)
#   KAFKA_BROKERS   broker (default 127.0.0.1:9092)
#   STATE_DIR       where the broker's data, log and pid file and the Python venv live (default .local/)
#   BROKER_STORAGE  sqlite (default; survives restarts) or memory (volatile)
#   BROKER_FRESH    1: restart the local broker this script started on that port with empty
#                   storage (scripts/test.sh: every test run makes topics of its own, and a
#                   broker that kept them all slowed to a stop)
# Each local broker's pid, log and data are $STATE_DIR/tansu-<port>.*: the test suite's
# (9092) and scripts/run-local.sh's (9192) never share state.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/deploy-tools.sh
source "$ROOT/scripts/deploy-tools.sh"

TANSU_VERSION=0.6.0
KAFKA_PYTHON_VERSION=2.2.15
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
BROKER_WAIT=${BROKER_WAIT:-60}

# Runs a root-only command, through sudo when we are not root.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

# --- Postgres -----------------------------------------------------------------

postgres_up() {
  pg_isready -q -t 3 -d "$DATABASE_URL" && psql "$DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1
}

ensure_postgres() {
  if ! command -v pg_isready >/dev/null || ! command -v psql >/dev/null; then
    die "pg_isready/psql not found; install Debian's postgresql-client"
  fi
  if postgres_up; then
    say "Postgres is up at $(url_host "$DATABASE_URL"):$(url_port "$DATABASE_URL" 5432)"
    return
  fi
  local host
  host=$(url_host "$DATABASE_URL")
  is_loopback "$host" || die "Postgres at $DATABASE_URL does not answer, and it is not on this machine"
  local version=''
  if [[ -d /etc/postgresql ]]; then
    version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n1)
  fi
  [[ -n $version ]] ||
    die "Postgres at $DATABASE_URL is down and there is no local cluster under /etc/postgresql to start"
  say "Postgres is down; starting cluster $version/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
    warn "pg_ctlcluster exited non-zero (the cluster may already be starting)"
  local deadline=$((SECONDS + 30))
  until postgres_up; do
    ((SECONDS < deadline)) || die "Postgres at $DATABASE_URL is still down after starting it; see /var/log/postgresql/"
    sleep 1
  done
  say "Postgres started"
}

# --- Redis --------------------------------------------------------------------

redis_up() {
  [[ $(redis-cli -u "$REDIS_URL" ping 2>/dev/null) == PONG ]]
}

ensure_redis() {
  command -v redis-cli >/dev/null || die "redis-cli not found; install Debian's redis-tools"
  if redis_up; then
    say "Redis is up at $(url_host "$REDIS_URL"):$(url_port "$REDIS_URL" 6379)"
    return
  fi
  is_loopback "$(url_host "$REDIS_URL")" || die "Redis at $REDIS_URL does not answer, and it is not on this machine"
  command -v redis-server >/dev/null || die "Redis at $REDIS_URL is down and redis-server is not installed"
  local port
  port=$(url_port "$REDIS_URL" 6379)
  say "Redis is down; starting redis-server on port $port"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log ||
    warn "redis-server exited non-zero"
  local deadline=$((SECONDS + 20))
  until redis_up; do
    ((SECONDS < deadline)) || die "Redis at $REDIS_URL is still down after starting it; see /var/log/redis/ci.log"
    sleep 0.5
  done
  say "Redis started"
}

# --- tansu --------------------------------------------------------------------

find_tansu() {
  if command -v tansu 2>/dev/null; then
    return
  elif [[ -x $HOME/.cargo/bin/tansu ]]; then
    printf '%s\n' "$HOME/.cargo/bin/tansu"
  else
    return 1
  fi
}

ensure_tansu() {
  local tansu
  if tansu=$(find_tansu); then
    say "tansu: $("$tansu" --version 2>/dev/null || echo '?') at $tansu"
    return
  fi
  # Someone (another script, a setup step) may be installing it already: wait rather than race.
  if pgrep -f "cargo install tansu" >/dev/null 2>&1; then
    say "a 'cargo install tansu' is already running; waiting for it (up to 40 minutes)"
    local deadline=$((SECONDS + 2400))
    while pgrep -f "cargo install tansu" >/dev/null 2>&1 && ! find_tansu >/dev/null; do
      ((SECONDS < deadline)) || die "the running 'cargo install tansu' did not finish within 40 minutes"
      sleep 10
    done
    # The binary appears a moment before cargo exits; let it finish writing.
    while pgrep -f "cargo install tansu" >/dev/null 2>&1 && ((SECONDS < deadline)); do sleep 2; done
    if tansu=$(find_tansu); then
      say "tansu installed by the other process: $tansu"
      return
    fi
    warn "the other install ended without a tansu binary; installing it here"
  fi
  command -v cargo >/dev/null || die "cargo not found; cannot install tansu"
  local log="$STATE_DIR/tansu-install.log"
  say "installing tansu $TANSU_VERSION with cargo (10-25 minutes on 2 cores); log: $log"
  # Its own temporary target dir, not the workspace's. --locked: newer dependencies break the build.
  if ! env -u CARGO_TARGET_DIR cargo install tansu --version "$TANSU_VERSION" --locked \
    --features dynostore,libsql >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "cargo install tansu failed; see $log"
  fi
  tansu=$(find_tansu) || die "cargo install tansu succeeded but no tansu binary is on PATH or in ~/.cargo/bin"
  say "tansu installed: $tansu"
}

# --- Python probe -------------------------------------------------------------

ensure_probe_venv() {
  local venv="$STATE_DIR/venv"
  if [[ -x $venv/bin/python ]] && "$venv/bin/python" -c 'import kafka' 2>/dev/null; then
    return
  fi
  say "creating $venv with kafka-python $KAFKA_PYTHON_VERSION (for the broker probe)"
  if python3 -m venv "$venv" >/dev/null 2>&1 &&
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kafka-python==$KAFKA_PYTHON_VERSION" >/dev/null 2>&1; then
    return
  fi
  warn "could not install kafka-python; the probe falls back to a raw ApiVersions request"
  rm -rf "$venv"
}

# The e2e gateway test validates /openapi.json with it (crates/e2e/tests/platform/gateway.rs).
ensure_spec_validator() {
  local venv="$STATE_DIR/venv"
  if [[ -x $venv/bin/openapi-spec-validator ]]; then
    return
  fi
  [[ -x $venv/bin/pip ]] || python3 -m venv "$venv" >/dev/null || die "python3 -m venv failed"
  say "installing openapi-spec-validator $OPENAPI_SPEC_VALIDATOR_VERSION into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION" >/dev/null ||
    die "pip install openapi-spec-validator failed"
}

broker_probe() {
  "$(kafka_python)" "$ROOT/scripts/kafka_tool.py" probe --brokers "$KAFKA_BROKERS" --timeout "$1"
}

# --- the broker ---------------------------------------------------------------

# tansu_of PIDFILE -> the pid in PIDFILE when that process is a tansu broker.
tansu_of() {
  local pid
  [[ -f $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == tansu ]] || return 1
  printf '%s\n' "$pid"
}

# fresh_broker STATE -> stops the broker we started with STATE and empties its storage.
fresh_broker() {
  local state=$1 pid
  if pid=$(tansu_of "$state.pid"); then
    say "BROKER_FRESH: stopping tansu (pid $pid) to start it with empty storage"
    stop_pids 20 "$pid"
  elif broker_probe 3 >/dev/null 2>&1; then
    warn "BROKER_FRESH: the broker at $KAFKA_BROKERS was not started by this script; using it as it is"
    return
  fi
  rm -f "$state.pid" "$state.db" "$state.db-wal" "$state.db-shm"
}

ensure_broker() {
  local host port state
  host=$(url_host "tcp://${KAFKA_BROKERS%%,*}")
  port=$(url_port "tcp://${KAFKA_BROKERS%%,*}" 9092)
  state=$(broker_state)
  local pidfile="$state.pid" log="$state.log"
  if [[ ${BROKER_FRESH:-0} == 1 ]] && is_loopback "$host"; then fresh_broker "$state"; fi

  local answer
  if answer=$(broker_probe 3 2>/dev/null); then
    say "broker already answering at $host:$port ($answer)"
    return
  fi
  is_loopback "$host" || die "the broker at $KAFKA_BROKERS does not answer Kafka requests, and it is not on this machine"

  # A broker we started earlier may still be coming up.
  if [[ -f $pidfile ]]; then
    local old
    if old=$(tansu_of "$pidfile"); then
      # A panic since it started (its log is appended to): tansu 0.6 keeps listening after
      # its storage task died, and answers nothing for good (docs/adr/0019-*.md).
      if tac "$log" 2>/dev/null | sed '/^=== .*tansu broker starting/q' | grep -q 'panicked'; then
        die "tansu (pid $old) panicked and will not answer again; see $log (stop it with: kill $old, then run this again)"
      fi
      say "tansu (pid $old) is running but not answering yet; waiting up to ${BROKER_WAIT}s"
      answer=$(broker_probe "$BROKER_WAIT") ||
        die "tansu (pid $old) does not answer Kafka requests; see $log (stop it with: kill $old)"
      say "broker answering at $host:$port ($answer)"
      return
    fi
    rm -f "$pidfile"
  fi
  port_free "$port" ||
    die "something listens on port $port but does not answer Kafka requests; free the port or set KAFKA_BROKERS"

  local tansu storage
  tansu=$(find_tansu) || die "tansu is not installed"
  case ${BROKER_STORAGE:-sqlite} in
    # tansu resolves sqlite:// paths against its working directory, so it runs in STATE_DIR.
    sqlite) storage="sqlite://${state##*/}.db" ;;
    memory) storage="memory://tansu/" ;;
    *) die "BROKER_STORAGE must be sqlite or memory, not '${BROKER_STORAGE}'" ;;
  esac
  say "starting tansu on $host:$port with $storage storage (log: $log)"
  printf '\n=== %s: tansu broker starting (%s)\n' "$(date -Is)" "$storage" >>"$log"
  # setsid: its own session, so a Ctrl-C in the terminal that ran us does not reach it.
  (
    cd "$STATE_DIR"
    exec setsid nohup "$tansu" broker \
      --listener-url "tcp://$host:$port" \
      --advertised-listener-url "tcp://$host:$port" \
      --storage-engine "$storage" >>"$log" 2>&1 </dev/null
  ) &
  local pid=$!
  echo "$pid" >"$pidfile"
  if ! answer=$(broker_probe "$BROKER_WAIT"); then
    tail -n 20 "$log" >&2 || true
    kill -0 "$pid" 2>/dev/null || die "tansu exited; see $log"
    die "tansu (pid $pid) started but did not answer Kafka requests within ${BROKER_WAIT}s; see $log"
  fi
  say "broker started (pid $pid, pid file $pidfile) and answering ($answer)"
}

# --- promtool -----------------------------------------------------------------

ensure_promtool() {
  if command -v promtool >/dev/null; then
    say "promtool: $(promtool --version 2>&1 | head -n1)"
    return
  fi
  say "installing promtool (Debian package prometheus)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null ||
    die "apt-get install prometheus failed"
  command -v promtool >/dev/null || die "promtool still missing after installing prometheus"
  say "promtool: $(promtool --version 2>&1 | head -n1)"
}

# --- helm ---------------------------------------------------------------------

ensure_helm() {
  ensure_helm_kubectl
  say "helm: $("$BIN/helm" version --short) ($BIN/helm)"
}

# --- build and test packages ---------------------------------------------------

# librdkafka is built with the system's OpenSSL (SSL/SASL_SSL to managed Kafka, ADR 0016);
# the TLS tests make a throwaway CA with the openssl command; the gateway test screenshots
# the Swagger UI with headless chromium; jq picks values out of the README's sample curls;
# the printed-tickets test renders PDF pages with poppler-utils' pdftoppm and pdftotext.
ensure_packages() {
  local missing=() pkg
  for pkg in libssl-dev pkg-config openssl chromium jq poppler-utils; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    say "packages: libssl-dev $(dpkg-query -W -f='${Version}' libssl-dev), pkg-config, openssl, chromium, jq, poppler-utils"
    return
  fi
  say "installing ${missing[*]} (Debian)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
}

# --- the OpenID provider of the social-login tests ---------------------------------

# identity's API tests start it on loopback (ADR 0045); `npm ci` runs only when the
# lockfile changed, so a machine that has it spends a comparison.
ensure_oidc_provider() {
  local src=$ROOT/scripts/oidc-provider dir=$STATE_DIR/oidc-provider
  mkdir -p "$dir"
  if ! cmp -s "$src/package-lock.json" "$dir/package-lock.json" || [[ ! -d $dir/node_modules/oidc-provider ]]; then
    command -v npm >/dev/null || apt_install nodejs npm
    command -v npm >/dev/null || die "npm not found; install Node.js (Debian's nodejs + npm)"
    say "installing oidc-provider (npm) under $dir"
    rm -f "$dir/package-lock.json"
    cp "$src/package.json" "$src/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci of oidc-provider failed"
  fi
  cp "$src/provider.js" "$dir/"
  say "oidc-provider: $(node -p "require('$dir/node_modules/oidc-provider/package.json').version") ($dir), node $(node --version)"
}

ensure_packages
ensure_oidc_provider
ensure_postgres
ensure_redis
ensure_tansu
ensure_probe_venv
ensure_spec_validator
ensure_broker
ensure_promtool
ensure_helm

say "ready. The tests use (these are the defaults; export to override):"
printf '  DATABASE_URL=%s\n  REDIS_URL=%s\n  KAFKA_BROKERS=%s\n' "$DATABASE_URL" "$REDIS_URL" "$KAFKA_BROKERS"
