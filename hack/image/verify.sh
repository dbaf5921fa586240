#!/usr/bin/env bash
# Proves the Dockerfile's recipe without a Docker engine: copies exactly the build context the
# Dockerfile uses, runs the same two scripts its stages run (build-wheel.sh, install.sh) into a
# throwaway virtualenv, then starts the installed console script the way the image does: clean
# environment, PYTHONDONTWRITEBYTECODE=1, outside the source tree, and checks that it wrote nothing
# into the installed tree (the image's root filesystem is read-only).
#   [PYTHON=python3.11] hack/image/verify.sh [--keep]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-python3.11}
keep=0
[[ "${1:-}" == "--keep" ]] && keep=1

die() { printf 'verify.sh: %s\n' "$*" >&2; exit 1; }
log() { printf 'verify.sh: %s\n' "$*" >&2; }

command -v "$py" >/dev/null || die "$py not found; the image runs Python 3.11 (set PYTHON=...)"
[[ "$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" == 3.11 ]] || die "$py is not Python 3.11"

tmp=$(mktemp -d /tmp/taskaction-image-verify.XXXXXX)
if (( keep )); then log "keeping $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# The build context: what the Dockerfile COPYs and bind-mounts (.dockerignore is an allow-list of
# the same paths; caches excluded).
mkdir -p "$tmp/src"
tar -C "$root" --exclude=__pycache__ --exclude='*.pyc' -cf - \
  pyproject.toml README.md crds taskaction_operator hack/image | tar -C "$tmp/src" -xf -

log "build stage: wheel"
PYTHON="$py" sh "$tmp/src/hack/image/build-wheel.sh" "$tmp/src" "$tmp/wheels" >"$tmp/build.log" 2>&1 \
  || die "build-wheel.sh failed:"$'\n'"$(tail -20 "$tmp/build.log")"
log "runtime stage: install with the lock"
PYTHON="$py" sh "$tmp/src/hack/image/install.sh" "$tmp/venv" "$tmp/wheels" "$tmp/src/hack/image/requirements.lock" \
  >"$tmp/install.log" 2>&1 || die "install.sh failed:"$'\n'"$(tail -20 "$tmp/install.log")"

# Run as the image does: only the venv on PATH, no inherited settings, not from the source tree.
mkdir -p "$tmp/home" "$tmp/run"
touch "$tmp/installed.stamp"
sleep 1
run() { (cd "$tmp/run" && env -i PATH="$tmp/venv/bin:/usr/bin:/bin" PYTHONDONTWRITEBYTECODE=1 HOME="$tmp/home" "$@"); }
run python - <<'PY' || die "the installed package is incomplete"
import importlib.resources as r
import taskaction_operator as p
assert "/venv/" in p.__file__, p.__file__
pkg = r.files("taskaction_operator")
for need in ("_crds/taskactions.flyte.org.yaml", "repo/migrations/env.py", "repo/migrations/script.py.mako"):
    assert pkg.joinpath(need).is_file(), f"missing from the wheel: {need}"
PY
run taskaction-operator --help >"$tmp/help.txt" 2>&1 || die "taskaction-operator --help failed:"$'\n'"$(tail -20 "$tmp/help.txt")"
written=$(find "$tmp/venv" -newer "$tmp/installed.stamp" -print | head -5)
[[ -z "$written" ]] || die "starting the operator wrote into the installed tree (read-only in the image):"$'\n'"$written"
log "ok: $(ls "$tmp/wheels"), $(grep -c '==' "$tmp/src/hack/image/requirements.lock") pinned dependencies, 'taskaction-operator --help' runs"
head -3 "$tmp/help.txt"
