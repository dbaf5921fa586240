"""The records the repository reads and writes: :class:`Action`, :class:`ActionEvent`, :class:`PhaseUpdate`.

Plain mutable dataclasses rather than ORM instances, so that they carry no session state, cross
layers and threads freely, and are cheap to build from a result row. Their fields are exactly the
table columns, in table order (a test holds this against :mod:`.schema`); the protobuf payloads are
kept as the stored bytes, with typed helpers to read and write them as flyteidl2 messages.

Enums are stored as upstream stores them: ``phase``, ``action_type`` and ``cache_status`` as protobuf
integers (exposed here as the :mod:`taskaction_operator.model` IntEnums), ``run_source`` as the enum
value's *name* (``"RUN_SOURCE_CLI"``; ``""`` for rows RecordAction creates:
upstream runs/service/internal_run_service.go: recordSingleAction).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from flyteidl2.common import identity_pb2
from flyteidl2.task import run_pb2
from flyteidl2.workflow import run_definition_pb2, run_info_pb2

from taskaction_operator.model import ActionId, ActionPhase, ActionType, CatalogCacheStatus, RunId, RunSource

__all__ = ["Action", "ActionEvent", "PhaseUpdate", "require_aware"]

_M = TypeVar("_M")


def _decode(cls: type[_M], data: bytes | None) -> _M | None:
    if data is None:
        return None
    message = cls()
    message.ParseFromString(data)  # type: ignore[attr-defined]
    return message


def _encode(message: Any) -> bytes | None:
    return None if message is None else bytes(message.SerializeToString())


def require_aware(value: datetime | None, what: str) -> datetime | None:
    """``value`` unchanged if it carries a time zone; naive datetimes are refused (ambiguous in SQL)."""
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value!r}")
    return value


@dataclass(slots=True)
class Action:
    """One row of ``actions``: a run (its root action, which has no parent) or an action of a run.

    Defaults are what upstream's callers of CreateAction write (upstream runs/service/run_service.go:
    persistRunModel; runs/service/internal_run_service.go: recordSingleAction): phase QUEUED,
    attempts 1, ``action_details`` ``b"{}"``. ``created_at=None`` means "now" at insert time.
    """

    project: str
    domain: str
    run_name: str
    name: str
    parent_action_name: str | None = None
    phase: ActionPhase = ActionPhase.QUEUED
    run_source: str = ""
    action_type: ActionType = ActionType.UNSPECIFIED
    action_group: str | None = None
    task_project: str | None = None
    task_domain: str | None = None
    task_name: str | None = None
    task_version: str | None = None
    task_type: str = ""
    task_short_name: str | None = None
    function_name: str = ""
    environment_name: str | None = None
    action_spec: bytes | None = None
    action_details: bytes | None = b"{}"
    detailed_info: bytes | None = None
    run_spec: bytes | None = None
    abort_requested_at: datetime | None = None
    abort_attempt_count: int = 0
    abort_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    attempts: int = 1
    cache_status: CatalogCacheStatus = CatalogCacheStatus.CACHE_DISABLED
    trigger_name: str | None = None
    trigger_task_name: str | None = None
    trigger_revision: int | None = None
    created_by: bytes | None = None
    created_by_subject: str | None = None
    #: Ours, not a column of upstream's table: the state string of ``update_action_state``, read from
    #: ``taskaction_action_states`` by single-action reads (None in listings).
    action_state: str | None = None

    def __post_init__(self) -> None:
        # Rows arrive with plain integers; keep the enum types the annotations promise.
        if type(self.phase) is not ActionPhase:
            self.phase = ActionPhase(self.phase)
        if type(self.action_type) is not ActionType:
            self.action_type = ActionType(self.action_type)
        if type(self.cache_status) is not CatalogCacheStatus:
            self.cache_status = CatalogCacheStatus(self.cache_status)

    @classmethod
    def new(cls, action_id: ActionId, **fields: Any) -> Action:
        """An action for ``action_id``; the root (``a0``) gets no parent unless one is given."""
        return cls(action_id.project, action_id.domain, action_id.run_name, action_id.name, **fields)

    @property
    def run_id(self) -> RunId:
        return RunId(self.project, self.domain, self.run_name)

    @property
    def action_id(self) -> ActionId:
        return ActionId(self.run_id, self.name)

    @property
    def is_root(self) -> bool:
        """Whether this row is its run's root: upstream's test, ``parent_action_name IS NULL``."""
        return self.parent_action_name is None

    def clone(self) -> Action:
        """A deep copy. Every field holds an immutable value (str, bytes, int, enum, aware datetime),
        so a field-by-field copy shares nothing mutable with the original."""
        return dataclasses.replace(self)

    # -- enums stored as strings -------------------------------------------------------------------
    def get_run_source(self) -> RunSource | None:
        """``run_source`` as the enum; ``None`` for the empty string child rows carry."""
        return RunSource.from_protobuf(self.run_source) if self.run_source else None

    def set_run_source(self, source: RunSource | None) -> None:
        """Store ``source`` as upstream does: its protobuf name (``""`` for ``None``)."""
        self.run_source = source.to_protobuf_name() if source is not None else ""

    # -- protobuf payloads -------------------------------------------------------------------------
    def get_action_spec(self) -> run_definition_pb2.ActionSpec | None:
        return _decode(run_definition_pb2.ActionSpec, self.action_spec)

    def set_action_spec(self, spec: run_definition_pb2.ActionSpec | None) -> None:
        self.action_spec = _encode(spec)

    def get_detailed_info(self) -> run_info_pb2.RunInfo | None:
        return _decode(run_info_pb2.RunInfo, self.detailed_info)

    def set_detailed_info(self, info: run_info_pb2.RunInfo | None) -> None:
        self.detailed_info = _encode(info)

    def get_run_spec(self) -> run_pb2.RunSpec | None:
        return _decode(run_pb2.RunSpec, self.run_spec)

    def set_run_spec(self, spec: run_pb2.RunSpec | None) -> None:
        self.run_spec = _encode(spec)

    def get_created_by(self) -> identity_pb2.EnrichedIdentity | None:
        return _decode(identity_pb2.EnrichedIdentity, self.created_by)

    def set_created_by(self, identity: identity_pb2.EnrichedIdentity | None) -> None:
        self.created_by = _encode(identity)


@dataclass(slots=True)
class ActionEvent:
    """One row of ``action_events``, keyed by action, attempt, phase and version (first write wins)."""

    project: str
    domain: str
    run_name: str
    name: str
    attempt: int
    phase: ActionPhase
    version: int
    info: bytes | None = None
    error_kind: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        if type(self.phase) is not ActionPhase:
            self.phase = ActionPhase(self.phase)

    @classmethod
    def from_proto(cls, event: run_definition_pb2.ActionEvent) -> ActionEvent:
        """Upstream's ``NewActionEventModel``: the key from the message, ``info`` its bytes,
        ``error_kind`` the ``ErrorInfo.Kind`` name when ``error_info`` is present."""
        run = event.id.run
        error_kind = None
        if event.HasField("error_info"):
            error_kind = str(run_definition_pb2.ErrorInfo.Kind.Name(event.error_info.kind))
        return cls(
            run.project,
            run.domain,
            run.name,
            event.id.name,
            int(event.attempt),
            ActionPhase(int(event.phase)),
            int(event.version),
            info=bytes(event.SerializeToString()),
            error_kind=error_kind,
        )

    @property
    def action_id(self) -> ActionId:
        return ActionId.of(self.project, self.domain, self.run_name, self.name)

    def clone(self) -> ActionEvent:
        """A deep copy (every field is immutable, as for :meth:`Action.clone`)."""
        return dataclasses.replace(self)

    def get_info(self) -> run_definition_pb2.ActionEvent | None:
        return _decode(run_definition_pb2.ActionEvent, self.info)


@dataclass(frozen=True, slots=True)
class PhaseUpdate:
    """One guarded phase write (upstream's ``UpdateActionPhase`` arguments).

    ``start_time`` can only move ``created_at`` earlier; ``end_time`` sets ``ended_at`` once and
    recomputes ``duration_ms`` in SQL. Datetimes must be timezone-aware.
    """

    action_id: ActionId
    phase: ActionPhase
    #: None keeps the row's value (ours: upstream's parent promotion writes zeroes here).
    attempts: int | None
    cache_status: int | None
    start_time: datetime | None = None
    end_time: datetime | None = None
    #: A child's promotion of its parent: applied only while the row is below RUNNING (DELIBERATE
    #: DIFFERENCE: upstream's promotion goes through the plain guard, which lets it overwrite FAILED
    #: and TIMED_OUT, so a restart would set finished parents RUNNING again).
    promotion: bool = False
    #: Replaces the row's RunInfo when the update applies (a signalled condition's end, with the
    #: signal's value and principal); None keeps it.
    detailed_info: bytes | None = None

    def __post_init__(self) -> None:
        require_aware(self.start_time, "start_time")
        require_aware(self.end_time, "end_time")
