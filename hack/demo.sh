#!/usr/bin/env bash
# The demo: local control plane, PostgreSQL (a private one unless TASKACTION_DATABASE_URL is set),
# the operator, the example three-level run applied with kubectl, a stand-in executor moving its
# phases, the recorded tree, and Flyte's API (`taskaction-operator serve`) on it.
#                                  hack/demo.sh        bring it up (idempotent; a new run each time)
#                                  hack/demo.sh down   stop the demo's operator and API server
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
state=.local/demo
NS=${TASKACTION_DEMO_NAMESPACE:-flyte}
mkdir -p "$state"

# stop NAME: end the demo's process recorded in $state/NAME.pid, if it runs.
stop() {
  if [[ -f $state/$1.pid ]] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; then
    kill -TERM "$(cat "$state/$1.pid")"
    for _ in $(seq 1 100); do kill -0 "$(cat "$state/$1.pid")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$state/$1.pid"
}

# start NAME URL COMMAND...: run COMMAND in the background as $state/NAME.pid until URL answers.
start() {
  local name=$1 url=$2
  shift 2
  if [[ -f $state/$name.pid ]] && kill -0 "$(cat "$state/$name.pid")" 2>/dev/null; then
    echo "already running (pid $(cat "$state/$name.pid"), log $state/$name.log)"
    return
  fi
  nohup "$@" >"$state/$name.log" 2>&1 </dev/null &
  echo $! >"$state/$name.pid"
  local deadline=$((SECONDS + 60))
  until curl -fsS "$url" >/dev/null 2>&1; do
    kill -0 "$(cat "$state/$name.pid")" 2>/dev/null || { echo "$name exited; see $state/$name.log" >&2; tail -20 "$state/$name.log" >&2; exit 1; }
    (( SECONDS < deadline )) || { echo "$name not live after 60 s; see $state/$name.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "running (pid $(cat "$state/$name.pid"), log $state/$name.log)"
}

if [[ ${1:-} == down ]]; then
  stop operator
  stop api
  echo "demo operator and API server stopped; 'make cluster-down db-down' removes the cluster and the database"
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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
TASKACTION_NAMESPACES=$NS TASKACTION_LEASE_NAMESPACE=$NS TASKACTION_METRICS_PORT=0 \
TASKACTION_LIVENESS="http://127.0.0.1:$port/healthz" \
  start operator "http://127.0.0.1:$port/healthz" .venv/bin/taskaction-operator run

step "Flyte's API (taskaction-operator serve, --auth none: local only)"
# A running API server keeps its port; a new one gets a free port.
if ! { [[ -f $state/api.port && -f $state/api.pid ]] && kill -0 "$(cat "$state/api.pid")" 2>/dev/null; }; then
  free_port >"$state/api.port"
fi
api="http://127.0.0.1:$(cat "$state/api.port")"
start api "$api/readyz" .venv/bin/taskaction-operator serve --listen "127.0.0.1:$(cat "$state/api.port")" -n "$NS"

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
With Flyte's own CLI (flyte 2.12.1 from PyPI; 'bash hack/flyte-client.sh venv' installs it once):
  .local/flyte-venv/bin/flyte --endpoint $api --insecure get action $run --project flytesnacks --domain development
  .local/flyte-venv/bin/flyte --endpoint $api --insecure get run $run --project flytesnacks --domain development
Tear down:
  make demo-down cluster-down db-down
MSG
