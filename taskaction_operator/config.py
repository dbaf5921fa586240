"""Operator settings: read once from ``TASKACTION_*`` environment variables, validated at start.

Every setting has a default except the database URL. A bad value stops the operator with one
readable line naming the variable (``ConfigurationError``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from taskaction_operator.crd.shards import BUCKETS

PREFIX = "TASKACTION_"


class ConfigurationError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


def _bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _namespaces(raw: str) -> tuple[str, ...]:
    items = tuple(n.strip() for n in raw.split(",") if n.strip())
    return () if items in {(), ("*",)} else items


@dataclass(frozen=True, slots=True)
class Settings:
    """The operator's settings. Field ``x_y`` is read from ``TASKACTION_X_Y``."""

    #: PostgreSQL DSN, ``postgresql://user:pass@host:port/db``. Required.
    database_url: str
    #: Namespaces to watch, comma-separated; empty or ``*`` watches the whole cluster.
    namespaces: tuple[str, ...] = ()
    #: Apply database migrations at start.
    migrate: bool = True
    #: Seconds between abort sweeps (a NOTIFY on a new abort request wakes the sweep at once).
    sweep_interval: float = 10.0
    #: Seconds between passes that release the guard of recorded TaskActions still carrying it (and,
    #: with ``delete_recorded_after``, delete the expired ones).
    guard_sweep_interval: float = 300.0
    #: Seconds between passes that record ABORTED the unfinished actions whose TaskActions vanished
    #: in a watch gap (no DELETED event seen; see ``controller/recording/vanished.py``).
    vanished_sweep_interval: float = 120.0
    #: Seconds after its end a recorded TaskAction is deleted from the cluster (its run entirely
    #: recorded; the database keeps the record); 0 keeps them all (the default).
    delete_recorded_after: float = 0.0
    #: Abort attempts before giving up on deleting a TaskAction (counted in the database).
    abort_max_attempts: int = 10
    #: Full-jitter backoff of abort retries: first ceiling and cap, in seconds.
    abort_initial_delay: float = 1.0
    abort_max_delay: float = 300.0
    #: Hold the ``flyte.org/record-guard`` finalizer on TaskActions until their end is recorded.
    record_guard: bool = True
    #: Most rows one database transaction of the recorder carries.
    batch_max: int = 500
    #: Most connections to the API server for requests (patches, Events); each watch stream holds one
    #: more. Each open TLS connection costs ~300 KB of memory; too few and patches queue under load.
    api_connections: int = 64
    #: How long a child whose parent does not exist yet keeps being retried, in seconds.
    parent_wait: float = 600.0
    #: Namespace of the sweep leader's Lease; empty: the first watched namespace, else ``default``.
    lease_namespace: str = ""
    #: Seconds a sweep leadership Lease (and a recording shard's Lease) lasts without renewal.
    lease_duration: float = 15.0
    #: Shards the runs are split into between replicas (``crd/shards.py``): each replica records
    #: the shards it holds a Lease of, and its watch sees only their TaskActions. 1: every replica
    #: records everything (idempotent HA). Set it to the number of replicas; at most 64.
    shards: int = 1
    #: kopf's liveness endpoint; an empty value disables it.
    liveness: str = "http://0.0.0.0:8080/healthz"
    #: Port of the Prometheus ``/metrics`` endpoint; 0 disables it.
    metrics_port: int = 9090
    #: ``text`` or ``json`` logs.
    log_format: str = "text"
    #: ``HOST:PORT`` where the mutating admission webhook listens (HTTPS); empty: no webhook. With it,
    #: TaskActions created without the guard or the ownerReference get them at creation, and the
    #: operator keeps a MutatingWebhookConfiguration (failurePolicy Ignore) pointing at itself.
    webhook_listen: str = ""
    #: Host of the webhook's URL as the API server calls it; empty: the listen host (0.0.0.0 and
    #: :: mean this host, 127.0.0.1 / ::1). Ignored with ``webhook_service``.
    webhook_host: str = ""
    #: ``NAMESPACE/NAME[:PORT]`` of a Service in front of the webhook (in a cluster): the API server
    #: calls the Service (port 443 unless given) instead of a URL.
    webhook_service: str = ""
    #: A directory with ``tls.crt`` and ``tls.key`` (and ``ca.crt``, else ``tls.crt`` is the CA
    #: bundle): the webhook's certificate; empty: a self-signed one made at start.
    webhook_cert_dir: str = ""
    #: Name of the MutatingWebhookConfiguration the operator keeps; empty: ``taskaction-operator``
    #: for a cluster-wide operator, else derived from its namespaces.
    webhook_configuration: str = ""
    #: Identity of this replica (sweep leadership); defaults to hostname and pid.
    identity: str = field(default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}")

    @property
    def webhook_address(self) -> tuple[str, int] | None:
        """(host, port) the webhook listens on; None when it is off."""
        return _host_port(self.webhook_listen) if self.webhook_listen else None

    @property
    def webhook_service_ref(self) -> tuple[str, str, int] | None:
        """(namespace, name, port) of the webhook's Service; None: the API server calls a URL."""
        return _service(self.webhook_service) if self.webhook_service else None

    @property
    def effective_lease_namespace(self) -> str:
        return self.lease_namespace or (self.namespaces[0] if self.namespaces else "default")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the settings; raise ConfigurationError naming the first bad variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = PREFIX + f.name.upper()
            raw = env.get(var)
            if raw is None or (raw == "" and f.name not in {"namespaces", "liveness", "lease_namespace"}):
                continue
            try:
                values[f.name] = _convert(f.name, raw)
            except ValueError as exc:
                raise ConfigurationError(f"{var}={raw!r}: {exc}") from None
        if not values.get("database_url"):
            raise ConfigurationError(f"{PREFIX}DATABASE_URL is required (a postgresql:// DSN)")
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.database_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ConfigurationError(f"{PREFIX}DATABASE_URL must be a postgresql:// DSN")
        checks = [
            (self.sweep_interval > 0, "SWEEP_INTERVAL", "must be > 0"),
            (self.guard_sweep_interval > 0, "GUARD_SWEEP_INTERVAL", "must be > 0"),
            (self.vanished_sweep_interval > 0, "VANISHED_SWEEP_INTERVAL", "must be > 0"),
            (self.delete_recorded_after >= 0, "DELETE_RECORDED_AFTER", "must be >= 0 (0: never)"),
            (self.abort_max_attempts >= 1, "ABORT_MAX_ATTEMPTS", "must be >= 1"),
            (self.abort_initial_delay > 0, "ABORT_INITIAL_DELAY", "must be > 0"),
            (self.abort_max_delay >= self.abort_initial_delay, "ABORT_MAX_DELAY", "must be >= initial"),
            (self.batch_max >= 1, "BATCH_MAX", "must be >= 1"),
            (self.api_connections >= 1, "API_CONNECTIONS", "must be >= 1"),
            (self.parent_wait >= 0, "PARENT_WAIT", "must be >= 0"),
            (self.lease_duration >= 3, "LEASE_DURATION", "must be >= 3"),
            (1 <= self.shards <= BUCKETS, "SHARDS", f"must be between 1 and {BUCKETS}"),
            (0 <= self.metrics_port <= 65535, "METRICS_PORT", "must be a port number or 0"),
            (self.log_format in {"text", "json"}, "LOG_FORMAT", "must be text or json"),
            (
                not self.webhook_listen or _host_port(self.webhook_listen) is not None,
                "WEBHOOK_LISTEN",
                "must be HOST:PORT",
            ),
            (
                not self.webhook_service or _service(self.webhook_service) is not None,
                "WEBHOOK_SERVICE",
                "must be NAMESPACE/NAME or NAMESPACE/NAME:PORT",
            ),
        ]
        for ok, name, why in checks:
            if not ok:
                raise ConfigurationError(f"{PREFIX}{name}: {why}")


def _host_port(raw: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (an IPv6 host in brackets) as (host, port); None when it is not one."""
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        return None
    return host.strip("[]"), int(port)


def _service(raw: str) -> tuple[str, str, int] | None:
    """``NAMESPACE/NAME[:PORT]`` as (namespace, name, port); None when it is not one."""
    ref, _, port = raw.partition(":")
    namespace, _, name = ref.partition("/")
    if not namespace or not name or "/" in name or (port and not port.isdigit()):
        return None
    return namespace, name, int(port) if port else 443


def parse_bool(raw: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off) as the settings read them; ValueError otherwise."""
    return _bool(raw)


def _convert(name: str, raw: str) -> Any:
    if name == "namespaces":
        return _namespaces(raw)
    if name in {"migrate", "record_guard"}:
        return _bool(raw)
    if name in {"abort_max_attempts", "batch_max", "metrics_port", "api_connections", "shards"}:
        return int(raw)
    if name in {
        "sweep_interval",
        "guard_sweep_interval",
        "vanished_sweep_interval",
        "delete_recorded_after",
        "abort_initial_delay",
        "abort_max_delay",
        "parent_wait",
        "lease_duration",
    }:
        return float(raw)
    return raw
