#!/usr/bin/env bash
# Build the local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) from the
# official upstream Go modules at pinned versions. Binaries are cached outside the work tree, keyed
# by version, and rebuilt only when missing. Prints the directory that holds them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/cluster/versions.sh
source "$here/versions.sh"

bin_dir="$TA_CACHE_DIR/k8s-$K8S_VERSION-etcd-$ETCD_VERSION/bin"
want=(etcd kube-apiserver kube-controller-manager kubectl)

have_all() {
  local b
  for b in "${want[@]}"; do [[ -x "$bin_dir/$b" ]] || return 1; done
}

if have_all; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is required to build the control plane (go not on PATH)" >&2; exit 1; }
mkdir -p "$bin_dir"
work=$(mktemp -d "$TA_CACHE_DIR/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
# CGO_ENABLED=0: static binaries, and the same compile cache as hack/kind/build.sh (whose node images
# have no libc), so building both compiles Kubernetes once.
export GOFLAGS="-mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0
log() { printf 'build.sh: %s\n' "$*" >&2; }
start=$(date +%s)

# --- Kubernetes: a tools module that requires k8s.io/kubernetes and maps each staging module
# (a local path in upstream's go.mod) onto its published v0.x tag.
if [[ ! -x "$bin_dir/kube-apiserver" || ! -x "$bin_dir/kube-controller-manager" || ! -x "$bin_dir/kubectl" ]]; then
  log "building Kubernetes $K8S_VERSION (cold: about 6 minutes on 2 cores)"
  k8s="$work/k8s"; mkdir -p "$k8s"
  staging_version="v0.${K8S_VERSION#v1.}"
  upstream_mod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  [[ -f "$upstream_mod" ]] || { log "could not download k8s.io/kubernetes@$K8S_VERSION go.mod"; exit 1; }
  {
    echo "module taskaction-operator/k8s-tools"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    # Every "k8s.io/x => ./staging/src/k8s.io/x" line becomes "k8s.io/x => k8s.io/x v0.N.M".
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$upstream_mod" \
      | grep -v -e '^k8s.io/sample-' \
      | while read -r m; do echo "replace $m => $m $staging_version"; done
  } >"$k8s/go.mod"
  cat >"$k8s/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$k8s" && { go mod tidy -e >/dev/null 2>&1 || true; })
  (cd "$k8s" && go build -tags tools -trimpath -ldflags='-s -w' -o "$bin_dir/" \
     k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
fi

# --- etcd: its module root is package main.
if [[ ! -x "$bin_dir/etcd" ]]; then
  log "building etcd $ETCD_VERSION"
  e="$work/etcd"; mkdir -p "$e"
  cat >"$e/go.mod" <<GOMOD
module taskaction-operator/etcd-tools

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat >"$e/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "$e" && { go mod tidy -e >/dev/null 2>&1 || true; })
  (cd "$e" && go build -trimpath -ldflags='-s -w' -o "$bin_dir/etcd" go.etcd.io/etcd/server/v3)
fi

have_all || { log "build finished but binaries are missing in $bin_dir"; exit 1; }
log "built in $(( $(date +%s) - start )) s"
echo "$bin_dir"
