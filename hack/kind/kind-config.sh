#!/usr/bin/env bash
# Prints the kind cluster configuration for MODE (offline|registry), adjusted to this host:
#   offline   no kindnetd (the Go module proxy does not serve it): the node image's bridge CNI
#             config serves the single node; kubeadm is pointed at our etcd image's tag.
#   cgroup v1 (any mode) Kubernetes 1.35+ kubelets refuse cgroup v1 unless failCgroupV1 is false.
#   hack/kind/kind-config.sh offline|registry
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/versions.sh
source "$here/versions.sh"
mode=${1:?usage: kind-config.sh offline|registry}

cat <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
EOF
if [[ $mode == offline ]]; then
  cat <<EOF
networking:
  disableDefaultCNI: true
  podSubnet: 10.244.0.0/16
EOF
fi
echo "kubeadmConfigPatches:"
if [[ $mode == offline ]]; then
  cat <<EOF
  - |
    kind: ClusterConfiguration
    etcd:
      local:
        imageTag: "${ETCD_VERSION#v}-0"
EOF
fi
if [[ ! -f /sys/fs/cgroup/cgroup.controllers ]]; then
  cat <<EOF
  - |
    kind: KubeletConfiguration
    failCgroupV1: false
EOF
fi
