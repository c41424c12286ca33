#!/usr/bin/env bash
# Runs the README's sample curls (the sh block after "A purchase with `curl`") against the
# running platform (scripts/run-local.sh) and fails unless every one succeeds: each curl's
# status must be 2xx or a redirect (social login's start), except the last request, which
# shows a 400 problem document.
#
# Usage: scripts/readme-curls.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v jq >/dev/null || die "jq is needed (Debian: apt-get install jq)"
block=$(awk '/A purchase with `curl`/ {found = 1} found && /^```sh$/ {inside = 1; next}
  inside && /^```$/ {exit} inside {print}' "$ROOT/README.md")
[[ -n $block ]] || die "no sample block found in README.md"

statuses=$(mktemp)
trap 'rm -f "$statuses"' EXIT
# Every curl of the block appends its status and URL to $statuses.
curl() { command curl -w '%{stderr}%{http_code} %{url}\n' "$@" 2>>"$statuses"; }
export -f curl
export statuses
bash -euo pipefail -c "$block"

say "statuses:"
cat "$statuses"
count=$(wc -l <"$statuses")
bad=$(head -n $((count - 1)) "$statuses" | grep -cv '^[23]' || true)
last=$(tail -n 1 "$statuses")
[[ $bad -eq 0 ]] || die "$bad sample request(s) did not succeed"
[[ $last == 400\ * ]] || die "the last sample should answer 400, not: $last"
say "all $count sample requests answered as the README says"
