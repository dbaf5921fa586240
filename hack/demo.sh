#!/usr/bin/env bash
# The demo: local control plane, PostgreSQL (a private one unless TASKACTION_DATABASE_URL is set),
# the operator, the example three-level run applied with kubectl, a stand-in executor moving its
# phases, and the recorded tree.   hack/demo.sh        bring it up (idempotent; a new run each time)
#                                  hack/demo.sh down   stop the demo's operator
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
state=.local/demo
NS=${TASKACTION_DEMO_NAMESPACE:-flyte}
mkdir -p "$state"

stop_operator() {
  if [[ -f $state/operator.pid ]] && kill -0 "$(cat "$state/operator.pid")" 2>/dev/null; then
    kill -TERM "$(cat "$state/operator.pid")"
    for _ in $(seq 1 100); do kill -0 "$(cat "$state/operator.pid")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$state/operator.pid"
}

if [[ ${1:-} == down ]]; then
  stop_operator
  echo "demo operator stopped; 'make cluster-down db-down' removes the cluster and the database"
  exit 0
fi

start=$(date +%s.%N)
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "control plane"
KUBECONFIG=$(bash hack/cluster/cluster.sh up)
export KUBECONFIG
kubectl=(.local/bin/kubectl)
step "database"
if [[ -z ${TASKACTION_DATABASE_URL:-} ]]; then
  TASKACTION_DATABASE_URL=$(bash hack/db/db.sh up)
fi
export TASKACTION_DATABASE_URL
echo "$TASKACTION_DATABASE_URL"
"${kubectl[@]}" get namespace "$NS" >/dev/null 2>&1 || "${kubectl[@]}" create namespace "$NS" >/dev/null

step "operator"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if [[ -f $state/operator.pid ]] && kill -0 "$(cat "$state/operator.pid")" 2>/dev/null; then
  echo "already running (pid $(cat "$state/operator.pid"), log $state/operator.log)"
else
  TASKACTION_NAMESPACES=$NS TASKACTION_LEASE_NAMESPACE=$NS TASKACTION_METRICS_PORT=0 \
  TASKACTION_LIVENESS="http://127.0.0.1:$port/healthz" \
    nohup .venv/bin/taskaction-operator run >"$state/operator.log" 2>&1 </dev/null &
  echo $! >"$state/operator.pid"
  deadline=$((SECONDS + 60))
  until curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
    kill -0 "$(cat "$state/operator.pid")" 2>/dev/null || { echo "operator exited; see $state/operator.log" >&2; tail -20 "$state/operator.log" >&2; exit 1; }
    (( SECONDS < deadline )) || { echo "operator not live after 60 s; see $state/operator.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "running (pid $(cat "$state/operator.pid"), log $state/operator.log)"
fi

run="rdemo$(date +%H%M%S)"
step "apply the example run as $run (examples/run-three-levels.yaml, plain kubectl)"
sed "s/r3levels/$run/g" examples/run-three-levels.yaml | "${kubectl[@]}" apply -n "$NS" -f -

step "play the executor (a1-2 needs a second attempt, a2-1 fails)"
.venv/bin/python -m taskaction_operator.devtools.play -n "$NS" --run "$run" --step 0.15 --retry a1-2 --fail a2-1

step "the recorded tree"
for _ in $(seq 1 50); do
  phase=$(.venv/bin/taskaction-operator runs get "$run" --project flytesnacks --domain development -o json 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin).get("phase",""))' 2>/dev/null || true)
  [[ $phase == SUCCEEDED ]] && break
  sleep 0.2
done
.venv/bin/taskaction-operator runs tree "$run" --project flytesnacks --domain development

elapsed=$(python3 -c "import time; print(round(time.time() - $start, 1))")
cat <<MSG

Demo ready in ${elapsed} s. Look around:
  export KUBECONFIG=$KUBECONFIG TASKACTION_DATABASE_URL=$TASKACTION_DATABASE_URL
  .local/bin/kubectl get taskactions -n $NS -o wide
  .venv/bin/taskaction-operator runs list --project flytesnacks --domain development
  .venv/bin/taskaction-operator events $run a1-2 --project flytesnacks --domain development
  .venv/bin/taskaction-operator abort $run --project flytesnacks --domain development --reason "just looking" --wait
  tail -f $state/operator.log
Tear down:
  make demo-down cluster-down db-down
MSG
