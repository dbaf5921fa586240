#!/usr/bin/env bash
# An OCI runtime for hosts that withhold capabilities (see docker.sh): removes the capabilities named
# in RUNC_DROP_CAPS (comma-separated, CAP_X) from the spec runc is about to apply (the bundle's
# config.json for create/run, the --process file for exec), then execs the real runc with the same
# arguments. Everything else passes through untouched.
set -euo pipefail
real_runc=${REAL_RUNC:-$(command -v runc)}
drop=${RUNC_DROP_CAPS:-}

# jq program: delete the withheld names from every capability list of a process object at PATH.
filter() {
  local path=$1
  # shellcheck disable=SC2016 # $drop is jq's variable, not the shell's
  printf '(%s | select(. != null) | .capabilities) |= (if . == null then . else with_entries(.value |= (if type == "array" then map(select(IN($drop[]) | not)) else . end)) end)' "$path"
}

rewrite() {
  local file=$1 path=$2 tmp
  [[ -f "$file" ]] || return 0
  tmp=$(mktemp "$file.XXXXXX")
  jq --argjson drop "$(jq -cn --arg s "$drop" '$s | split(",")')" "$(filter "$path")" "$file" >"$tmp"
  chmod --reference="$file" "$tmp"
  mv "$tmp" "$file"
}

if [[ -n "$drop" ]]; then
  cmd="" bundle="." process=""
  args=("$@")
  for ((i = 0; i < ${#args[@]}; i++)); do
    a=${args[$i]}
    case $a in
      --bundle | -b) bundle=${args[$((i + 1))]} ;;
      --bundle=*) bundle=${a#--bundle=} ;;
      --process | -p) process=${args[$((i + 1))]} ;;
      --process=*) process=${a#--process=} ;;
      create | run | exec) [[ -z "$cmd" ]] && cmd=$a ;;
    esac
  done
  case $cmd in
    create | run) rewrite "$bundle/config.json" .process ;;
    exec) [[ -n "$process" ]] && rewrite "$process" . ;;
  esac
fi
exec "$real_runc" "$@"
