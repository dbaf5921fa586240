#!/usr/bin/env bash
# A Docker engine for the kind path: a running one is used as it is and never touched; otherwise
# (as root) Debian's docker.io is installed when missing and dockerd is started in the background,
# its log and pid under .local/docker/.
#
# Hosts whose capability bounding set lacks capabilities the kernel has (a sandbox that withholds
# CAP_SYS_RESOURCE, say) cannot start privileged containers: runc fails to apply the capability set
# that `--privileged` asks for. There, and only there, dockerd runs with a runtime wrapper
# (runc-drop-caps.sh) that removes exactly the withheld capabilities from each container's OCI spec
# before calling Debian's runc. On a host that allows every capability nothing is wrapped.
#   hack/kind/docker.sh up       ensure an engine answers `docker info`
#   hack/kind/docker.sh down     stop the engine this script started (never another one)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=hack/kind/versions.sh
source "$here/versions.sh"
state="$root/.local/docker"

die() { printf 'kind/docker.sh: %s\n' "$*" >&2; exit 1; }
log() { printf 'kind/docker.sh: %s\n' "$*" >&2; }

# The capabilities the kernel knows that our bounding set lacks, as runc names them (CAP_X).
withheld_caps() {
  local last bnd i names
  last=$(cat /proc/sys/kernel/cap_last_cap)
  bnd=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
  names=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
    LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE
    SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME
    SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG
    WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE)
  for ((i = 0; i <= last && i < ${#names[@]}; i++)); do
    (( (bnd >> i) & 1 )) || printf 'CAP_%s\n' "${names[$i]}"
  done
}

install_engine() {
  [[ $EUID -eq 0 ]] || die "no Docker engine answers and dockerd is missing; install Debian's docker.io (needs root)"
  log "installing Docker from Debian's packages: ${DEBIAN_DOCKER_PACKAGES[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${DEBIAN_DOCKER_PACKAGES[@]}" >/dev/null
}

up() {
  if docker info >/dev/null 2>&1; then
    log "using the running Docker engine"
    return
  fi
  if ! command -v dockerd >/dev/null || ! command -v jq >/dev/null; then install_engine; fi
  [[ $EUID -eq 0 ]] || die "no Docker engine answers; starting dockerd needs root"
  mkdir -p "$state"
  local args=(--host unix:///var/run/docker.sock --pidfile "$state/dockerd.pid")
  local caps
  caps=$(withheld_caps | paste -sd, -)
  if [[ -n "$caps" ]]; then
    log "this host withholds $caps from its capability bounding set: privileged containers run through runc-drop-caps.sh"
    local wrapper="$state/runc-drop-caps"
    # dockerd passes a runtime no arguments of ours: the withheld set is baked into a small launcher.
    printf '#!/bin/sh\nexport RUNC_DROP_CAPS=%s\nexec %s "$@"\n' "$caps" "$here/runc-drop-caps.sh" >"$wrapper"
    chmod +x "$wrapper"
    args+=(--add-runtime "taskaction-runc=$wrapper" --default-runtime taskaction-runc)
  fi
  log "starting dockerd (log: $state/dockerd.log)"
  nohup dockerd "${args[@]}" >"$state/dockerd.log" 2>&1 &
  echo $! >"$state/started-by-us"
  local deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    (( SECONDS < deadline )) || { tail -n 20 "$state/dockerd.log" >&2; die "dockerd did not answer within 60 s"; }
    sleep 0.5
  done
  log "Docker engine ready ($(docker version --format '{{.Server.Version}}'))"
}

down() {
  [[ -f "$state/started-by-us" ]] || { log "no engine started by this script"; return; }
  local pid
  pid=$(cat "$state/started-by-us")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  rm -f "$state/started-by-us"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: hack/kind/docker.sh up|down" >&2; exit 2 ;;
esac
