#!/bin/sh
# Builds the project's wheel into OUT_DIR with the pinned build backend (build.lock) in a throwaway
# virtualenv and without build isolation, so nothing unpinned is fetched. The Dockerfile's build
# stage runs it, and so does verify.sh: one recipe, proven without Docker.
#   [PYTHON=python3.11] build-wheel.sh SRC_DIR OUT_DIR
set -eu
src=${1:?usage: build-wheel.sh SRC_DIR OUT_DIR}
out=${2:?usage: build-wheel.sh SRC_DIR OUT_DIR}
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"${PYTHON:-python}" -m venv "$tools"
"$tools/bin/pip" install --no-deps --only-binary=:all: -r "$src/hack/image/build.lock"
"$tools/bin/pip" wheel --no-deps --no-build-isolation --wheel-dir "$out" "$src"
