"""Print the pinned runtime closure of the project, ``name==version`` a line, from an environment.

``pip freeze`` of the development virtualenv also holds the dev tools (pytest, ruff, mypy,
import-linter) and their dependencies, none of which belong in the image. This walks the
project's declared runtime requirements (with extras, evaluating markers for this interpreter)
through the installed distributions' metadata and keeps only what is reachable, at the versions
``pip freeze`` reports. Run with the virtualenv's interpreter; ``hack/image/lock.sh`` does.
"""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "taskaction-operator"


def runtime_closure(root: str = PROJECT) -> set[str]:
    """Canonical names of every distribution the project needs at run time (itself excluded)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    stack: list[tuple[str, frozenset[str]]] = [(canonicalize_name(root), frozenset())]
    while stack:
        name, extras = stack.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        names.add(name)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            sys.exit(f"lock.py: {name} is required but not installed; run `make venv` first")
        for spec in dist.requires or []:
            req = Requirement(spec)
            envs = [{"extra": e} for e in (extras or {""})]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            stack.append((canonicalize_name(req.name), frozenset(req.extras)))
    names.discard(canonicalize_name(root))
    return names


def main() -> None:
    keep = runtime_closure()
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--all"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    pins = {}
    for line in frozen:
        if "==" not in line:
            continue
        name, version = line.split("==", 1)
        if canonicalize_name(name) in keep:
            pins[canonicalize_name(name)] = f"{name}=={version}"
    missing = keep - pins.keys()
    if missing:
        sys.exit(f"lock.py: not pinned by pip freeze (editable or direct URL?): {sorted(missing)}")
    for key in sorted(pins):
        print(pins[key])


if __name__ == "__main__":
    main()
