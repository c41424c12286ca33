#!/usr/bin/env bash
# Runs the whole platform on this machine, on loopback and the default ports:
#   1. scripts/infra.sh (Postgres, Redis, the broker);
#   2. cargo build --bins;
#   3. `<service> bootstrap` for every service with a database or Redis: its own Postgres
#      role owning its database, and its own Redis ACL user, both named ticketing_<service>
#      (or $DB_PREFIX_<service>: scripts/check-dashboards-live.sh runs a platform of its own)
#      with a password generated once into .local/<service>-store-password; then
#      `<service> migrate`, as that role, for every service that owns a database;
#   4. starts the seven services in the background (logs: .local/logs/<service>.log,
#      pids: .local/pids/<service>.pid), waits for each /readyz and prints the URLs;
#   5. seeds the demo data (demo-seed, crates/demo), once: a later run finds it and only
#      renews expired PENDING_PAYMENT bookings (DEMO_SEED=0 skips the step); each run
#      writes the tickets PDFs of a few confirmed demo bookings to .local/tickets/;
#   6. stays in the foreground until Ctrl-C (or scripts/stop-local.sh), starting again any
#      service that exits on its own (as Kubernetes restarts a container), then stops them
#      all with SIGTERM. Its own pid, the mail sink's and the broker's (when this run started it)
#      are in .local/pids/ too, for scripts/stop-local.sh.
#
# Demo data: identity creates a bootstrap admin, admin@ticketing.local, whose password
# is generated once into .local/demo-admin-password and printed (set
# TICKETING_IDENTITY__BOOTSTRAP_ADMIN_PASSWORD to choose it); demo-seed signs in with it and
# creates the demo accounts (printed at the end), venues, events and bookings through the
# services' gRPC APIs. Its EXPIRED bookings are held through a second inventory replica
# with a short inventory.hold_ttl (DEMO_HOLD_TTL, default 20s), run only while seeding.
# Booking's and the gateway's client secrets (for their service tokens) are generated once
# into .local/booking-client-secret and .local/gateway-client-secret.
#
# Email: notification sends to 127.0.0.1:2525, where a debugging SMTP server
# (aiosmtpd, installed into .local/venv) prints every message to .local/logs/mail.log.
#
# Other TICKETING_* variables in your environment reach every service, e.g.
# TICKETING_TELEMETRY__LOG_FILTER=debug. Ports and database names are set here.
# PROFILE=release builds and runs optimized binaries (scripts/bench-gateway.sh does).
set -euo pipefail
LOCAL_PLATFORM=1 # its own broker (scripts/lib.sh)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

READY_TIMEOUT=${READY_TIMEOUT:-120}
SHUTDOWN_TIMEOUT=25
LOG_DIR=$STATE_DIR/logs
PID_DIR=$STATE_DIR/pids
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $BIN_DIR == /* ]] || BIN_DIR=$ROOT/$BIN_DIR
PROFILE=${PROFILE:-debug}
case $PROFILE in
  debug) BUILD_FLAGS=() ;;
  release) BUILD_FLAGS=(--release) ;;
  *) die "PROFILE must be debug or release, not '$PROFILE'" ;;
esac
BIN_DIR=$BIN_DIR/$PROFILE
ADMIN_EMAIL=${TICKETING_IDENTITY__BOOTSTRAP_ADMIN_EMAIL:-admin@ticketing.local}
DEMO_HOLD_TTL=${DEMO_HOLD_TTL:-20s}
DB_PREFIX=${DB_PREFIX:-ticketing}

mkdir -p "$LOG_DIR" "$PID_DIR"
# The broker is ours to stop (scripts/stop-local.sh) only when infra.sh starts it now.
broker_was_up=0
if (exec 3<>"/dev/tcp/$(url_host "tcp://${KAFKA_BROKERS%%,*}")/$(url_port "tcp://${KAFKA_BROKERS%%,*}" 9092)") 2>/dev/null; then
  broker_was_up=1
fi

bash "$ROOT/scripts/infra.sh"
if ((!broker_was_up)) && [[ -s $(broker_state).pid ]]; then cp "$(broker_state).pid" "$PID_DIR/broker.pid"; fi

say "building the service binaries (cargo build --bins ${BUILD_FLAGS[*]})"
(cd "$ROOT" && cargo build --bins "${BUILD_FLAGS[@]}")

# A previous run that was killed hard may have left its services behind: stop those
# (only processes whose pid file we wrote and that still run our binary).
for svc in "${SERVICES[@]}"; do
  pidfile=$PID_DIR/$svc.pid
  [[ -f $pidfile ]] || continue
  old=$(<"$pidfile")
  if [[ $old =~ ^[0-9]+$ ]] && alive "$old" &&
    [[ " $(tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null)" == *" $BIN_DIR/$svc "* ]]; then
    say "stopping $svc left over from an earlier run (pid $old)"
    stop_pids "$SHUTDOWN_TIMEOUT" "$old"
  fi
  rm -f "$pidfile"
done

for svc in "${SERVICES[@]}"; do
  ports=("${GRPC_PORT[$svc]}" $((GRPC_PORT[$svc] + 1000)))
  if [[ $svc == gateway ]]; then ports+=(8080); fi
  for port in "${ports[@]}"; do
    port_free "$port" ||
      die "port $port ($svc) is in use: $(ss -Htlnp "sport = :$port" 2>/dev/null | head -n1 | tr -s ' ')"
  done
done

if [[ -n ${TICKETING_IDENTITY__BOOTSTRAP_ADMIN_PASSWORD:-} ]]; then
  ADMIN_PASSWORD=$TICKETING_IDENTITY__BOOTSTRAP_ADMIN_PASSWORD
else
  pwfile=$STATE_DIR/demo-admin-password
  if [[ ! -s $pwfile ]]; then
    (umask 077 && printf 'demo-%s%s\n' "$(random_token)" "$(random_token)" >"$pwfile")
  fi
  ADMIN_PASSWORD=$(<"$pwfile")
fi

# client_secret CLIENT -> the workload's client secret at identity, made once per checkout.
client_secret() {
  local file=$STATE_DIR/$1-client-secret
  if [[ ! -s $file ]]; then
    (umask 077 && printf '%s-%s%s%s%s\n' "$1" "$(random_token)" "$(random_token)" "$(random_token)" "$(random_token)" >"$file")
  fi
  cat "$file"
}
BOOKING_SECRET=$(client_secret booking)
# The key-encryption key sealing identity's and notification's signing keys in their
# databases, made once per checkout. Without it those keys do not open and both services
# exit 78: keep the file, or drop the two databases to start afresh.
kekfile=$STATE_DIR/signing-kek
if [[ ! -s $kekfile ]]; then
  (umask 077 && printf 'local:%s\n' "$(head -c 32 /dev/urandom | base64)" >"$kekfile")
fi
SIGNING_KEK=$(<"$kekfile")
# store_password SERVICE -> the password of the service's Postgres role and Redis user.
store_password() {
  local file=$STATE_DIR/$1-store-password
  if [[ ! -s $file ]]; then
    (umask 077 && printf '%s%s%s%s\n' "$(random_token)" "$(random_token)" "$(random_token)" "$(random_token)" >"$file")
  fi
  cat "$file"
}
# The gateway's vouches for the client addresses it hands identity (login throttling).
GATEWAY_SECRET=$(client_secret gateway)

# The mail sink: a debugging SMTP server on 127.0.0.1:2525.
MAIL_PID=
start_mail_sink() {
  local venv=$STATE_DIR/venv
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  if ! "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    say "installing aiosmtpd into $venv (the local mail sink)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'aiosmtpd==1.4.6' ||
      { warn "could not install aiosmtpd; emails will wait in notification's delivery log"; return 0; }
  fi
  port_free 2525 || { say "something already listens on 127.0.0.1:2525; using it as the mail server"; return 0; }
  : >"$LOG_DIR/mail.log"
  setsid "$venv/bin/python" -m aiosmtpd -n -l 127.0.0.1:2525 -c aiosmtpd.handlers.Debugging \
    >>"$LOG_DIR/mail.log" 2>&1 </dev/null &
  MAIL_PID=$!
  echo "$MAIL_PID" >"$PID_DIR/mail.pid"
}

# A demo OpenID provider for social login (ADR 0045): the certified oidc-provider that
# scripts/infra.sh installs, as identity's provider `demo`. It signs in whoever the
# authorization request's login_hint names (verified:<email>), with no password: a demo's.
OIDC_PORT=8088 OIDC_PID= OIDC_SECRET=
OIDC_REDIRECT=http://127.0.0.1:8080/v1/auth/oidc/demo/callback
start_oidc_provider() {
  local dir=$STATE_DIR/oidc-provider
  [[ -f $dir/provider.js && -d $dir/node_modules/oidc-provider ]] && command -v node >/dev/null ||
    { warn "oidc-provider is not installed (scripts/infra.sh installs it); no demo social login"; return 0; }
  port_free "$OIDC_PORT" || { warn "127.0.0.1:$OIDC_PORT is taken; no demo social login"; return 0; }
  local secret
  secret=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  : >"$LOG_DIR/oidc-provider.log"
  PORT=$OIDC_PORT CLIENT_ID=ticketing-demo CLIENT_SECRET=$secret REDIRECT_URI=$OIDC_REDIRECT \
    setsid node "$dir/provider.js" >>"$LOG_DIR/oidc-provider.log" 2>&1 </dev/null &
  OIDC_PID=$!
  echo "$OIDC_PID" >"$PID_DIR/oidc-provider.pid"
  if wait_http "http://127.0.0.1:$OIDC_PORT/.well-known/openid-configuration" 30 "$OIDC_PID"; then
    OIDC_SECRET=$secret
  else
    warn "the demo OpenID provider did not start; see $LOG_DIR/oidc-provider.log"
  fi
}

# svc_env SERVICE -> fills ENV with the service's settings.
svc_env() {
  local svc=$1 grpc=${GRPC_PORT[$1]}
  ENV=(
    "TICKETING_SERVER__GRPC_ADDR=127.0.0.1:$grpc"
    "TICKETING_SERVER__ADMIN_ADDR=127.0.0.1:$((grpc + 1000))"
    "TICKETING_TELEMETRY__LOG_JSON=false"
    "TICKETING_AUTH__JWKS_URL=http://127.0.0.1:$((GRPC_PORT[identity] + 1000))/.well-known/jwks.json"
  )
  # Each service as its own role and user (docs/adr/0031-a-role-and-a-user-per-service.md).
  local name=${DB_PREFIX}_$svc password
  password=$(store_password "$svc")
  if svc_has_db "$svc"; then ENV+=("TICKETING_DATABASE__URL=$(with_user "$(db_url "$name")" "$name" "$password")"); fi
  if svc_has_redis "$svc"; then ENV+=("TICKETING_REDIS__URL=$(with_user "$REDIS_URL" "$name" "$password")"); fi
  if svc_has_kafka "$svc"; then
    # One replica per service, on tansu, whose group coordinator loses groups after a member
    # dies or a session times out, and whose storage breaks when a producer's message times
    # out (docs/adr/0019-consumers-that-always-come-back.md): consume every partition outside
    # the group, never give up on a message, and call a consumer stalled after 20s.
    ENV+=(
      "TICKETING_KAFKA__BROKERS=$KAFKA_BROKERS"
      "TICKETING_KAFKA__ASSIGN_ALL_PARTITIONS=true"
      "TICKETING_KAFKA__PRODUCER_MESSAGE_TIMEOUT=0s"
      "TICKETING_KAFKA__CONSUMER_STALL_TIMEOUT=20s"
    )
  fi
  if [[ $svc == identity ]]; then
    ENV+=(
      "TICKETING_IDENTITY__BOOTSTRAP_ADMIN_EMAIL=$ADMIN_EMAIL"
      "TICKETING_IDENTITY__BOOTSTRAP_ADMIN_PASSWORD=$ADMIN_PASSWORD"
      "TICKETING_IDENTITY__SERVICE_CLIENTS__BOOKING=$BOOKING_SECRET"
      "TICKETING_IDENTITY__SERVICE_CLIENTS__GATEWAY=$GATEWAY_SECRET"
    )
    if [[ -n $OIDC_SECRET ]]; then
      ENV+=(
        "TICKETING_IDENTITY__OIDC__PROVIDERS__DEMO__ISSUER=http://127.0.0.1:$OIDC_PORT"
        "TICKETING_IDENTITY__OIDC__PROVIDERS__DEMO__CLIENT_ID=ticketing-demo"
        "TICKETING_IDENTITY__OIDC__PROVIDERS__DEMO__CLIENT_SECRET=$OIDC_SECRET"
        "TICKETING_IDENTITY__OIDC__PROVIDERS__DEMO__REDIRECT_URI=$OIDC_REDIRECT"
      )
    fi
  fi
  if [[ $svc == identity || $svc == notification ]]; then ENV+=("TICKETING_SEALING__KEK=$SIGNING_KEK"); fi
  if [[ $svc == gateway ]]; then
    ENV+=(
      "TICKETING_GATEWAY__HTTP_ADDR=127.0.0.1:8080"
      "TICKETING_AUTH__CLIENT_ID=gateway" "TICKETING_AUTH__CLIENT_SECRET=$GATEWAY_SECRET"
    )
  fi
  if [[ $svc == booking ]]; then
    ENV+=("TICKETING_AUTH__CLIENT_ID=booking" "TICKETING_AUTH__CLIENT_SECRET=$BOOKING_SECRET")
  fi
}

# The admin URLs reach `bootstrap` only, through its environment.
for svc in "${SERVICES[@]}"; do
  svc_has_db "$svc" || svc_has_redis "$svc" || continue
  svc_env "$svc"
  if svc_has_db "$svc"; then ENV+=("TICKETING_BOOTSTRAP_POSTGRES_URL=$DATABASE_URL"); fi
  if svc_has_redis "$svc"; then ENV+=("TICKETING_BOOTSTRAP_REDIS_URL=$REDIS_URL"); fi
  say "bootstrapping $svc (its own Postgres role and Redis user, ${DB_PREFIX}_$svc)"
  env "${ENV[@]}" "$BIN_DIR/$svc" bootstrap >"$LOG_DIR/$svc.bootstrap.log" 2>&1 || {
    tail -n 20 "$LOG_DIR/$svc.bootstrap.log" >&2
    die "$svc bootstrap failed; see $LOG_DIR/$svc.bootstrap.log"
  }
done

for svc in "${SERVICES[@]}"; do
  svc_has_db "$svc" || continue
  svc_env "$svc"
  say "migrating $svc (database ${DB_PREFIX}_$svc)"
  env "${ENV[@]}" "$BIN_DIR/$svc" migrate >"$LOG_DIR/$svc.migrate.log" 2>&1 || {
    tail -n 20 "$LOG_DIR/$svc.migrate.log" >&2
    die "$svc migrate failed; see $LOG_DIR/$svc.migrate.log"
  }
done

declare -A PID=()
stop_all() {
  local svc pids=()
  for svc in "${!PID[@]}"; do pids+=("${PID[$svc]}"); done
  if [[ -n $MAIL_PID ]]; then kill "$MAIL_PID" 2>/dev/null || true; fi
  if [[ -n $OIDC_PID ]]; then kill "$OIDC_PID" 2>/dev/null || true; fi
  rm -f "$PID_DIR/mail.pid" "$PID_DIR/oidc-provider.pid" "$PID_DIR/run-local.pid"
  ((${#pids[@]})) || return 0
  say "stopping the services (SIGTERM)"
  stop_pids "$SHUTDOWN_TIMEOUT" "${pids[@]}"
  for svc in "${SERVICES[@]}" inventory-seed; do
    [[ -n ${PID[$svc]:-} ]] || continue
    local pid=${PID[$svc]}
    case ${STOP_RC[$pid]} in
      0) say "$svc stopped (${STOP_SECS[$pid]}s)" ;;
      137) warn "$svc did not stop within ${SHUTDOWN_TIMEOUT}s; killed" ;;
      *) warn "$svc exited with status ${STOP_RC[$pid]}; see $LOG_DIR/$svc.log" ;;
    esac
    rm -f "$PID_DIR/$svc.pid"
  done
  PID=()
}
trap 'stop_all' EXIT
trap 'echo; exit 0' INT TERM
echo $$ >"$PID_DIR/run-local.pid"
start_mail_sink
start_oidc_provider

# Our ports lie in Linux's ephemeral range (32768-60999): an outgoing connection, or one
# closed a moment ago (TIME-WAIT, up to 60 s), may hold one, and a listener cannot bind it
# then. Wait until no socket uses the service's ports before starting it.
wait_ports_idle() {
  local port deadline=$((SECONDS + 90))
  for port in "$@"; do
    while [[ -n $(ss -Htan "sport = :$port" 2>/dev/null) ]]; do
      ((SECONDS < deadline)) || return 0
      sleep 1
    done
  done
}
# Where this script may (root, as in CI), reserve the ports so the kernel never picks them
# as source ports: an outgoing connection that lives for minutes (a pool's, a broker's)
# outlasts the wait above and the restarts below. Elsewhere the wait is all there is.
reserve_ports() {
  local file=/proc/sys/net/ipv4/ip_local_reserved_ports svc current ports=()
  [[ -w $file ]] || return 0
  for svc in "${SERVICES[@]}"; do ports+=("${GRPC_PORT[$svc]}" $((GRPC_PORT[$svc] + 1000))); done
  current=$(<"$file")
  (IFS=,; echo "${current:+$current,}${ports[*]}") >"$file" 2>/dev/null || true
}
declare -A STARTED_AT
# start_svc SVC [restart]: a restart keeps the log and does not wait for the ports: the
# sockets the dead process left in TIME-WAIT do not stop a listener binding (SO_REUSEADDR),
# and a port still taken only makes the service exit and be started again.
start_svc() {
  local svc=$1
  if [[ ${2:-} == restart ]]; then
    printf '\n=== %s: run-local: started again after it exited\n' "$(date -Is)" >>"$LOG_DIR/$svc.log"
  else
    wait_ports_idle "${GRPC_PORT[$svc]}" $((GRPC_PORT[$svc] + 1000))
    : >"$LOG_DIR/$svc.log"
  fi
  svc_env "$svc"
  # setsid: Ctrl-C reaches only this script, which then stops the services in order.
  env "${ENV[@]}" setsid "$BIN_DIR/$svc" >>"$LOG_DIR/$svc.log" 2>&1 </dev/null &
  PID[$svc]=$!
  STARTED_AT[$svc]=$SECONDS
  echo "${PID[$svc]}" >"$PID_DIR/$svc.pid"
}
reserve_ports
for svc in "${SERVICES[@]}"; do start_svc "$svc"; done
say "started the seven services; waiting for /readyz (up to ${READY_TIMEOUT}s each)"

for svc in "${SERVICES[@]}"; do
  admin=$((GRPC_PORT[$svc] + 1000))
  rc=0 tries=0
  wait_http "http://127.0.0.1:$admin/readyz" "$READY_TIMEOUT" "${PID[$svc]}" || rc=$?
  # A port taken between the wait and the bind: start again rather than give up.
  while ((rc == 2 && tries < 5)) && grep -q 'Address already in use' "$LOG_DIR/$svc.log"; do
    tries=$((tries + 1))
    warn "$svc's port was taken by an outgoing connection; starting it again ($tries/5)"
    start_svc "$svc"
    rc=0
    wait_http "http://127.0.0.1:$admin/readyz" "$READY_TIMEOUT" "${PID[$svc]}" || rc=$?
  done
  if ((rc != 0)); then
    tail -n 20 "$LOG_DIR/$svc.log" >&2
    if ((rc == 2)); then die "$svc exited during start-up; see $LOG_DIR/$svc.log"; fi
    curl -sS --max-time 2 "http://127.0.0.1:$admin/readyz" >&2 || true
    echo >&2
    die "$svc was not ready within ${READY_TIMEOUT}s; see $LOG_DIR/$svc.log"
  fi
done

# The demo data, through the services' gRPC APIs. The EXPIRED bookings need holds that expire
# within the seed: a second inventory replica (same Redis, database and broker) hands out
# holds with a short TTL, and runs only while seeding. A failed seed leaves the platform up.
seed_demo() {
  local port=$((GRPC_PORT[inventory] + 10)) rc=0 short=()
  svc_env inventory
  ENV+=(
    "TICKETING_SERVER__GRPC_ADDR=127.0.0.1:$port"
    "TICKETING_SERVER__ADMIN_ADDR=127.0.0.1:$((port + 1000))"
    "TICKETING_INVENTORY__HOLD_TTL=$DEMO_HOLD_TTL"
    # Serves holds and relays the outbox only: the main inventory consumes every partition.
    "TICKETING_KAFKA__CONSUME=false"
  )
  if port_free "$port" && port_free $((port + 1000)); then
    wait_ports_idle "$port" $((port + 1000))
    : >"$LOG_DIR/inventory-seed.log"
    env "${ENV[@]}" setsid "$BIN_DIR/inventory" >>"$LOG_DIR/inventory-seed.log" 2>&1 </dev/null &
    PID[inventory-seed]=$!
    echo "${PID[inventory-seed]}" >"$PID_DIR/inventory-seed.pid"
    if wait_http "http://127.0.0.1:$((port + 1000))/readyz" "$READY_TIMEOUT" "${PID[inventory-seed]}"; then
      short=(--short-hold-inventory-url "http://127.0.0.1:$port")
    else
      warn "the short-hold inventory replica did not start (see $LOG_DIR/inventory-seed.log); no EXPIRED bookings"
    fi
  else
    warn "port $port or $((port + 1000)) is in use; no short-hold inventory replica, no EXPIRED bookings"
  fi
  say "seeding the demo data (log: $LOG_DIR/demo-seed.log)"
  DEMO_ADMIN_EMAIL=$ADMIN_EMAIL DEMO_ADMIN_PASSWORD=$ADMIN_PASSWORD "$BIN_DIR/demo-seed" "${short[@]}" \
    --notification-url "http://127.0.0.1:${GRPC_PORT[notification]}" --tickets-dir "$STATE_DIR/tickets" \
    2>&1 | tee "$LOG_DIR/demo-seed.log" || rc=$?
  ((rc == 0)) || warn "demo-seed failed (status $rc); see $LOG_DIR/demo-seed.log"
  if [[ -n ${PID[inventory-seed]:-} ]]; then
    stop_pids "$SHUTDOWN_TIMEOUT" "${PID[inventory-seed]}"
    unset "PID[inventory-seed]"
    rm -f "$PID_DIR/inventory-seed.pid"
  fi
}
if [[ ${DEMO_SEED:-1} != 0 ]]; then seed_demo; fi

cat <<EOF

The platform is running on loopback.

  service        gRPC              admin (/healthz /readyz /metrics)
EOF
for svc in "${SERVICES[@]}"; do
  printf '  %-14s 127.0.0.1:%-7s http://127.0.0.1:%s\n' "$svc" "${GRPC_PORT[$svc]}" $((GRPC_PORT[$svc] + 1000))
done
identity_grpc=${GRPC_PORT[identity]}
cat <<EOF

  JWKS:          http://127.0.0.1:$((identity_grpc + 1000))/.well-known/jwks.json
  Bootstrap admin: $ADMIN_EMAIL / $ADMIN_PASSWORD
  Demo logins (docs: README, "Demo data"):
$("$BIN_DIR/demo-seed" --logins)
  Logs:          $LOG_DIR/<service>.log      pids: $PID_DIR/

  Mail:          every email lands in $LOG_DIR/mail.log (SMTP 127.0.0.1:2525)
  Tickets:       PDFs of a few demo bookings in $STATE_DIR/tickets/ (GET /v1/bookings/{id}/tickets.pdf)

  Public API:    http://127.0.0.1:8080/v1/events   (the gateway)
  Swagger UI:    http://127.0.0.1:8080/docs         OpenAPI: http://127.0.0.1:8080/openapi.json
  Social login:  http://127.0.0.1:8080/v1/auth/oidc/demo/start (the demo OpenID provider on
                 127.0.0.1:$OIDC_PORT signs in whom login_hint=verified:<email> names)

  Try:  curl -s -X POST http://127.0.0.1:8080/v1/auth/login -H 'content-type: application/json' \
          -d '{"email":"$ADMIN_EMAIL","password":"$ADMIN_PASSWORD"}'

  Payments use the simulated provider (test cards such as tok_visa and tok_decline).

Press Ctrl-C (or run scripts/stop-local.sh) to stop everything.
EOF

# Stay in the foreground. A service that exits on its own (a crash, an OOM kill, `kill -9`
# by hand) is started again with the same command line and environment, as Kubernetes
# restarts a container (restartPolicy: Always): after 1 s, doubling up to 30 s while it
# keeps exiting within a minute of its start (CrashLoopBackOff), back to 1 s once it ran
# longer. The platform must come back from that without losing a purchase (issue 13).
declare -A BACKOFF RESTART_AT
while true; do
  for svc in "${SERVICES[@]}"; do
    if [[ -n ${RESTART_AT[$svc]:-} ]]; then
      if ((SECONDS >= RESTART_AT[$svc])); then
        unset "RESTART_AT[$svc]"
        start_svc "$svc" restart
        say "$svc started again (pid ${PID[$svc]})"
      fi
      continue
    fi
    pid=${PID[$svc]}
    alive "$pid" && continue
    code=0
    wait "$pid" 2>/dev/null || code=$?
    if ((SECONDS - STARTED_AT[$svc] >= 60)); then BACKOFF[$svc]=1; fi
    delay=${BACKOFF[$svc]:-1}
    BACKOFF[$svc]=$((delay * 2 > 30 ? 30 : delay * 2))
    RESTART_AT[$svc]=$((SECONDS + delay))
    tail -n 5 "$LOG_DIR/$svc.log" >&2
    warn "$svc exited on its own (status $code); starting it again in ${delay}s (log: $LOG_DIR/$svc.log)"
  done
  sleep 1
done
