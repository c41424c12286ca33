#!/usr/bin/env bash
# The live dashboard check (issue 7): a real Prometheus (Debian's `prometheus`) scrapes the
# platform that scripts/run-local.sh runs on this machine, with the chart's rules loaded,
# while a short load runs; then every dashboard query is evaluated through Prometheus's
# HTTP API and must return data. It catches metrics that were renamed or never exported.
# Queries on kube-state-metrics (HPA, restarts) are skipped: they need a cluster.
#
# Usage: scripts/check-dashboards-live.sh            against the platform scripts/run-local.sh runs
#        scripts/check-dashboards-live.sh --start    starts one of its own first, on fresh
#                                                    databases (livecheck_*) and topics, and
#                                                    stops it after (what .ci/run does)
# Environment: LOAD_SECONDS (default 60), PROM_PORT (default 9090), PROFILE (debug|release).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOAD_SECONDS=${LOAD_SECONDS:-60}
PROM_PORT=${PROM_PORT:-9090}
PROFILE=${PROFILE:-debug}
command -v prometheus >/dev/null || die "prometheus is not installed (Debian package prometheus)"

work=$(mktemp -d)
prom_pid=''
cleanup() {
  if [[ -n $prom_pid ]]; then kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null; fi
  stop_platform
  rm -rf "$work"
}
trap cleanup EXIT

if [[ ${1:-} == --start ]]; then start_platform livecheck "$work/run-local.log"; fi
curl -fsS --max-time 2 http://127.0.0.1:8080/readyz >/dev/null ||
  die "the gateway does not answer on 127.0.0.1:8080; start the platform with scripts/run-local.sh"

# The seven admin ports, labelled like the chart's ServiceMonitor (honorLabels: the
# services' own `service` label stays).
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
  - $ROOT/charts/ticketing/files/prometheus/ticketing.rules.yml
scrape_configs:
  - job_name: ticketing
    honor_labels: true
    static_configs:
      - targets: [$(for p in 51050 51051 51052 51053 51054 51055 51056; do printf "'127.0.0.1:%s'," "$p"; done | sed 's/,$//')]
YAML
say "starting prometheus on :$PROM_PORT (scraping the seven admin ports every 2s)"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$work/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 30); do
  curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null || { cat "$work/prometheus.log"; die "prometheus did not start"; }

# A purchase right after the seed can meet payment still catching up on booking.events
# (503 until it has projected the booking): a second walkthrough a little later then passes.
walkthrough() {
  bash "$ROOT/scripts/readme-curls.sh" >"$work/walkthrough.log" 2>&1 && return
  warn "the README walkthrough failed; trying again in 15s:"
  tail -n 20 "$work/walkthrough.log" >&2
  sleep 15
  bash "$ROOT/scripts/readme-curls.sh" >"$work/walkthrough.log" 2>&1 ||
    { tail -n 30 "$work/walkthrough.log" >&2; die "the README walkthrough failed twice"; }
}
say "load: purchases (the README's walkthrough) and ${LOAD_SECONDS}s of the load generator"
walkthrough
DEMO_ADMIN_PASSWORD=${TICKETING_IDENTITY__BOOTSTRAP_ADMIN_PASSWORD:-$(cat "$ROOT/.local/demo-admin-password")} \
  "${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/loadgen" --gateway http://127.0.0.1:8080 --clients 20 --users 10 \
  --duration "${LOAD_SECONDS}s" --rounds 1 --warmup 1s >"$work/loadgen.log" 2>&1 || { cat "$work/loadgen.log"; die "the load generator failed"; }
walkthrough
# Rates over [1m] and [5m] need a few scrapes after the load.
sleep 10

python3 "$ROOT/scripts/observability.py" exprs >"$work/exprs.json"
python3 - "$work/exprs.json" "http://127.0.0.1:$PROM_PORT" <<'PY'
import json, sys, urllib.parse, urllib.request
exprs, base = json.load(open(sys.argv[1])), sys.argv[2]
empty, errors, skipped = [], [], []
for e in exprs:
    # kube-state-metrics exists only in a cluster; the chart's checks cover those panels.
    if "kube_" in e["expr"]:
        skipped.append(e)
        continue
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": e["expr"]})
    try:
        answer = json.load(urllib.request.urlopen(url, timeout=10))
    except Exception as err:  # a bad query answers 400 with the reason
        errors.append((e, str(err)))
        continue
    if not answer["data"]["result"]:
        empty.append(e)
for e, err in errors:
    print(f"ERROR  {e['dashboard']}: {e['panel']}: {err}\n       {e['expr']}")
for e in empty:
    print(f"EMPTY  {e['dashboard']}: {e['panel']}\n       {e['expr']}")
for e in skipped:
    print(f"SKIP   {e['dashboard']}: {e['panel']} (kube-state-metrics: only in a cluster)")
checked = len(exprs) - len(skipped)
print(f"{checked - len(empty) - len(errors)} of {checked} dashboard queries return data ({len(skipped)} skipped)")
sys.exit(1 if empty or errors else 0)
PY
