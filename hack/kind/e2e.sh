#!/usr/bin/env bash
# The shipped-artifact path: a kind cluster, the image built from the Dockerfile, the kustomize
# manifests (manifests/overlays/kind: operator + throwaway PostgreSQL), a sample TaskAction that the
# deployed operator must take under its record guard, then the same e2e suite as `make e2e`, pointed
# at kind (context kind-taskaction) and at the in-cluster PostgreSQL through a port-forward.
# Needs a Docker engine, kind and kubectl (or .local/bin/kubectl); see hack/kind/README.md.
#   hack/kind/e2e.sh [--keep] [-- PYTEST_ARGS...]     --keep leaves the cluster running
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cluster=${KIND_CLUSTER_NAME:-taskaction}
image=taskaction-operator:dev
ns=taskaction-system
state="$root/.local/kind"
kubeconfig="$state/kubeconfig"
keep=0
pytest_args=()
while (( $# )); do
  case $1 in
    --keep) keep=1 ;;
    --) shift; pytest_args=("$@"); break ;;
    *) echo "usage: hack/kind/e2e.sh [--keep] [-- PYTEST_ARGS...]" >&2; exit 2 ;;
  esac
  shift
done

die() { printf 'kind/e2e.sh: %s\n' "$*" >&2; exit 1; }
log() { printf 'kind/e2e.sh: %s\n' "$*" >&2; }

command -v kind >/dev/null || die "kind is not installed (https://kind.sigs.k8s.io); this path needs kind and a Docker engine"
docker info >/dev/null 2>&1 || die "'docker info' failed: no Docker engine reachable; this path needs one"
kubectl=$(command -v kubectl || echo "$root/.local/bin/kubectl")
[[ -x "$kubectl" ]] || die "kubectl not found (install it, or run 'make cluster-up' once for .local/bin/kubectl)"
[[ -x "$root/.venv/bin/pytest" ]] || die ".venv missing: run 'make venv' first"
k() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }

pf_pid=""
finish() {
  local rc=$?
  [[ -n "$pf_pid" ]] && kill "$pf_pid" 2>/dev/null
  if (( rc != 0 )) && [[ -f "$kubeconfig" ]]; then
    log "failed ($rc); operator logs and events follow"
    k -n "$ns" logs deployment/taskaction-operator --all-containers --tail=200 >&2 || true
    k -n "$ns" get events --sort-by=.lastTimestamp >&2 || true
  fi
  if (( keep )); then
    log "kept cluster $cluster: KUBECONFIG=$kubeconfig"
  else
    kind delete cluster --name "$cluster" >&2 || true
  fi
  exit "$rc"
}
trap finish EXIT

mkdir -p "$state"
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  log "reusing kind cluster $cluster"
  kind export kubeconfig --name "$cluster" --kubeconfig "$kubeconfig"
else
  kind create cluster --name "$cluster" --kubeconfig "$kubeconfig" --wait 120s
fi

docker build -t "$image" "$root"
kind load docker-image "$image" --name "$cluster"

k apply -k "$root/manifests/overlays/kind"
k -n "$ns" rollout status deployment/taskaction-postgres --timeout=180s
k -n "$ns" rollout status deployment/taskaction-operator --timeout=180s

# The deployed operator (its image, entrypoint, RBAC and probes) takes a sample under its record guard.
smoke=taskaction-kind-smoke
k create namespace "$smoke" --dry-run=client -o yaml | k apply -f -
k -n "$smoke" apply -f "$root/examples/flyte-taskaction.yaml"
k -n "$smoke" wait taskaction/rdemo1-a0 --for=jsonpath='{.metadata.finalizers[0]}'=flyte.org/record-guard --timeout=60s
log "the deployed operator reconciled the sample TaskAction"
# The e2e tests start their own operator per test namespace (some kill or restart it): the deployed
# replicas would compete with them, so they step aside for the suite.
k -n "$ns" scale deployment/taskaction-operator --replicas=0
k -n "$ns" rollout status deployment/taskaction-operator --timeout=120s

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
k -n "$ns" port-forward service/taskaction-postgres "$port:5432" >"$state/port-forward.log" 2>&1 &
pf_pid=$!
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "port-forward to PostgreSQL did not open; see $state/port-forward.log"

cd "$root"
KUBECONFIG="$kubeconfig" \
TASKACTION_DATABASE_URL="postgresql://taskaction:taskaction-kind@127.0.0.1:$port/taskaction" \
  .venv/bin/pytest tests/e2e -q "${pytest_args[@]}"
