"""The install artifacts stay true to each other: the Dockerfile (static checks, hadolint, and its
recipe run for real by hack/image/verify.sh without Docker), the dependency locks, the scripts under
hack/ (shellcheck), and the kustomize sources under manifests/ (the CRD copy, the Deployment's
restricted shape, RBAC comments)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from taskaction_operator.cli.app import parse_args
from taskaction_operator.config import PREFIX, Settings
from tests.conftest import ROOT

IMAGE = ROOT / "hack" / "image"
BASE = ROOT / "manifests" / "base"
MY_SCRIPTS = [
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "hack").glob("image/*.sh")),
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "hack").glob("kind/*.sh")),
    "hack/lint-shell.sh",
]


# --- Dockerfile, statically ---------------------------------------------------------------------


def dockerfile() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments) with continuations joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, args = line.partition(" ")
        if instr.upper() == "FROM":
            stages.append([])
        stages[-1].append((instr.upper(), " ".join(args.split())))
    return stages[1:]


def _args(stage: list[tuple[str, str]], instr: str) -> list[str]:
    return [a for i, a in stage if i == instr]


def test_dockerfile_builds_a_wheel_installs_it_and_ships_only_the_virtualenv() -> None:
    build, install, runtime = dockerfile()
    assert _args(build, "FROM") == ["${PYTHON_IMAGE} AS build"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in (ROOT / "Dockerfile").read_text()
    assert _args(install, "FROM") == ["${PYTHON_IMAGE} AS install"]
    assert _args(runtime, "FROM")[0].startswith("${PYTHON_IMAGE}")
    # The stages run the very scripts hack/image/verify.sh runs, so verify.sh proves the recipe.
    assert any("hack/image/build-wheel.sh" in run for run in _args(build, "RUN"))
    (run,) = [run for run in _args(install, "RUN") if "install.sh" in run]
    assert "requirements.lock" in run
    assert "--from=build /wheels /wheels" in _args(install, "COPY")
    # The runtime stage receives the virtualenv and nothing else: no wheel, no lock, no RUN at all.
    assert _args(runtime, "COPY") == ["--from=install /opt/venv /opt/venv"]
    assert not _args(runtime, "RUN")
    verify = (IMAGE / "verify.sh").read_text()
    assert "build-wheel.sh" in verify and "install.sh" in verify and "requirements.lock" in verify


def test_dockerfile_needs_no_buildkit() -> None:
    """An engine without buildx (Debian's docker.io, the offline kind path) builds with the legacy
    builder: no RUN --mount, no COPY --chmod/--link, no syntax directive that pulls a frontend."""
    text = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax=", text, re.MULTILINE)
    for stage in dockerfile():
        for instr, args in stage:
            assert "--mount" not in args and "--chmod" not in args and "--link" not in args, (instr, args)


def test_dockerfile_runs_as_numeric_non_root_user_matching_the_deployment() -> None:
    users = _args(dockerfile()[-1], "USER")
    assert users, "the final stage sets no USER (it would run as root)"
    assert re.fullmatch(r"\d+(:\d+)?", users[-1]), f"USER {users[-1]} is not numeric"
    uid = int(users[-1].split(":")[0])
    assert uid != 0
    pod = yaml.safe_load((BASE / "deployment.yaml").read_text())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == uid


def test_dockerfile_entrypoint_runs_the_console_script() -> None:
    (entrypoint,) = _args(dockerfile()[-1], "ENTRYPOINT")
    assert json.loads(entrypoint) == ["taskaction-operator", "run"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "taskaction-operator" in scripts


def test_dockerfile_has_no_healthcheck_and_no_cmd() -> None:
    instructions = {i for stage in dockerfile() for i, _ in stage}
    assert "HEALTHCHECK" not in instructions, "Kubernetes probes do this (kopf's /healthz)"
    assert "CMD" not in instructions


def test_dockerfile_final_stage_writes_no_bytecode_and_keeps_home_in_tmp() -> None:
    runtime = dockerfile()[-1]
    env = " ".join(_args(runtime, "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "HOME=/tmp" in env
    # Never set where pip installs: it must still precompile bytecode into the (read-only) image.
    install = dockerfile()[1]
    assert not any("PYTHONDONTWRITEBYTECODE" in a for i, a in install if i == "ENV")


def test_dockerignore_admits_only_the_build_context() -> None:
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    assert patterns[0] == "*", ".dockerignore must be an allow-list"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied: set[str] = set()
    for stage in dockerfile():
        for args in _args(stage, "COPY"):
            if "--from=" not in args:
                copied.update(s.rstrip("/") for s in args.split()[:-1])
    assert copied | {"hack/image"} == allowed
    for private in (".venv", ".local", ".git", "tests"):
        assert not any(a == private or a.startswith(private + "/") for a in allowed)


def test_dockerfile_passes_hadolint() -> None:
    proc = subprocess.run(
        ["bash", str(IMAGE / "lint.sh")], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- locks --------------------------------------------------------------------------------------


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_requirements_lock_is_the_runtime_closure_of_the_venv() -> None:
    proc = subprocess.run(
        [sys.executable, str(IMAGE / "lock.py")], capture_output=True, text=True, timeout=120, check=True
    )
    fresh = {canonicalize_name(n): v for n, v in (line.split("==") for line in proc.stdout.split())}
    assert _pins(IMAGE / "requirements.lock") == fresh, "the lock is stale: run hack/image/lock.sh"
    for dev in ("pytest", "ruff", "mypy", "import-linter"):
        assert dev not in fresh


def test_the_venv_is_the_dev_lock_and_the_runtime_lock_agrees_with_it() -> None:
    """`make venv` installs hack/venv.lock with --no-deps, so a fresh clone gets this venv whatever
    was released since; the runtime closure above is then a true check, not a race with PyPI."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--disable-pip-version-check", "--exclude-editable", "--all"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    installed = {canonicalize_name(n): v for n, v in (line.split("==") for line in proc.stdout.split())}
    dev = _pins(ROOT / "hack" / "venv.lock")
    assert installed == dev, "the venv is not hack/venv.lock: run `make venv` (or `make relock`)"
    runtime = _pins(IMAGE / "requirements.lock")
    assert {n: dev.get(n) for n in runtime} == runtime, "requirements.lock and hack/venv.lock disagree"
    for tool in ("pip", "pytest", "ruff", "mypy", "import-linter"):
        assert tool in dev


def test_the_makefile_installs_the_venv_from_the_lock_only() -> None:
    recipe = (ROOT / "Makefile").read_text().split("$(VENV_STAMP): ", 1)[1].split("\n\n", 1)[0]
    installs = [line for line in recipe.splitlines() if "pip install" in line]
    assert installs and all("--no-deps" in line for line in installs), installs
    assert "pip check" in recipe


def test_build_lock_satisfies_pyproject_build_system() -> None:
    pins = _pins(IMAGE / "build.lock")
    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]:
        req = Requirement(spec)
        assert req.specifier.contains(pins[canonicalize_name(req.name)]), f"{spec}: run hack/image/lock.sh"


# --- scripts ------------------------------------------------------------------------------------


def test_image_and_kind_scripts_pass_shellcheck() -> None:
    proc = subprocess.run(
        ["bash", str(ROOT / "hack" / "lint-shell.sh"), *MY_SCRIPTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_image_recipe_installs_with_the_lock_and_starts_without_docker() -> None:
    proc = subprocess.run(
        ["bash", str(IMAGE / "verify.sh")], cwd=ROOT, capture_output=True, text=True, timeout=880, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "usage" in proc.stdout.lower()


# --- manifests ----------------------------------------------------------------------------------


def test_manifest_crd_copy_equals_crds() -> None:
    copy = BASE / "crd" / "taskactions.flyte.org.yaml"
    assert copy.read_bytes() == (ROOT / "crds" / "taskactions.flyte.org.yaml").read_bytes(), (
        "manifests/base/crd/ drifted: cp crds/taskactions.flyte.org.yaml manifests/base/crd/"
    )


def test_every_rbac_rule_says_why() -> None:
    lines = (BASE / "rbac.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("- apiGroups:"):
            assert lines[i - 1].strip().startswith("#"), (
                f"rbac.yaml:{i + 1}: a rule without a reason above it"
            )


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_base_deployment_is_restricted_probed_and_configured() -> None:
    deploy = yaml.safe_load((BASE / "deployment.yaml").read_text())
    pod = deploy["spec"]["template"]["spec"]
    c = _container(deploy)
    assert deploy["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert {"mountPath": "/tmp", "name": "tmp"} in c["volumeMounts"]
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert set(c["resources"]) == {"requests", "limits"}

    env = {e["name"]: e for e in c["env"]}
    known = {PREFIX + f.name.upper() for f in fields(Settings)}
    assert set(env) <= known, f"not settings of the operator: {set(env) - known}"
    assert env["TASKACTION_DATABASE_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "taskaction-db", "key": "url"}
    }
    assert env["TASKACTION_LEASE_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}

    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    liveness = urlsplit(env["TASKACTION_LIVENESS"]["value"])
    assert ports["healthz"] == liveness.port == 8080 and liveness.path == "/healthz"
    assert ports["metrics"] == int(env["TASKACTION_METRICS_PORT"]["value"]) == 9090
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}, probe

    service = yaml.safe_load((BASE / "service.yaml").read_text())
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pdb = yaml.safe_load((BASE / "pdb.yaml").read_text())
    assert pdb["spec"]["minAvailable"] == 1
    selector = deploy["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == pdb["spec"]["selector"]["matchLabels"] == selector


def test_the_events_deployment_serves_probed_restricted_and_with_the_api_account() -> None:
    deploy, service, _policy = yaml.safe_load_all((BASE / "events.yaml").read_text())
    resources = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    assert "events.yaml" in resources and "api-rbac.yaml" in resources
    pod = deploy["spec"]["template"]["spec"]
    c = _container(deploy)
    assert c["command"][:2] == ["taskaction-operator", "serve"]
    # Its token is for the TokenReviews and SubjectAccessReviews of --auth kubernetes only.
    assert pod["automountServiceAccountToken"] is True and pod["serviceAccountName"] == "taskaction-api"
    operator = _container(yaml.safe_load((BASE / "deployment.yaml").read_text()))
    assert c["securityContext"] == operator["securityContext"]
    assert (
        c["startupProbe"]["httpGet"]
        == c["livenessProbe"]["httpGet"]
        == {"path": "/healthz", "port": "connect"}
    )
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "connect"}
    assert service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 8090


def test_the_prune_cronjob_is_optional_restricted_and_prunes_with_the_operators_database() -> None:
    component = ROOT / "manifests" / "components" / "prune"
    kustomization = yaml.safe_load((component / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component" and kustomization["resources"] == ["cronjob.yaml"]
    base = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert kustomization["images"] == base["images"]  # the same release as the operator
    assert not any("prune" in str(r) for r in base["resources"]), "retention is opt-in, not in the base"

    cron = yaml.safe_load((component / "cronjob.yaml").read_text())
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    c = _container({"spec": job})
    assert c["command"][:2] == ["taskaction-operator", "prune"]
    parse_args(c["command"][1:])  # a command line the CLI accepts (UsageError otherwise)
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    deploy = yaml.safe_load((BASE / "deployment.yaml").read_text())
    assert pod["securityContext"] == deploy["spec"]["template"]["spec"]["securityContext"]
    assert c["securityContext"] == _container(deploy)["securityContext"]
    assert {"mountPath": "/tmp", "name": "tmp"} in c["volumeMounts"]
    (dsn,) = c["env"]
    assert dsn in _container(deploy)["env"] and dsn["name"] == "TASKACTION_DATABASE_URL"


def test_license_file_is_the_license_pyproject_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["license"]
    assert declared == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(re.findall(r"^\s+\d+\. ", text, re.M)) >= 9  # sections 1 to 9
