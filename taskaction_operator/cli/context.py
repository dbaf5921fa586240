"""Where the command line's defaults come from, and the connections it opens on demand.

Precedence, highest first (documented in ``taskaction-operator --help``):

* project / domain: ``--project``/``--domain``, ``TASKACTION_PROJECT``/``TASKACTION_DOMAIN``, the
  config file's ``project:``/``domain:``.
* namespace of the TaskActions: ``-n/--namespace``, ``TASKACTION_NAMESPACE``, the config file's
  ``namespace:``, else ``flyte`` (upstream's ``actions.kubernetes.namespace`` default).
* database: ``--database-url``, ``TASKACTION_DATABASE_URL``, the config file's ``database_url:``,
  else ``.local/db/dsn`` of the repository checkout the command runs in (development).
* kubeconfig: ``--kubeconfig``, ``KUBECONFIG``, ``~/.kube/config``, in-cluster.
* Flyte's API instead of the database, for the commands that read, watch and abort (those whose
  option groups include ``api``): ``--server URL``, ``TASKACTION_SERVER``, the config file's
  ``server:``; the caller's bearer token comes from the kubeconfig. Other commands refuse
  ``--server`` and ignore the variable and the key (they work on the database or the cluster).

The config file is ``$TASKACTION_CONFIG``, else ``$XDG_CONFIG_HOME/taskaction/config.yaml``
(``~/.config/taskaction/config.yaml``): a YAML mapping with any of ``project``, ``domain``,
``namespace``, ``database_url``, ``server``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from taskaction_operator.cli.errors import CommandFailed, UsageError
from taskaction_operator.client.names import (
    InvalidActionError,
    validate_action_name,
    validate_run_name,
    validate_scope,
)
from taskaction_operator.model.identifiers import ActionId, RunId

if TYPE_CHECKING:  # imported when first used: commands that need no cluster never load its client
    from taskaction_operator.cli.records import Records
    from taskaction_operator.client.actions_client import ActionsClient
    from taskaction_operator.client.run_api import RunApi
    from taskaction_operator.k8s import KubeOps
    from taskaction_operator.repo import ActionRepo

__all__ = ["CommandFailed", "Context", "UsageError", "checkout_dsn", "env_with", "load_config"]

DEFAULT_NAMESPACE = "flyte"
CONFIG_KEYS = frozenset({"project", "domain", "namespace", "database_url", "server"})


def config_path(env: Mapping[str, str]) -> Path:
    if env.get("TASKACTION_CONFIG"):
        return Path(env["TASKACTION_CONFIG"])
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "taskaction" / "config.yaml"


def load_config(env: Mapping[str, str]) -> dict[str, str]:
    """The config file's settings; {} when it does not exist. UsageError when it is malformed."""
    path = config_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"config file {path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise UsageError(f"config file {path}: not valid YAML") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path}: expected a mapping of {', '.join(sorted(CONFIG_KEYS))}")
    unknown = sorted(str(k) for k in data if k not in CONFIG_KEYS)
    if unknown:
        raise UsageError(
            f"config file {path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(CONFIG_KEYS))})"
        )
    return {str(k): str(v) for k, v in data.items() if v is not None}


def checkout_dsn(start: Path | None = None) -> str:
    """The DSN ``hack/db/db.sh up`` wrote, when run inside this repository's checkout; else ""."""
    candidates = [
        *(p for p in [(start or Path.cwd()), *(start or Path.cwd()).parents]),
        Path(__file__).resolve().parents[2],
    ]
    for root in candidates:
        dsn = root / ".local" / "db" / "dsn"
        if dsn.is_file() and (root / "pyproject.toml").is_file():
            try:
                return dsn.read_text(encoding="utf-8").strip()
            except OSError:
                return ""
    return ""


@dataclass
class Context:
    """Resolved options plus lazily opened connections; close with :meth:`aclose`."""

    args: argparse.Namespace
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _config: dict[str, str] | None = None
    _repo: ActionRepo | None = None
    _kube: KubeOps | None = None
    _records: Records | None = None
    _api: RunApi | None = None
    #: Why :meth:`bearer_token` found none ("" when it found one).
    token_problem: str = ""

    @property
    def config(self) -> dict[str, str]:
        if self._config is None:
            self._config = load_config(self.env)
        return self._config

    def _opt(self, attr: str, env_var: str, key: str) -> str:
        value = getattr(self.args, attr, None) or self.env.get(env_var) or self.config.get(key) or ""
        return str(value)

    # --- identity ------------------------------------------------------------------------------
    @property
    def project(self) -> str:
        return self._opt("project", "TASKACTION_PROJECT", "project")

    @property
    def domain(self) -> str:
        return self._opt("domain", "TASKACTION_DOMAIN", "domain")

    @property
    def namespace(self) -> str:
        return self._opt("namespace", "TASKACTION_NAMESPACE", "namespace") or DEFAULT_NAMESPACE

    def run_id(self, run: str) -> RunId:
        """The run named on the command line in the current project and domain (validated)."""
        project, domain = self.project, self.domain
        if not project:
            raise UsageError(
                "no project: pass --project, set TASKACTION_PROJECT, or add project: to the config file"
            )
        if not domain:
            raise UsageError(
                "no domain: pass --domain, set TASKACTION_DOMAIN, or add domain: to the config file"
            )
        self.check_scope()
        try:
            validate_run_name(run)
        except InvalidActionError as exc:
            raise UsageError(str(exc)) from None
        return RunId(project, domain, run)

    def check_scope(self) -> None:
        """The project and domain, where given, are valid names (empty: every one)."""
        try:
            for what, value in (("project", self.project), ("domain", self.domain)):
                if value:
                    validate_scope(what, value)
        except InvalidActionError as exc:
            raise UsageError(str(exc)) from None

    def action_id(self, run: str, action: str) -> ActionId:
        run_id = self.run_id(run)
        try:
            validate_action_name(run, action)
        except InvalidActionError as exc:
            raise UsageError(str(exc)) from None
        return ActionId(run_id, action)

    @property
    def server(self) -> str:
        """The RunService to read and abort through (``--server``, ``TASKACTION_SERVER``, the config
        file's ``server:``), for the commands that can; "" for the database."""
        if "api" not in frozenset(getattr(self.args, "uses", ())):
            return ""
        return self._opt("server", "TASKACTION_SERVER", "server")

    # --- checked before anything heavy ----------------------------------------------------------
    def preflight(self) -> None:
        """Every name and setting the command will use, checked before its module is imported or
        anything is contacted (UsageError): the run and action named, the DSN's scheme, and options
        that only matter with another one."""
        a, uses = self.args, frozenset(getattr(self.args, "uses", ()))
        if self.server:
            _check_server(self.server, insecure=bool(getattr(a, "insecure", False)))
            if getattr(a, "database_url", None):
                raise UsageError(
                    f"--database-url has no effect with --server: the server reads the database "
                    f"(see '{a.command_prog} --help')"
                )
        elif "db" in uses:
            dsn = self._dsn()
            if dsn:
                _check_dsn(dsn)
        if "api" in uses and not self.server:
            if getattr(a, "insecure", False):
                raise UsageError(f"--insecure has no effect without --server (see '{a.command_prog} --help')")
            if "kube" not in uses and getattr(a, "kubeconfig", None):
                raise UsageError(
                    f"--kubeconfig has no effect on '{a.command_prog.removeprefix('taskaction-operator ')}' "
                    f"without --server: it reads the database (see '{a.command_prog} --help')"
                )
        if getattr(a, "run", None) is not None:
            if getattr(a, "action", None):
                self.action_id(a.run, a.action)
            else:
                self.run_id(a.run)
        if a.command == "prune":
            self.check_scope()
        if a.command == "enqueue" and a.dry_run and a.wait:
            raise UsageError(f"--wait has nothing to wait for with --dry-run (see '{a.command_prog} --help')")
        if hasattr(a, "wait") and not a.wait and a.command == "abort":
            kube_options = (("-n", "namespace"),) + (() if self.server else (("--kubeconfig", "kubeconfig"),))
            given = [flag for flag, dest in kube_options if getattr(a, dest, None)]
            if given:
                raise UsageError(
                    f"{'/'.join(given)} has no effect on 'abort' without --wait: the request is recorded "
                    f"in the database (see '{a.command_prog} --help')"
                )

    # --- connections ---------------------------------------------------------------------------
    def _dsn(self) -> str:
        return self._opt("database_url", "TASKACTION_DATABASE_URL", "database_url") or checkout_dsn()

    @property
    def database_url(self) -> str:
        dsn = self._dsn()
        if not dsn:
            raise UsageError("no database: pass --database-url or set TASKACTION_DATABASE_URL")
        _check_dsn(dsn)
        return dsn

    async def repo(self) -> ActionRepo:
        if self._repo is None:
            from taskaction_operator.repo import ActionRepo

            self._repo = await ActionRepo.connect(self.database_url, pool_size=2, max_overflow=2)
        return self._repo

    async def records(self) -> Records:
        """The record: through the RunService at :attr:`server` with the kubeconfig's bearer token,
        else the database."""
        if self._records is None:
            if self.server:
                from taskaction_operator.cli.api_records import ApiRecords
                from taskaction_operator.client.run_api import RunApi

                self._api = RunApi(self.server, self.bearer_token())
                self._records = ApiRecords(self._api, self.token_problem)
            else:
                from taskaction_operator.cli.records import RepoRecords

                self._records = RepoRecords(await self.repo())
        return self._records

    def bearer_token(self) -> str | None:
        """The kubeconfig user's bearer token; None for a user without one, or when the kubeconfig
        was not named with ``--kubeconfig`` and does not load (a server with ``--auth none`` needs no
        token; one with ``--auth kubernetes`` then answers unauthenticated, and :attr:`token_problem`
        says why there was none)."""
        from taskaction_operator.k8s import bearer_token

        kubeconfig = getattr(self.args, "kubeconfig", None) or None
        try:
            token = bearer_token(kubeconfig)
        except Exception as exc:  # the kubernetes config loader raises several unrelated types
            if kubeconfig:
                raise CommandFailed(f"cannot load kubeconfig {kubeconfig}: {exc}") from None
            self.token_problem = f"no kubeconfig loaded: {exc}"
            return None
        if token is None:
            self.token_problem = (
                "the kubeconfig's user has no bearer token (client certificates are not sent)"
            )
        return token

    def kube(self) -> KubeOps:
        if self._kube is None:
            from taskaction_operator.k8s import KubeOps

            kubeconfig = getattr(self.args, "kubeconfig", None) or None
            try:
                self._kube = KubeOps.from_kubeconfig(kubeconfig)
            except Exception as exc:  # the kubernetes config loader raises several unrelated types
                raise CommandFailed(f"cannot load kubeconfig: {exc}") from None
        return self._kube

    def actions_client(self) -> ActionsClient:
        from taskaction_operator.client.actions_client import ActionsClient

        return ActionsClient(self.kube(), self.namespace)

    async def aclose(self) -> None:
        self._records = None
        if self._api is not None:
            await self._api.close()
            self._api = None
        if self._repo is not None:
            await self._repo.close()
            self._repo = None
        if self._kube is not None:
            self._kube.close()
            self._kube = None


def _check_dsn(dsn: str) -> None:
    if not dsn.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        raise UsageError("the database URL must be a postgresql:// DSN")


def _check_server(url: str, *, insecure: bool) -> None:
    """An ``http(s)://host[:port]`` URL; ``http://`` (the bearer token in the clear) only to a loopback
    address or with ``--insecure``."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(f"--server {url!r}: expected http(s)://HOST[:PORT]")
    if parsed.scheme == "http" and not insecure and not _loopback(parsed.hostname):
        raise UsageError(
            f"--server {url}: http:// would send the Kubernetes token in the clear; use https:// "
            "or pass --insecure"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def env_with(overrides: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: the process environment) with the non-empty ``overrides`` applied."""
    out = dict(os.environ if env is None else env)
    out.update({k: str(v) for k, v in overrides.items() if v not in (None, "")})
    return out
