#!/usr/bin/env bash
# Build the local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) from the
# official upstream Go modules at pinned versions. Binaries are cached outside the work tree, keyed
# by version, and rebuilt only when missing. Prints the directory that holds them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/cluster/versions.sh
source "$here/versions.sh"
# shellcheck source=hack/lib/go-modules.sh
source "$here/../lib/go-modules.sh"

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

if [[ ! -x "$bin_dir/kube-apiserver" || ! -x "$bin_dir/kube-controller-manager" || ! -x "$bin_dir/kubectl" ]]; then
  log "building Kubernetes $K8S_VERSION (cold: about 6 minutes on 2 cores)"
  k8s_module_download "$work"
  k8s_build "$work/k8s" "$bin_dir" kube-apiserver kube-controller-manager kubectl
fi

if [[ ! -x "$bin_dir/etcd" ]]; then
  log "building etcd $ETCD_VERSION"
  etcd_build "$work/etcd" "$bin_dir/etcd"
fi

have_all || { log "build finished but binaries are missing in $bin_dir"; exit 1; }
log "built in $(( $(date +%s) - start )) s"
echo "$bin_dir"
