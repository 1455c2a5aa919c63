#!/usr/bin/env bash
# Build the sandbox's Go components from the Go module proxy into a cache
# outside the repository, keyed by version. Skips anything already built.
# Usage: scripts/sandbox/build.sh            (all components)
#        scripts/sandbox/build.sh etcd kwok  (some)
# Besides the programs, it copies the few data files the sandbox reads from
# the same modules (KWOK's Stage files, Kueue's CRDs and webhook manifests)
# next to them, so a warm cache needs no Go module cache.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${FEDERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/federator}"
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KUEUE_VERSION=v0.19.2
KWOK_VERSION=v0.8.0
VERSITYGW_VERSION=v1.7.0
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# One build at a time: a second caller (make test while a fixture builds) waits.
mkdir -p "$CACHE/bin"
exec 9>"$CACHE/build.lock"
if ! flock -n 9; then log "another build is running; waiting for it"; flock 9; fi

build_one() {  # name version module-dir outdir packages...
  local name=$1 version=$2 dir=$3 out=$4; shift 4
  if [[ -f "$out/.complete" ]]; then log "$name $version: cached in $out"; return; fi
  log "$name $version: building into $out (cold builds take minutes)"
  local t0=$SECONDS
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  (cd "$ROOT/tools/$dir" && go mod download && go build -ldflags "${LDFLAGS:--s -w}" -o "$out.tmp/" "$@")
  rm -rf "$out" && mv "$out.tmp" "$out" && touch "$out/.complete"
  log "$name $version: built in $((SECONDS - t0)) s"
}

module_source() {  # tools-dir module -> directory of that module in the Go module cache
  (cd "$ROOT/tools/$1" && go mod download "$2" && go list -m -f '{{.Dir}}' "$2")
}

copy_assets() {  # outdir tools-dir module (src dst)...
  local out=$1 dir=$2 module=$3; shift 3
  [[ -f "$out/assets/.complete" ]] && return
  local src; src=$(module_source "$dir" "$module")
  rm -rf "$out/assets" && mkdir -p "$out/assets"
  while [[ $# -gt 0 ]]; do
    mkdir -p "$(dirname "$out/assets/$2")"
    cp -r "$src/$1" "$out/assets/$2"; shift 2
  done
  chmod -R u+w "$out/assets" && touch "$out/assets/.complete"
  log "$module: copied data files into $out/assets"
}

k8s_ldflags() {
  local v=$K8S_VERSION minor; minor=$(echo "$v" | cut -d. -f2)
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.gitCommit=module-build -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  echo "$ld"
}

targets=("$@"); [[ ${#targets[@]} -eq 0 ]] && targets=(etcd kwok k8s kubectl kueue versitygw)
for t in "${targets[@]}"; do
  case $t in
    etcd) build_one etcd $ETCD_VERSION etcdbin "$CACHE/bin/etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3
          # `go build` names the binary after the package's last path element ("server").
          [[ -f "$CACHE/bin/etcd-$ETCD_VERSION/etcd" ]] || mv "$CACHE/bin/etcd-$ETCD_VERSION/server" "$CACHE/bin/etcd-$ETCD_VERSION/etcd" ;;
    kwok) build_one kwok $KWOK_VERSION kwokbin "$CACHE/bin/kwok-$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
          copy_assets "$CACHE/bin/kwok-$KWOK_VERSION" kwokbin sigs.k8s.io/kwok kustomize/stage stage ;;
    k8s) LDFLAGS="$(k8s_ldflags)" build_one kubernetes $K8S_VERSION k8sbins "$CACHE/bin/k8s-$K8S_VERSION" \
          k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler ;;
    # kubectl is not a server: tests use it to see jobs as a user does (`kubectl wait`).
    kubectl) LDFLAGS="$(k8s_ldflags)" build_one kubectl $K8S_VERSION k8sbins "$CACHE/bin/kubectl-$K8S_VERSION" \
          k8s.io/kubernetes/cmd/kubectl ;;
    kueue) LDFLAGS="-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" \
          build_one kueue $KUEUE_VERSION kueuebin "$CACHE/bin/kueue-$KUEUE_VERSION" sigs.k8s.io/kueue/cmd/kueue
          copy_assets "$CACHE/bin/kueue-$KUEUE_VERSION" kueuebin sigs.k8s.io/kueue \
            config/components/crd/bases crd config/components/webhook/manifests.yaml webhook-manifests.yaml ;;
    versitygw) build_one versitygw $VERSITYGW_VERSION versitygwbin "$CACHE/bin/versitygw-$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw ;;
    *) echo "unknown component $t" >&2; exit 2 ;;
  esac
done
log "all requested components ready under $CACHE/bin"
