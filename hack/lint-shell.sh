#!/usr/bin/env bash
# Runs shellcheck (Debian's package, installed with apt-get when missing) on every shell script under
# hack/, or on the scripts given. Every severity counts, `info` included.
#   hack/lint-shell.sh [SCRIPT...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ! command -v shellcheck >/dev/null; then
  [[ $EUID -eq 0 ]] || { echo "lint-shell.sh: shellcheck missing; install it: sudo apt-get install shellcheck" >&2; exit 1; }
  echo "lint-shell.sh: installing shellcheck from Debian" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
fi

if (( $# )); then
  scripts=("$@")
else
  mapfile -t scripts < <(cd "$root" && find hack -type f -name '*.sh' | sort)
fi
cd "$root"
shellcheck --version | sed -n 2p >&2
shellcheck --external-sources --severity=info "${scripts[@]}"
echo "lint-shell.sh: ${#scripts[@]} scripts clean" >&2
