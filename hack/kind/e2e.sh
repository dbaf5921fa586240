#!/usr/bin/env bash
# The shipped-artifact path: a kind cluster, the image built from the Dockerfile, the kustomize
# manifests (operator + throwaway PostgreSQL), the checks of the operator running as Pods
# (tests/kind), then the same e2e suite as `make e2e` against kind, each test's operator a Pod of
# that image (tests/e2e/pod_operator.py), the suite reading the in-cluster PostgreSQL through a
# port-forward. See hack/kind/README.md.
#
# Two ways to a cluster, chosen by --offline/--registry (default: --registry when Docker Hub answers,
# --offline otherwise):
#   registry  kind's own node image (kind create cluster), python:3.11-slim and postgres:15 pulled;
#   offline   nothing pulled: the node image of node-image.sh (Debian + binaries built from the
#             official Go modules), the Python and PostgreSQL bases of images.sh.
# A Docker engine is started when none answers (docker.sh).
#   hack/kind/e2e.sh [--offline|--registry] [--keep] [-- PYTEST_ARGS...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=hack/kind/versions.sh
source "$here/versions.sh"
cluster=${KIND_CLUSTER_NAME:-taskaction}
ns=taskaction-system
state="$root/.local/kind"
kubeconfig="$state/kubeconfig"
keep=0 mode=auto
pytest_args=()
while (( $# )); do
  case $1 in
    --keep) keep=1 ;;
    --offline) mode=offline ;;
    --registry) mode=registry ;;
    --) shift; pytest_args=("$@"); break ;;
    *) echo "usage: hack/kind/e2e.sh [--offline|--registry] [--keep] [-- PYTEST_ARGS...]" >&2; exit 2 ;;
  esac
  shift
done

die() { printf 'kind/e2e.sh: %s\n' "$*" >&2; exit 1; }
log() { printf 'kind/e2e.sh: %s (%d s)\n' "$1" "$((SECONDS - t0))" >&2; }
t0=$SECONDS
[[ -x "$root/.venv/bin/pytest" ]] || die ".venv missing: run 'make venv' first"
mkdir -p "$state"

bash "$here/docker.sh" up
if [[ $mode == auto ]]; then
  # Docker Hub's registry answers 401 to an anonymous probe when it is reachable at all.
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 https://registry-1.docker.io/v2/ || true)
  if [[ $code == 401 || $code == 200 ]]; then mode=registry; else mode=offline; fi
  log "mode: $mode (Docker Hub answered ${code:-nothing})"
fi

node_args=() overlay="$root/manifests/overlays/kind"
if [[ $mode == offline ]]; then
  bin=$(bash "$here/build.sh")
  node_image=$(bash "$here/node-image.sh")
  node_args=(--image "$node_image")
  overlay="$root/manifests/overlays/kind-offline"
  images_args=(--offline)
  log "node image $node_image ready"
else
  bin=$(bash "$here/build.sh" kind)
  images_args=()
fi
kind="$bin/kind"
kubectl=$([[ -x "$bin/kubectl" ]] && echo "$bin/kubectl" || command -v kubectl || true)
[[ -n "$kubectl" ]] || die "kubectl not found (install it; the offline path builds its own)"
k() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }

pf_pid=""
finish() {
  local rc=$?
  [[ -n "$pf_pid" ]] && kill "$pf_pid" 2>/dev/null
  if (( rc != 0 )) && [[ -f "$kubeconfig" ]]; then
    log "failed ($rc); operator logs and events follow"
    k -n "$ns" logs deployment/taskaction-operator --all-containers --tail=200 >&2 || true
    k get pods -A -o wide >&2 || true
    k -n "$ns" get events --sort-by=.lastTimestamp >&2 || true
  fi
  if (( keep )); then
    log "kept cluster $cluster: KUBECONFIG=$kubeconfig"
  else
    "$kind" delete cluster --name "$cluster" >&2 || true
  fi
  exit "$rc"
}
trap finish EXIT

# --- the cluster
config="$state/kind-config.yaml"
bash "$here/kind-config.sh" "$mode" >"$config"
if "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
  log "reusing kind cluster $cluster"
  "$kind" export kubeconfig --name "$cluster" --kubeconfig "$kubeconfig"
else
  "$kind" create cluster --name "$cluster" --kubeconfig "$kubeconfig" --config "$config" \
    "${node_args[@]}" --wait 180s
fi
log "cluster $cluster up"
# The in-cluster PostgreSQL keeps its data on the node (manifests/overlays/kind/postgres.yaml: a
# hostPath PersistentVolume), in a directory its user (999) owns.
docker exec "$cluster-control-plane" install -d -o 999 -g 999 -m 0700 /var/lib/taskaction-postgres

# --- the images and the manifests
bash "$here/images.sh" "${images_args[@]}"
"$kind" load docker-image taskaction-operator:dev --name "$cluster"
if [[ $mode == offline ]]; then
  "$kind" load docker-image "taskaction.local/postgres:15-$DEBIAN_SUITE" --name "$cluster"
fi
log "images loaded"
k apply -k "$overlay"
k -n "$ns" rollout status deployment/taskaction-postgres --timeout=180s
k -n "$ns" rollout status deployment/taskaction-operator --timeout=180s
log "operator rolled out"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
# Re-opened whenever it ends: tests/kind scales PostgreSQL to zero and restarts the API server, and
# either ends a port-forward.
forward() {
  local child=""
  trap 'kill "$child" 2>/dev/null; exit 0' TERM
  while :; do
    # kubectl itself, not the k function: a function in the background is a subshell, and killing
    # it would leave kubectl running.
    "$kubectl" --kubeconfig "$kubeconfig" -n "$ns" port-forward service/taskaction-postgres "$port:5432" \
      >>"$state/port-forward.log" 2>&1 &
    child=$!
    wait "$child" || true
    sleep 1
  done
}
: >"$state/port-forward.log"
forward &
pf_pid=$!
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "port-forward to PostgreSQL did not open; see $state/port-forward.log"
export KUBECONFIG="$kubeconfig" TASKACTION_KIND=1 TASKACTION_KIND_NODE="$cluster-control-plane" \
  TASKACTION_DATABASE_URL="postgresql://taskaction:taskaction-kind@127.0.0.1:$port/taskaction"
cd "$root"

# --- the operator as Pods: its image, ServiceAccount, probes, metrics, leader, rolling restart
.venv/bin/pytest tests/kind -q -p no:cacheprovider
log "deployed-operator checks passed"

# Each e2e test starts its own operator for its namespace (some kill or restart it), here as a Pod of
# the same image in $ns (TASKACTION_KIND=1: tests/e2e/pod_operator.py). The deployed replicas watch
# every namespace and would compete with them, so they step aside for the suite.
k -n "$ns" scale deployment/taskaction-operator --replicas=0
k -n "$ns" rollout status deployment/taskaction-operator --timeout=120s
e2e_rc=0
.venv/bin/pytest tests/e2e -q -p no:cacheprovider "${pytest_args[@]}" || e2e_rc=$?
# A test interrupted before its teardown may leave its operator Pod behind.
k -n "$ns" delete pods -l app.kubernetes.io/component=e2e-operator --ignore-not-found --wait=false >/dev/null
(( e2e_rc == 0 )) || exit "$e2e_rc"
log "e2e suite passed on kind"
