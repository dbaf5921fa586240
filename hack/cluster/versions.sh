# Pinned versions of the local control plane; sourced by the cluster scripts.
# shellcheck shell=bash
K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
TA_CACHE_DIR=${TASKACTION_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/taskaction-operator}
export K8S_VERSION ETCD_VERSION TA_CACHE_DIR
