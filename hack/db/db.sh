#!/usr/bin/env bash
# A throwaway PostgreSQL for tests, benchmarks and the demo.
#   db.sh up      initdb into a temporary directory, start on a free loopback port, write the DSN
#                 to .local/db/dsn and print it (reuses a server that is already running)
#   db.sh down    stop the server and remove its data
#   db.sh stop    stop the server, keep its data and port (fault tests)
#   db.sh start   start a stopped server again on the same port
#   db.sh status  say whether it runs
# Uses Debian's PostgreSQL binaries (installed through apt-get when missing). The server refuses to
# run as root, so as root it runs as the unprivileged `postgres` user.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state="$root/.local/db"
mkdir -p "$state"

die() { printf 'db.sh: %s\n' "$*" >&2; exit 1; }

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" ]] && { echo "$d"; return 0; }
  done
  return 1
}

ensure_binaries() {
  if ! bindir=$(pg_bindir); then
    [[ $EUID -eq 0 ]] || die "PostgreSQL server binaries are missing; install Debian's 'postgresql' package"
    echo "db.sh: installing PostgreSQL from Debian's packages" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bindir=$(pg_bindir) || die "PostgreSQL binaries still missing after apt-get install"
  fi
}

as_pg() {
  if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

running() {
  [[ -f "$state/datadir" ]] || return 1
  local d; d=$(cat "$state/datadir")
  [[ -f "$d/postmaster.pid" ]] && kill -0 "$(head -1 "$d/postmaster.pid")" 2>/dev/null
}

wait_ready() {
  local port=$1 deadline=$((SECONDS + 30))
  until "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; do
    (( SECONDS < deadline )) || die "PostgreSQL did not accept connections within 30 s; see $state/postgres.log"
    sleep 0.1
  done
}

start_server() {
  local d port log
  d=$(cat "$state/datadir"); port=$(cat "$state/port")
  # The log lives beside the data, where the postgres user may write, whoever may enter this
  # checkout (a clone under a private directory); .local/db/postgres.log points at it.
  log="$(cat "$state/tmpdir")/postgres.log"
  : >"$log"; chmod 666 "$log"; ln -sfn "$log" "$state/postgres.log"
  as_pg "$bindir/pg_ctl" -D "$d" -l "$log" -w -t 30 -o "-p $port -k $d" start >/dev/null \
    || die "PostgreSQL failed to start; see $state/postgres.log"
  wait_ready "$port"
}

cmd=${1:-status}
case "$cmd" in
  up)
    ensure_binaries
    if running; then cat "$state/dsn"; exit 0; fi
    if [[ -f "$state/datadir" && -d "$(cat "$state/datadir")" ]]; then
      start_server; cat "$state/dsn"; exit 0
    fi
    d=$(mktemp -d /tmp/taskaction-pg.XXXXXX)
    chmod 755 "$d"
    if [[ $EUID -eq 0 ]]; then chown postgres: "$d" 2>/dev/null || true; fi
    port=$(free_port)
    as_pg "$bindir/initdb" -D "$d/data" -U postgres -A trust -E UTF8 --no-sync >"$state/initdb.log" 2>&1 \
      || die "initdb failed; see $state/initdb.log"
    # A throwaway server: durability is traded for speed (no fsync), connections only on loopback.
    cat >>"$d/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 256MB
CONF
    echo "$d/data" >"$state/datadir"; echo "$port" >"$state/port"; echo "$d" >"$state/tmpdir"
    echo "postgresql://postgres@127.0.0.1:$port/taskaction" >"$state/dsn"
    start_server
    "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE taskaction" >/dev/null
    cat "$state/dsn"
    ;;
  start)
    ensure_binaries
    running || start_server
    ;;
  stop)
    ensure_binaries
    if running; then as_pg "$bindir/pg_ctl" -D "$(cat "$state/datadir")" -m fast -w stop >/dev/null; fi
    ;;
  down)
    if [[ -f "$state/datadir" ]]; then
      if running; then
        bindir=$(pg_bindir) || die "pg_ctl not found"
        as_pg "$bindir/pg_ctl" -D "$(cat "$state/datadir")" -m immediate -w stop >/dev/null || true
      fi
      [[ -f "$state/tmpdir" ]] && rm -rf "$(cat "$state/tmpdir")"
    fi
    rm -f "$state/datadir" "$state/port" "$state/dsn" "$state/tmpdir"
    echo "db.sh: stopped and removed"
    ;;
  status)
    if running; then echo "postgres: running ($(cat "$state/dsn"))"; else echo "postgres: not running"; exit 1; fi
    ;;
  *) die "usage: db.sh up|down|start|stop|status" ;;
esac
