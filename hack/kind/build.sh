#!/usr/bin/env bash
# Build what a kind node made offline needs, from official Go modules and sources at the versions of
# hack/kind/versions.sh: the kind CLI; containerd 2 (ctr, the runc shim); kubeadm, kubelet,
# kube-proxy, kube-scheduler, kube-apiserver, kube-controller-manager, kubectl with their version
# stamped (kubeadm refuses a control plane newer than itself); etcd at ETCD_VERSION; coredns; pause
# (gcc, from the Kubernetes source). All static (CGO_ENABLED=0, pause -static): the component images
# have no libc. Cached under $KIND_CACHE_DIR/bin, each rebuilt only when missing. Prints that directory.
#   hack/kind/build.sh          everything a node needs
#   hack/kind/build.sh kind     the kind CLI alone (the registry path)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/versions.sh
source "$here/versions.sh"
bin="$KIND_CACHE_DIR/bin"
k8s_bins=(kubeadm kubelet kube-proxy kube-scheduler kube-apiserver kube-controller-manager kubectl)
containerd_bins=(containerd ctr containerd-shim-runc-v2)
log() { printf 'kind/build.sh: %s\n' "$*" >&2; }
missing() { local b; for b in "$@"; do [[ -x "$bin/$b" ]] || return 0; done; return 1; }

command -v go >/dev/null || { log "Go is required (go not on PATH)"; exit 1; }
mkdir -p "$bin"
work=$(mktemp -d "$TA_CACHE_DIR/kind-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOFLAGS="-mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0
start=$SECONDS

# A throwaway module that requires MODULE@VERSION (plus extra go.mod lines), so `go build PKG...`
# resolves exactly the pinned versions.
tools_module() {
  local dir=$1 module=$2 version=$3
  mkdir -p "$dir"
  { printf 'module taskaction-operator/kind-tools\n\ngo 1.26\n\nrequire %s %s\n' "$module" "$version"; cat; } >"$dir/go.mod"
  shift 3
  { printf '//go:build tools\n\npackage tools\n\nimport (\n'; printf '\t_ "%s"\n' "$@"; printf ')\n'; } >"$dir/tools.go"
  (cd "$dir" && { go mod tidy -e >/dev/null 2>&1 || true; })
}

if missing kind; then
  log "building kind $KIND_VERSION"
  GOFLAGS='' GOBIN="$bin" go install -trimpath -ldflags='-s -w' "sigs.k8s.io/kind@$KIND_VERSION"
fi

if [[ ${1:-} == kind ]]; then
  echo "$bin"
  exit 0
fi

if missing "${containerd_bins[@]}"; then
  log "building containerd $CONTAINERD_VERSION"
  m=github.com/containerd/containerd/v2
  tools_module "$work/containerd" "$m" "$CONTAINERD_VERSION" "$m/cmd/containerd" "$m/cmd/ctr" "$m/cmd/containerd-shim-runc-v2" </dev/null
  # The build tags kind's base image uses: no optional snapshotters.
  (cd "$work/containerd" && go build -tags 'tools no_aufs no_zfs no_btrfs no_devmapper' -trimpath \
    -ldflags="-s -w -X $m/version.Version=$CONTAINERD_VERSION" -o "$bin/" \
    "$m/cmd/containerd" "$m/cmd/ctr" "$m/cmd/containerd-shim-runc-v2")
fi

if missing coredns; then
  log "building coredns $COREDNS_VERSION"
  tools_module "$work/coredns" github.com/coredns/coredns "$COREDNS_VERSION" github.com/coredns/coredns </dev/null
  (cd "$work/coredns" && go build -tags tools -trimpath -ldflags='-s -w' -o "$bin/coredns" github.com/coredns/coredns)
fi

if missing pause; then
  command -v gcc >/dev/null || { log "gcc is required to build pause"; exit 1; }
  src=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-taskaction" -o "$bin/pause" "$src/build/pause/linux/pause.c"
  strip "$bin/pause"
fi

if missing "${k8s_bins[@]}"; then
  log "building Kubernetes $K8S_VERSION node binaries (cold: about 8 minutes on 2 cores)"
  staging_version="v0.${K8S_VERSION#v1.}"
  upstream_mod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  pkgs=(); for b in "${k8s_bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  # Every "k8s.io/x => ./staging/src/k8s.io/x" of upstream's go.mod becomes "k8s.io/x => k8s.io/x v0.N.M".
  sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$upstream_mod" \
    | grep -v -e '^k8s.io/sample-' | while read -r m; do echo "replace $m => $m $staging_version"; done \
    | tools_module "$work/k8s" k8s.io/kubernetes "$K8S_VERSION" "${pkgs[@]}"
  v=k8s.io/component-base/version
  ldflags="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
  (cd "$work/k8s" && go build -tags tools -trimpath -ldflags="$ldflags" -o "$bin/" "${pkgs[@]}")
fi

if missing etcd; then
  # Built here rather than taken from hack/cluster: the image has no libc, so CGO_ENABLED=0.
  log "building etcd $ETCD_VERSION"
  tools_module "$work/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 </dev/null
  (cd "$work/etcd" && go build -tags tools -trimpath -ldflags='-s -w' -o "$bin/etcd" go.etcd.io/etcd/server/v3)
fi

log "node binaries ready in $bin ($((SECONDS - start)) s)"
echo "$bin"
