# Pinned versions of the kind path; sourced by the kind scripts (after hack/cluster/versions.sh,
# whose Kubernetes and etcd versions the node shares with the local control plane).
# shellcheck shell=bash
_kind_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/cluster/versions.sh
source "$_kind_here/../cluster/versions.sh"
KIND_VERSION=${KIND_VERSION:-v0.33.0}
# Kubernetes 1.36+ needs containerd 2 (Debian bookworm ships 1.6): built from its Go module, at the
# version kind $KIND_VERSION puts in its own base image.
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.3.4}
# What kubeadm $K8S_VERSION deploys (cmd/kubeadm/app/constants: CoreDNSVersion, PauseVersion).
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.6}
PAUSE_VERSION=${PAUSE_VERSION:-3.10.2}
# The node, the component images and the offline Python and PostgreSQL bases are Debian bookworm
# (systemd 252 still runs on a cgroup v1 host; trixie's 257 does not).
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The host's engine, when none runs: Debian's packages at the versions measured here.
# shellcheck disable=SC2034 # used by docker.sh
DEBIAN_DOCKER_PACKAGES=(docker.io=20.10.24+dfsg1-1+deb12u1+b6 jq debootstrap)
KIND_CACHE_DIR="$TA_CACHE_DIR/kind-$KIND_VERSION-k8s-$K8S_VERSION-containerd-$CONTAINERD_VERSION-coredns-$COREDNS_VERSION"
export KIND_VERSION CONTAINERD_VERSION COREDNS_VERSION PAUSE_VERSION DEBIAN_SUITE DEBIAN_MIRROR KIND_CACHE_DIR
