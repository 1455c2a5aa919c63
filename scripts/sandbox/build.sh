#!/usr/bin/env bash
# Build the sandbox's Go components from the Go module proxy into a cache
# outside the repository, keyed by version. Skips anything already built.
# Usage: scripts/sandbox/build.sh            (all components)
#        scripts/sandbox/build.sh etcd kwok  (some)
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

build_one() {  # name version module-dir outdir packages...
  local name=$1 version=$2 dir=$3 out=$4; shift 4
  if [[ -f "$out/.complete" ]]; then log "$name $version: cached in $out"; return; fi
  log "$name $version: building into $out (cold builds take minutes)"
  local t0=$SECONDS
  mkdir -p "$out.tmp"
  (cd "$ROOT/tools/$dir" && go mod download && go build -ldflags "${LDFLAGS:--s -w}" -o "$out.tmp/" "$@")
  rm -rf "$out" && mv "$out.tmp" "$out" && touch "$out/.complete"
  log "$name $version: built in $((SECONDS - t0)) s"
}

k8s_ldflags() {
  local v=$K8S_VERSION minor; minor=$(echo "$v" | cut -d. -f2)
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.gitCommit=module-build -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  echo "$ld"
}

targets=("$@"); [[ ${#targets[@]} -eq 0 ]] && targets=(etcd kwok k8s kueue versitygw)
for t in "${targets[@]}"; do
  case $t in
    etcd) build_one etcd $ETCD_VERSION etcdbin "$CACHE/bin/etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3
          # `go build` names the binary after the package's last path element ("server").
          [[ -f "$CACHE/bin/etcd-$ETCD_VERSION/etcd" ]] || mv "$CACHE/bin/etcd-$ETCD_VERSION/server" "$CACHE/bin/etcd-$ETCD_VERSION/etcd" ;;
    kwok) build_one kwok $KWOK_VERSION kwokbin "$CACHE/bin/kwok-$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok ;;
    k8s) LDFLAGS="$(k8s_ldflags)" build_one kubernetes $K8S_VERSION k8sbins "$CACHE/bin/k8s-$K8S_VERSION" \
          k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler ;;
    kueue) LDFLAGS="-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" \
          build_one kueue $KUEUE_VERSION kueuebin "$CACHE/bin/kueue-$KUEUE_VERSION" sigs.k8s.io/kueue/cmd/kueue ;;
    versitygw) build_one versitygw $VERSITYGW_VERSION versitygwbin "$CACHE/bin/versitygw-$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw ;;
    *) echo "unknown component $t" >&2; exit 2 ;;
  esac
done
log "all requested components ready under $CACHE/bin"
