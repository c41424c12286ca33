#!/usr/bin/env bash
# Checks the observability artifacts offline (docs/observability.md, "Checks"):
#   1. promtool check rules + promtool test rules on charts/ticketing/files/prometheus/;
#   2. amtool check-config on docs/examples/alertmanager.yml, and its routing: a page
#      reaches the pager, a ticket does not;
#   3. scripts/observability.py check: dashboards = their generated definitions, every
#      dashboard query parses as PromQL, every metric used is in the contract, every alert
#      has a severity, summary, description, runbook_url and runbook file.
# promtool and amtool come from Debian's prometheus and prometheus-alertmanager packages,
# installed when missing (as root, or through sudo -n). scripts/check-deploy.sh runs this.
#
# Usage: scripts/check-observability.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

RULES_DIR=charts/ticketing/files/prometheus
ALERTMANAGER_EXAMPLE=docs/examples/alertmanager.yml

apt_install() {
  say "installing $* (Debian)"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    warn "apt-get install $* failed"
}

command -v promtool >/dev/null || apt_install prometheus
command -v amtool >/dev/null || apt_install prometheus-alertmanager
command -v promtool >/dev/null || die "promtool not found; install Debian's prometheus package"
command -v amtool >/dev/null || die "amtool not found; install Debian's prometheus-alertmanager package"

# A Python with PyYAML: check-deploy's venv has it; else the system's.
PYTHON=python3
if [[ -x $STATE_DIR/deploy/venv-k8s/bin/python ]]; then
  PYTHON=$STATE_DIR/deploy/venv-k8s/bin/python
fi
"$PYTHON" -c 'import yaml' 2>/dev/null || die "$PYTHON has no PyYAML; run scripts/check-deploy.sh once (it builds a venv with it) or install python3-yaml"

FAILED=()

rules() {
  local log
  log=$(mktemp)
  if ! promtool check rules "$RULES_DIR"/ticketing.rules.yml >"$log" 2>&1; then
    cat "$log" >&2
    return 1
  fi
  printf '   check rules: %s\n' "$(grep -o '[0-9]* rules found' "$log")"
  # promtool test rules resolves rule_files relative to the test file.
  if ! promtool test rules "$RULES_DIR"/ticketing.rules.test.yml >"$log" 2>&1; then
    cat "$log" >&2
    return 1
  fi
  printf '   test rules: %s scenarios pass\n' "$(grep -c '^  - name:' "$RULES_DIR"/ticketing.rules.test.yml)"
  rm -f "$log"
}

alertmanager() {
  amtool check-config "$ALERTMANAGER_EXAMPLE" >/dev/null || {
    amtool check-config "$ALERTMANAGER_EXAMPLE" >&2
    return 1
  }
  local ok=0
  route() { amtool config routes test --config.file="$ALERTMANAGER_EXAMPLE" --verify.receivers="$1" "${@:2}" >/dev/null 2>&1; }
  route pager,chat severity=page alertname=OversellDetected service=inventory || {
    warn "a page does not reach pager,chat"
    ok=1
  }
  route tickets severity=ticket alertname=PodCrashLooping || {
    warn "a ticket does not reach tickets only"
    ok=1
  }
  printf '   check-config ok; page -> pager,chat; ticket -> tickets\n'
  return $ok
}

contract() { PROMTOOL=$(command -v promtool) "$PYTHON" scripts/observability.py check; }

started=$SECONDS
step "promtool check rules + test rules ($(promtool --version 2>&1 | head -n1 | cut -d' ' -f3))" rules
step "amtool check-config + routes ($(amtool --version 2>&1 | head -n1 | cut -d' ' -f3))" alertmanager
step "dashboards, queries, metric contract, runbooks (scripts/observability.py check)" contract
if ((${#FAILED[@]})); then
  die "failed: ${FAILED[*]} ($((SECONDS - started))s)"
fi
say "all observability checks passed in $((SECONDS - started))s"
