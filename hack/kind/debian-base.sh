#!/usr/bin/env bash
# A Debian base image with no registry: `debootstrap --variant=minbase` from the Debian mirror into a
# temporary directory, imported into the engine as $DEBIAN_BASE_IMAGE. The root filesystem is also
# kept as a tarball in the cache, so a fresh engine re-imports it without debootstrapping again.
# Prints the image name.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/versions.sh
source "$here/versions.sh"
image="taskaction.local/debian:$DEBIAN_SUITE"
tarball="$TA_CACHE_DIR/debian-$DEBIAN_SUITE-minbase.tar"
log() { printf 'kind/debian-base.sh: %s\n' "$*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi
if [[ ! -s "$tarball" ]]; then
  command -v debootstrap >/dev/null || { log "debootstrap is missing (Debian package debootstrap)"; exit 1; }
  [[ $EUID -eq 0 ]] || { log "debootstrap needs root"; exit 1; }
  mkdir -p "$TA_CACHE_DIR"
  rootfs=$(mktemp -d "$TA_CACHE_DIR/debootstrap.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap $DEBIAN_SUITE from $DEBIAN_MIRROR (about 1.5 minutes)"
  debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; log "debootstrap failed"; exit 1; }
  rm -f "$rootfs.log"
  # No package caches or lists in the image; apt-get update runs where packages are installed.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi
docker import -c 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
log "imported $image"
echo "$image"
