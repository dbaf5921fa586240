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
# shellcheck source=hack/lib/go-modules.sh
source "$here/../lib/go-modules.sh"
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
  go_tools_module "$work/containerd" "$m" "$CONTAINERD_VERSION" "$m/cmd/containerd" "$m/cmd/ctr" "$m/cmd/containerd-shim-runc-v2" </dev/null
  # The build tags kind's base image uses: no optional snapshotters.
  (cd "$work/containerd" && go build -tags 'tools no_aufs no_zfs no_btrfs no_devmapper' -trimpath \
    -ldflags="-s -w -X $m/version.Version=$CONTAINERD_VERSION" -o "$bin/" \
    "$m/cmd/containerd" "$m/cmd/ctr" "$m/cmd/containerd-shim-runc-v2")
fi

if missing coredns; then
  log "building coredns $COREDNS_VERSION"
  go_tools_module "$work/coredns" github.com/coredns/coredns "$COREDNS_VERSION" github.com/coredns/coredns </dev/null
  (cd "$work/coredns" && go build -tags tools -trimpath -ldflags='-s -w' -o "$bin/coredns" github.com/coredns/coredns)
fi

# One download of k8s.io/kubernetes serves both pause (its C source) and the node binaries (its go.mod).
if missing pause "${k8s_bins[@]}"; then
  k8s_module_download "$work"
fi

if missing pause; then
  command -v gcc >/dev/null || { log "gcc is required to build pause"; exit 1; }
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-taskaction" -o "$bin/pause" "$K8S_MODULE_DIR/build/pause/linux/pause.c"
  strip "$bin/pause"
fi

if missing "${k8s_bins[@]}"; then
  log "building Kubernetes $K8S_VERSION node binaries (cold: about 8 minutes on 2 cores)"
  k8s_build "$work/k8s" "$bin" "${k8s_bins[@]}"
fi

if missing etcd; then
  # A copy of its own (a link from the shared compile cache when hack/cluster built it), so the kind
  # cache stands alone.
  log "building etcd $ETCD_VERSION"
  etcd_build "$work/etcd" "$bin/etcd"
fi

log "node binaries ready in $bin ($((SECONDS - start)) s)"
echo "$bin"
