#!/usr/bin/env bash
# A real local Kubernetes control plane: etcd + kube-apiserver + kube-controller-manager (garbage
# collector, namespace and service-account controllers), built from the official upstream Go modules
# (build.sh), all on loopback with free ports.
#   cluster.sh up                 start (or reuse) it; installs crds/ before the controller manager
#                                 starts, so the garbage collector knows TaskActions at once; prints
#                                 the admin kubeconfig path (.local/cluster/kubeconfig)
#   cluster.sh down               stop every process it started (by pid) and remove its state
#   cluster.sh status             say what runs
#   cluster.sh restart COMPONENT  stop and start one component (etcd|kube-apiserver|kube-controller-manager)
#   cluster.sh stop COMPONENT / start COMPONENT   (fault tests)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state="$root/.local/cluster"
components=(etcd kube-apiserver kube-controller-manager)
READY_TIMEOUT=${TASKACTION_CLUSTER_READY_TIMEOUT:-60}

die() { printf 'cluster.sh: %s\n' "$*" >&2; exit 1; }
log() { printf 'cluster.sh: %s\n' "$*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pid_alive() { [[ -f "$state/$1.pid" ]] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

kubectl_() { "$root/.local/bin/kubectl" --kubeconfig "$state/kubeconfig" "$@"; }

# Starts one component from its saved command line (state/<name>.cmd), logging to state/<name>.log.
start_component() {
  local name=$1
  # shellcheck disable=SC2046
  setsid $(cat "$state/$name.cmd") >>"$state/$name.log" 2>&1 < /dev/null &
  echo $! >"$state/$name.pid"
}

stop_component() {
  local name=$1 pid
  pid_alive "$name" || { rm -f "$state/$name.pid"; return 0; }
  pid=$(cat "$state/$name.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$state/$name.pid"
}

# wait_url NAME URL: poll until URL answers "ok", or fail pointing at NAME's log.
wait_url() {
  local name=$1 url=$2 deadline=$((SECONDS + READY_TIMEOUT)) out
  while :; do
    pid_alive "$name" || die "$name exited during start-up; see $state/$name.log"$'\n'"$(tail -5 "$state/$name.log")"
    out=$(curl -fsS --max-time 2 --cacert "$state/pki/ca.crt" -H "Authorization: Bearer $(cat "$state/admin.token")" "$url" 2>/dev/null || true)
    [[ "$out" == ok* ]] && return 0
    (( SECONDS < deadline )) || die "$name not ready after ${READY_TIMEOUT}s ($url); see $state/$name.log"
    sleep 0.1
  done
}

wait_etcd() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  until curl -fsS --max-time 2 "http://127.0.0.1:$(cat "$state/etcd.port")/health" 2>/dev/null | grep -q '"health":"true"'; do
    pid_alive etcd || die "etcd exited during start-up; see $state/etcd.log"
    (( SECONDS < deadline )) || die "etcd not healthy after ${READY_TIMEOUT}s; see $state/etcd.log"
    sleep 0.1
  done
}

wait_component() {
  case $1 in
    etcd) wait_etcd ;;
    kube-apiserver) wait_url kube-apiserver "https://127.0.0.1:$(cat "$state/apiserver.port")/readyz" ;;
    kube-controller-manager) wait_url kube-controller-manager "https://127.0.0.1:$(cat "$state/kcm.port")/healthz" ;;
  esac
}

make_pki() {
  local pki=$1
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=taskaction-local-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >"$pki/ext.cnf"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/ext.cnf" -out "$pki/apiserver.crt" 2>/dev/null
  # One RSA key serves both service-account flags (signing and verification).
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
}

write_kubeconfig() {
  local file=$1 token=$2
  cat >"$file" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: taskaction-local
  cluster:
    server: https://127.0.0.1:$(cat "$state/apiserver.port")
    certificate-authority-data: $(base64 -w0 <"$state/pki/ca.crt")
users:
- name: taskaction-local-admin
  user:
    token: $token
contexts:
- name: taskaction-local
  context: {cluster: taskaction-local, user: taskaction-local-admin, namespace: default}
current-context: taskaction-local
KCFG
  chmod 600 "$file"
}

up() {
  local all=1 c
  for c in "${components[@]}"; do pid_alive "$c" || all=0; done
  if (( all )) && [[ -f "$state/kubeconfig" ]]; then echo "$state/kubeconfig"; return 0; fi
  [[ -d "$state" ]] && down_quiet
  local bin_dir start tmp token
  bin_dir=$(bash "$here/build.sh")
  start=$(date +%s.%N)
  mkdir -p "$state" "$root/.local/bin"
  for c in etcd kube-apiserver kube-controller-manager kubectl; do ln -sfn "$bin_dir/$c" "$root/.local/bin/$c"; done
  tmp=$(mktemp -d /tmp/taskaction-cluster.XXXXXX); echo "$tmp" >"$state/tmpdir"
  make_pki "$state/pki"
  token=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
  echo "$token" >"$state/admin.token"; chmod 600 "$state/admin.token"
  echo "$token,admin,admin-uid,system:masters" >"$state/tokens.csv"
  free_port >"$state/etcd.port"; free_port >"$state/etcd-peer.port"
  free_port >"$state/apiserver.port"; free_port >"$state/kcm.port"
  local ep; ep=$(cat "$state/etcd.port")
  echo "$bin_dir/etcd --name taskaction-local --data-dir $tmp/etcd \
    --listen-client-urls http://127.0.0.1:$ep --advertise-client-urls http://127.0.0.1:$ep \
    --listen-peer-urls http://127.0.0.1:$(cat "$state/etcd-peer.port") \
    --initial-advertise-peer-urls http://127.0.0.1:$(cat "$state/etcd-peer.port") \
    --initial-cluster taskaction-local=http://127.0.0.1:$(cat "$state/etcd-peer.port") \
    --unsafe-no-fsync --log-level warn" >"$state/etcd.cmd"
  echo "$bin_dir/kube-apiserver --etcd-servers http://127.0.0.1:$ep \
    --bind-address 127.0.0.1 --secure-port $(cat "$state/apiserver.port") \
    --tls-cert-file $state/pki/apiserver.crt --tls-private-key-file $state/pki/apiserver.key \
    --client-ca-file $state/pki/ca.crt --token-auth-file $state/tokens.csv \
    --authorization-mode RBAC --anonymous-auth=false \
    --service-account-key-file $state/pki/sa.key --service-account-signing-key-file $state/pki/sa.key \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.96.0.0/24 --enable-priority-and-fairness=false \
    --max-requests-inflight 2000 --max-mutating-requests-inflight 1000 \
    --event-ttl 1h --v 1" >"$state/kube-apiserver.cmd"
  write_kubeconfig "$state/kubeconfig" "$token"
  echo "$bin_dir/kube-controller-manager --kubeconfig $state/kubeconfig \
    --authentication-kubeconfig $state/kubeconfig --authorization-kubeconfig $state/kubeconfig \
    --bind-address 127.0.0.1 --secure-port $(cat "$state/kcm.port") \
    --tls-cert-file $state/pki/apiserver.crt --tls-private-key-file $state/pki/apiserver.key \
    --controllers garbagecollector,namespace,serviceaccount-token,serviceaccount \
    --service-account-private-key-file $state/pki/sa.key --root-ca-file $state/pki/ca.crt \
    --leader-elect=false --concurrent-gc-syncs 50 --kube-api-qps 500 --kube-api-burst 1000 \
    --v 1" >"$state/kube-controller-manager.cmd"
  start_component etcd; wait_etcd
  start_component kube-apiserver; wait_component kube-apiserver
  # CRDs before the controller manager: its garbage collector learns new types only at its 30 s
  # discovery resync otherwise.
  kubectl_ apply -f "$root/crds/" >/dev/null
  kubectl_ wait --for condition=Established --timeout 30s crd --all >/dev/null
  start_component kube-controller-manager; wait_component kube-controller-manager
  log "ready in $(python3 -c "import time; print(round(time.time() - $start, 1))") s"
  echo "$state/kubeconfig"
}

down_quiet() {
  local c
  for c in kube-controller-manager kube-apiserver etcd; do stop_component "$c"; done
  if [[ -f "$state/tmpdir" ]]; then rm -rf "$(cat "$state/tmpdir")"; fi
  rm -rf "$state"
}

status() {
  local c rc=0
  for c in "${components[@]}"; do
    if pid_alive "$c"; then echo "$c: running (pid $(cat "$state/$c.pid"), log $state/$c.log)"
    else echo "$c: not running"; rc=1; fi
  done
  [[ -f "$state/kubeconfig" ]] && echo "kubeconfig: $state/kubeconfig"
  return $rc
}

check_component() {
  case ${1:-} in etcd|kube-apiserver|kube-controller-manager) ;; *) die "unknown component '${1:-}'" ;; esac
  [[ -f "$state/$1.cmd" ]] || die "the cluster is not up (run: cluster.sh up)"
}

case ${1:-status} in
  up) up ;;
  down) down_quiet; log "stopped and removed" ;;
  status) status ;;
  stop) check_component "${2:-}"; stop_component "$2" ;;
  start) check_component "${2:-}"; pid_alive "$2" || { start_component "$2"; wait_component "$2"; } ;;
  restart) check_component "${2:-}"; stop_component "$2"; start_component "$2"; wait_component "$2" ;;
  *) die "usage: cluster.sh up|down|status|stop C|start C|restart C" ;;
esac
