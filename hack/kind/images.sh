#!/usr/bin/env bash
# The images the kind overlay runs, built into the local engine:
#   taskaction-operator:dev   from the project's Dockerfile (legacy builder: no buildx here)
#   and, offline only (--offline), the bases no registry serves us:
#   taskaction.local/python:3.11-bookworm    Debian's Python 3.11, passed as PYTHON_IMAGE
#   taskaction.local/postgres:15-bookworm    Debian's PostgreSQL 15 (images/postgres), the image
#                                            manifests/overlays/kind-offline puts in place of postgres:15
#   hack/kind/images.sh [--offline]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=hack/kind/versions.sh
source "$here/versions.sh"
log() { printf 'kind/images.sh: %s\n' "$*" >&2; }
export DOCKER_BUILDKIT=0
offline=0
[[ ${1:-} == --offline ]] && offline=1

build_args=()
if (( offline )); then
  debian=$(bash "$here/debian-base.sh")
  for name in python postgres; do
    tag=$([[ $name == python ]] && echo 3.11 || echo 15)
    ref="taskaction.local/$name:$tag-$DEBIAN_SUITE"
    # Rebuilt when its recipe (the directory) changed: the image carries the recipe's hash.
    recipe=$(cat "$here/images/$name/"* | sha256sum | cut -c1-12)
    have=$(docker image inspect -f '{{index .Config.Labels "taskaction.recipe"}}' "$ref" 2>/dev/null || true)
    if [[ "$have" != "$recipe" ]]; then
      log "building $ref from Debian's packages"
      ctx=$(mktemp -d)
      cp -r "$here/images/$name/." "$ctx/"
      mkdir -p "$ctx/ca-certs"
      cp /usr/local/share/ca-certificates/*.crt "$ctx/ca-certs/" 2>/dev/null || true
      docker build -q -t "$ref" --label "taskaction.recipe=$recipe" --build-arg "DEBIAN_BASE_IMAGE=$debian" "$ctx" >/dev/null
      rm -rf "$ctx"
    fi
  done
  build_args=(--build-arg "PYTHON_IMAGE=taskaction.local/python:3.11-$DEBIAN_SUITE")
fi
log "building taskaction-operator:dev from the Dockerfile"
start=$SECONDS
docker build -q -t taskaction-operator:dev "${build_args[@]}" "$root" >/dev/null
log "taskaction-operator:dev built in $((SECONDS - start)) s"
