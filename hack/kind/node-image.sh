#!/usr/bin/env bash
# A kind node image with no registry, assembled the way `kind build node-image` does internally
# (which cannot run here: it pulls pause, kindnetd and local-path images):
#   1. the node's base (node/Dockerfile): Debian bookworm, kind's files from the kind Go module,
#      the binaries of build.sh, a bridge CNI config (the kind config disables kindnetd, which the Go
#      module proxy does not serve);
#   2. the control plane's images, each binary in a minimal image tagged as kubeadm expects
#      (`kubeadm config images list`), kube-proxy's with Debian's iptables;
#   3. those images imported into the node's containerd (a container from the base, its containerd
#      started, `ctr images import`), then `docker commit`.
# The result stays in the engine, tagged by the recipe; rebuilt only when missing. Prints its name.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/kind/versions.sh
source "$here/versions.sh"
# Keyed by the recipe too: a changed script, Dockerfile or pinned version makes a new image.
recipe=$(cat "$here/node-image.sh" "$here/build.sh" "$here/versions.sh" "$here/node/"* | sha256sum | cut -c1-12)
node_image="taskaction.local/kind-node:$K8S_VERSION-$recipe"
log() { printf 'kind/node-image.sh: %s\n' "$*" >&2; }
export DOCKER_BUILDKIT=0

if docker image inspect "$node_image" >/dev/null 2>&1; then
  echo "$node_image"
  exit 0
fi
start=$SECONDS
bin=$(bash "$here/build.sh")
debian=$(bash "$here/debian-base.sh")
work=$(mktemp -d "${TMPDIR:-/tmp}/kind-node.XXXXXX")
builder=""
cleanup() {
  [[ -n "$builder" ]] && docker rm -f "$builder" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# --- 1. the base
kind_src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
[[ -d "$kind_src/images/base/files" ]] || { log "kind $KIND_VERSION source has no images/base/files"; exit 1; }
ctx="$work/base"; files="$ctx/files"
mkdir -p "$files"
cp -r "$kind_src/images/base/files/." "$files/"
rm -rf "$files/LICENSES" "$files/usr/local/bin/clean-install"
# The module cache is read-only: directories and scripts 0755, everything else 0644, as kind's COPY --chmod.
chmod -R u+w "$files"
find "$files" -type d -exec chmod 0755 {} +
find "$files" -type f -exec chmod 0644 {} +
chmod 0755 "$files"/usr/local/bin/* "$files"/kind/bin/*
mkdir -p "$files/usr/bin" "$files/usr/local/bin" "$files/etc/cni/net.d"
install -m 0755 "$bin"/{kubeadm,kubelet,kubectl} "$files/usr/bin/"
install -m 0755 "$bin"/{containerd,ctr,containerd-shim-runc-v2} "$files/usr/local/bin/"
echo "$K8S_VERSION" >"$files/kind/version"
cp "$here/node/10-bridge.conflist" "$files/etc/cni/net.d/"
# containerd's sandbox (pause) image is the one kubeadm deploys.
sed -i "s#sandbox_image = .*#sandbox_image = \"registry.k8s.io/pause:$PAUSE_VERSION\"#" "$files/etc/containerd/config.toml"
cp "$here/node/Dockerfile" "$ctx/Dockerfile"
restrict=false
# A process that may not lower its own OOM score cannot run containerd's unit as written.
if ! (echo -999 >/proc/self/oom_score_adj) 2>/dev/null; then restrict=true; fi
base_image="taskaction.local/kind-base:$K8S_VERSION"
log "building the node base $base_image (restrict_oom_score_adj=$restrict)"
docker build -q -t "$base_image" --build-arg "DEBIAN_BASE_IMAGE=$debian" \
  --build-arg "RESTRICT_OOM_SCORE_ADJ=$restrict" "$ctx" >/dev/null

# --- 2. the control plane's images, named as kubeadm will ask for them
component_image() { # NAME:TAG BINARY [FROM]
  local ref=$1 b=$2 from=${3:-scratch} c="$work/img-$2"
  mkdir -p "$c"
  install -m 0755 "$bin/$b" "$c/$b"
  {
    echo "FROM $from"
    echo "COPY $b /usr/local/bin/$b"
    echo "ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    case $b in
      coredns) echo 'ENTRYPOINT ["/usr/local/bin/coredns"]' ;;
      pause) echo 'ENTRYPOINT ["/usr/local/bin/pause"]' ;;
    esac
  } >"$c/Dockerfile"
  docker build -q -t "$ref" "$c" >/dev/null
}
proxy_base="taskaction.local/kube-proxy-base:$DEBIAN_SUITE"
if ! docker image inspect "$proxy_base" >/dev/null 2>&1; then
  mkdir -p "$work/proxy-base"
  printf 'FROM %s\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables conntrack kmod && rm -rf /var/lib/apt/lists/*\n' "$debian" >"$work/proxy-base/Dockerfile"
  docker build -q -t "$proxy_base" "$work/proxy-base" >/dev/null
fi
refs=()
etcd_tag="${ETCD_VERSION#v}-0"
while read -r ref; do
  name=${ref%:*}; name=${name##*/}
  case $name in
    kube-proxy) component_image "$ref" kube-proxy "$proxy_base" ;;
    kube-*) component_image "$ref" "$name" ;;
    coredns) component_image "$ref" coredns ;;
    pause) component_image "$ref" pause ;;
    # Our etcd is the control plane's ETCD_VERSION; the kind config points kubeadm at this tag.
    etcd) ref="${ref%:*}:$etcd_tag"; component_image "$ref" etcd ;;
    *) log "kubeadm asks for an image this script does not build: $ref"; exit 1 ;;
  esac
  refs+=("$ref")
done < <("$bin/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)
log "component images: ${refs[*]}"
docker save -o "$work/images.tar" "${refs[@]}"

# --- 3. preload them into the node's containerd
# containerd is the container's own process: `docker stop` (SIGTERM) shuts it down cleanly, with
# its metadata flushed, before the commit.
builder=$(docker run -d --privileged --entrypoint containerd -v "$work/images.tar:/images.tar:ro" "$base_image")
for _ in $(seq 1 60); do docker exec "$builder" ctr version >/dev/null 2>&1 && break; sleep 0.5; done
docker exec "$builder" ctr -n k8s.io images import --all-platforms --no-unpack /images.tar >/dev/null
docker stop -t 30 "$builder" >/dev/null
docker commit -c 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
  "$builder" "$node_image" >/dev/null
log "built $node_image in $((SECONDS - start)) s"
echo "$node_image"
