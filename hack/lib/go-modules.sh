# Building upstream components from their official Go modules at the pinned versions of
# hack/cluster/versions.sh; sourced by hack/cluster/build.sh and hack/kind/build.sh. Both build with
# CGO_ENABLED=0 and -trimpath, so they share one compile cache and Kubernetes compiles once.
# shellcheck shell=bash

# go_tools_module DIR MODULE VERSION PKG...: a throwaway module in DIR that requires MODULE@VERSION
# (plus the go.mod lines read from stdin) and imports each PKG under the `tools` build tag, so that
# `go build -tags tools PKG...` in DIR resolves exactly the pinned versions.
go_tools_module() {
  local dir=$1 module=$2 version=$3
  shift 3
  mkdir -p "$dir"
  { printf 'module taskaction-operator/go-tools\n\ngo 1.26\n\nrequire %s %s\n\n' "$module" "$version"; cat; } >"$dir/go.mod"
  { printf '//go:build tools\n\npackage tools\n\nimport (\n'; printf '\t_ "%s"\n' "$@"; printf ')\n'; } >"$dir/tools.go"
  (cd "$dir" && { go mod tidy -e >/dev/null 2>&1 || true; })
}

# k8s_module_download WORKDIR: downloads k8s.io/kubernetes@$K8S_VERSION once (from WORKDIR, outside
# any module) and sets K8S_MODULE_DIR (its source tree) and K8S_MODULE_GOMOD (its go.mod).
k8s_module_download() {
  local json
  json=$(cd "$1" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
  K8S_MODULE_DIR=$(sed -n 's/.*"Dir": "\(.*\)",*/\1/p' <<<"$json")
  K8S_MODULE_GOMOD=$(sed -n 's/.*"GoMod": "\(.*\)",*/\1/p' <<<"$json")
  [[ -d "$K8S_MODULE_DIR" && -f "$K8S_MODULE_GOMOD" ]] || {
    printf 'go-modules.sh: could not download k8s.io/kubernetes@%s\n' "$K8S_VERSION" >&2
    return 1
  }
}

# k8s_build DIR OUT_DIR CMD...: builds k8s.io/kubernetes/cmd/CMD for each CMD into OUT_DIR, with the
# version stamped as upstream's release builds do (kubeadm refuses a control plane newer than itself,
# and `--version` tells the truth). Every "k8s.io/x => ./staging/src/k8s.io/x" of upstream's go.mod
# becomes "k8s.io/x => k8s.io/x v0.N.M", its published tag. Needs k8s_module_download first.
k8s_build() {
  local dir=$1 out=$2 staging minor v ldflags c
  shift 2
  staging="v0.${K8S_VERSION#v1.}"
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local pkgs=()
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$K8S_MODULE_GOMOD" \
    | grep -v -e '^k8s.io/sample-' | while read -r m; do echo "replace $m => $m $staging"; done \
    | go_tools_module "$dir" k8s.io/kubernetes "$K8S_VERSION" "${pkgs[@]}"
  v=k8s.io/component-base/version
  ldflags="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor"
  ldflags+=" -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
  (cd "$dir" && go build -tags tools -trimpath -ldflags="$ldflags" -o "$out/" "${pkgs[@]}")
}

# etcd_build DIR OUT: etcd $ETCD_VERSION (its server module's root is package main) into OUT.
etcd_build() {
  local dir=$1 out=$2
  go_tools_module "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 </dev/null
  (cd "$dir" && go build -tags tools -trimpath -ldflags='-s -w' -o "$out" go.etcd.io/etcd/server/v3)
}
