#!/usr/bin/env bash
# install.sh installs or builds every real component the local stack needs:
# etcd and Prometheus from Debian, kube-apiserver and kubectl from the
# k8s.io/kubernetes module, Jaeger v2 from its module, and Istio's
# pilot-discovery (istiod) and istioctl from the istio.io/istio module.
# Builds are cached in $SERIN_CACHE (default ~/.cache/serin), so a second run
# takes seconds.
#
# Helm is built from helm.sh/helm/v3 the same way, for the chart's tests
# (deploy/helm).
#
# Usage: install.sh [etcd] [prometheus] [kube] [jaeger] [istio] [helm] [chromium]   (default: all but helm and chromium)
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"      # must match k8s.io/client-go's minor version
JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"
# The istio.io/istio module version seen to build with Go 1.26 and to run
# against kube-apiserver 1.37 (../shared/LOCAL-STACK.md, "istiod").
ISTIO_VERSION="${ISTIO_VERSION:-v0.0.0-20260827124520-eed52ebb66ad}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE="${SERIN_CACHE:-$HOME/.cache/serin}"
BIN="$CACHE/bin"
mkdir -p "$BIN"

say() { printf '\033[1m[install]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[install] ERROR:\033[0m %s\n' "$*" >&2; exit 1; }

APT_UPDATED=""
apt_install() {
  local pkgs=("$@")
  command -v apt-get >/dev/null || die "apt-get not found; install ${pkgs[*]} by hand"
  if [[ -z "$APT_UPDATED" ]]; then
    say "apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
    APT_UPDATED=1
  fi
  say "apt-get install ${pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 \
    || die "apt-get install ${pkgs[*]} failed"
}

ensure_etcd() {
  if command -v etcd >/dev/null; then say "etcd: $(command -v etcd) (present)"; return; fi
  apt_install etcd-server
  command -v etcd >/dev/null || die "etcd still missing after installing etcd-server"
}

ensure_prometheus() {
  if command -v prometheus >/dev/null; then say "prometheus: $(command -v prometheus) (present)"; return; fi
  apt_install prometheus
  # Debian's package tries to start a service; there is no init here, which is fine.
  command -v prometheus >/dev/null || die "prometheus still missing after apt-get install"
}

ensure_chromium() {
  if command -v chromium >/dev/null; then say "chromium: $(command -v chromium) (present)"; return; fi
  apt_install chromium fonts-liberation
  command -v chromium >/dev/null || die "chromium still missing after apt-get install"
}

ensure_kube() {
  local stamp="$BIN/.kube-$KUBE_VERSION"
  if [[ -x "$BIN/kube-apiserver" && -x "$BIN/kubectl" && -f "$stamp" ]]; then
    say "kube-apiserver, kubectl $KUBE_VERSION: cached in $BIN"; return
  fi
  local w="$CACHE/build/kube-$KUBE_VERSION"
  mkdir -p "$w"
  say "building kube-apiserver and kubectl $KUBE_VERSION from k8s.io/kubernetes (once; 5-10 min on 2 cores)"
  local staging="${KUBE_VERSION/v1./v0.}"
  local gomod
  gomod="$(cd "$w" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@$KUBE_VERSION"
  {
    echo "module kubebuild"
    echo
    echo "go 1.25"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    # The kubernetes module replaces its staging modules with local paths;
    # point each one at its published version instead.
    grep -oE 'k8s.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } > "$w/go.mod"
  echo 'package kubebuild' > "$w/doc.go"
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
  done
  (cd "$w" && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true)
  (cd "$w" && GOFLAGS=-mod=mod go build -ldflags "$ld" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver) \
    || die "building kube-apiserver failed"
  say "kube-apiserver built; building kubectl"
  (cd "$w" && GOFLAGS=-mod=mod go build -ldflags "$ld" -o "$BIN/kubectl" k8s.io/kubernetes/cmd/kubectl) \
    || die "building kubectl failed"
  touch "$stamp"
  say "kube-apiserver, kubectl $KUBE_VERSION: built into $BIN"
}

ensure_jaeger() {
  local stamp="$BIN/.jaeger-$JAEGER_VERSION"
  if [[ -x "$BIN/jaeger" && -f "$stamp" ]]; then say "jaeger $JAEGER_VERSION: cached in $BIN"; return; fi
  local w="$CACHE/build/jaeger-$JAEGER_VERSION"
  rm -rf "$w"; mkdir -p "$w"
  say "building jaeger $JAEGER_VERSION from its module (once; about 4 min)"
  (
    cd "$w"
    export GOFLAGS=-mod=mod
    go mod init jaegerbuild >/dev/null 2>&1
    # jaeger's own go.mod replaces sarama; a wrapper module must do the same.
    go mod edit -replace github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0
    go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" >&2
    go build -ldflags "-s -w" -o "$BIN/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
  ) || die "building jaeger failed"
  touch "$stamp"
  say "jaeger $JAEGER_VERSION: built into $BIN"
}

# ensure_istio builds pilot-discovery (istiod) and istioctl from one wrapper
# module, so they share one module download and one build cache: istioctl
# takes about a minute once pilot-discovery (5-17 min on 2 cores) is built.
# istioctl's analyzers are the e2e tests' referee (test/stack.Analyze).
ensure_istio() {
  local stamp="$BIN/.istio-$ISTIO_VERSION"
  if [[ -x "$BIN/pilot-discovery" && -x "$BIN/istioctl" && -f "$stamp" ]]; then
    say "pilot-discovery, istioctl $ISTIO_VERSION: cached in $BIN"; return
  fi
  local w="$CACHE/build/istio-$ISTIO_VERSION"
  rm -rf "$w"; mkdir -p "$w"
  say "building pilot-discovery and istioctl $ISTIO_VERSION from istio.io/istio (once; 5-17 min on 2 cores)"
  (
    cd "$w"
    export GOFLAGS=-mod=mod
    go mod init istiobuild >/dev/null 2>&1
    say "istio: downloading istio.io/istio@$ISTIO_VERSION and its dependencies"
    go get "istio.io/istio@$ISTIO_VERSION" >&2
    # -v names each package as it is compiled, so a long build shows its
    # progress as a count; any line with a space in it is not a package path
    # but a compiler message, and is shown as it is.
    say "istio: compiling pilot-discovery"
    go build -v -ldflags "-s -w" -o "$BIN/pilot-discovery" istio.io/istio/pilot/cmd/pilot-discovery 2>&1 \
      | awk '/ / { print > "/dev/stderr"; next }
             { n++; if (n % 250 == 0) printf "[install] istio: %d packages compiled, now %s\n", n, $0 > "/dev/stderr" }'
    [[ ${PIPESTATUS[0]} -eq 0 ]] || exit 1
    say "istio: compiling istioctl"
    go build -ldflags "-s -w" -o "$BIN/istioctl" istio.io/istio/istioctl/cmd/istioctl >&2
  ) || die "building pilot-discovery or istioctl $ISTIO_VERSION failed (log above)"
  "$BIN/istioctl" version --remote=false >/dev/null 2>&1 || die "istioctl was built but does not run"
  touch "$stamp"
  say "pilot-discovery, istioctl $ISTIO_VERSION: built into $BIN"
}

# ensure_helm builds helm from a wrapper module pinned at HELM_VERSION; the
# version is stamped into the binary so that `helm version` tells the truth
# (helm's own Makefile sets the same variable).
ensure_helm() {
  local stamp="$BIN/.helm-$HELM_VERSION"
  if [[ -x "$BIN/helm" && -f "$stamp" ]]; then say "helm $HELM_VERSION: cached in $BIN"; return; fi
  local w="$CACHE/build/helm-$HELM_VERSION"
  rm -rf "$w"; mkdir -p "$w"
  say "building helm $HELM_VERSION from helm.sh/helm/v3 (once; 2-5 min on 2 cores)"
  (
    cd "$w"
    export GOFLAGS=-mod=mod
    go mod init helmbuild >/dev/null 2>&1
    go get -tool "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
    go build -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      -o "$BIN/helm" helm.sh/helm/v3/cmd/helm
  ) || die "building helm $HELM_VERSION failed"
  "$BIN/helm" version --short >/dev/null 2>&1 || die "helm was built but does not run"
  touch "$stamp"
  say "helm $HELM_VERSION: built into $BIN ($("$BIN/helm" version --short))"
}

what=("$@")
[[ ${#what[@]} -eq 0 ]] && what=(etcd prometheus kube jaeger istio)
for w in "${what[@]}"; do
  case "$w" in
    etcd) ensure_etcd ;;
    prometheus) ensure_prometheus ;;
    chromium) ensure_chromium ;;
    kube) ensure_kube ;;
    jaeger) ensure_jaeger ;;
    istio) ensure_istio ;;
    helm) ensure_helm ;;
    *) die "unknown component '$w' (want etcd, prometheus, kube, jaeger, istio, helm or chromium)" ;;
  esac
done
