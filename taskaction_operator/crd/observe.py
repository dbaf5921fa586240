"""What a TaskAction body says, as a typed ``Observation``: pure functions, no I/O.

Phase derivation follows upstream exactly (``actions/k8s/client.go``: ``GetPhaseFromConditions``):
conditions in list order, the first match wins; ``Succeeded=True`` → SUCCEEDED, ``Failed=True`` →
TIMED_OUT for reason TimedOut else FAILED (so the executor's ``Aborted`` reason is FAILED),
``Progressing=True`` by reason (Queued, Initializing, Executing, Paused); anything else is
UNSPECIFIED and never written. A deleted non-terminal TaskAction is ABORTED once no finalizer but our
guard is left on it (or at its final tombstone), so that Flyte's executor, which finalizes first, may
still write its end; a deleted terminal one keeps its phase.

The phases an action passed through come from ``status.phaseHistory`` (the executor's append-only
timeline) plus the current phase, so the event history is complete even when coalescing let the
operator see only the latest state.
"""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, RUN_SOURCE_ANNOTATION, is_recorded
from taskaction_operator.crd.shards import SHARD_LABEL
from taskaction_operator.model import ROOT_ACTION_NAME, ActionId, ActionPhase, ActionType, RunSource
from taskaction_operator.model.times import parse_rfc3339

_PROGRESSING_REASONS = {
    "Queued": ActionPhase.QUEUED,
    "Initializing": ActionPhase.INITIALIZING,
    "Executing": ActionPhase.RUNNING,
    "Paused": ActionPhase.PAUSED,
}

#: phaseHistory entry → event phase, after the executor's own event mapping (``phaseToActionPhase``).
_HISTORY_PHASES = {
    "Queued": ActionPhase.QUEUED,
    "WaitingForResources": ActionPhase.WAITING_FOR_RESOURCES,
    "Initializing": ActionPhase.INITIALIZING,
    "Executing": ActionPhase.RUNNING,
    "Completed": ActionPhase.SUCCEEDED,
    "Signaled": ActionPhase.SUCCEEDED,
    "PermanentFailure": ActionPhase.FAILED,
    "RetryableFailure": ActionPhase.FAILED,
    "InvalidSpec": ActionPhase.FAILED,
    "PluginNotFound": ActionPhase.FAILED,
    "Aborted": ActionPhase.ABORTED,
    "TimedOut": ActionPhase.TIMED_OUT,
    "Paused": ActionPhase.PAUSED,
}


#: The message of the Queued transition Flyte's executor writes for an in-place restart
#: (``taskaction_controller.go``: ``PhaseInfoQueued(..., "restarting task")``).
RESTART_MESSAGE = "restarting task"


class InvalidTaskAction(ValueError):
    """The body lacks what identifies an action; it cannot be recorded."""


def phase_from_conditions(conditions: Sequence[Mapping[str, Any]] | None) -> ActionPhase:
    """Upstream's ``GetPhaseFromConditions``: list order, first match wins, else UNSPECIFIED."""
    for cond in conditions or ():
        if cond.get("status") != "True":
            continue
        ctype, reason = cond.get("type"), cond.get("reason")
        if ctype == "Succeeded":
            return ActionPhase.SUCCEEDED
        if ctype == "Failed":
            return ActionPhase.TIMED_OUT if reason == "TimedOut" else ActionPhase.FAILED
        if ctype == "Progressing" and reason in _PROGRESSING_REASONS:
            return _PROGRESSING_REASONS[reason]
    return ActionPhase.UNSPECIFIED


def decode_bytes(value: Any) -> bytes | None:
    """A ``format: byte`` field (base64 in JSON) as bytes; None when absent or not base64."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class PhaseEvent:
    """One phase an attempt of the action passed through (an ``action_events`` row to have)."""

    attempt: int
    phase: ActionPhase
    occurred_at: datetime | None
    message: str | None = None

    @property
    def key(self) -> tuple[int, int, int]:
        """The event's identity within its action: (attempt, phase, version); version is always 0.
        One tuple per distinct key (:func:`shared`): the reconciler keeps every object's keys."""
        return shared((self.attempt, int(self.phase), 0))


_SHARED: dict[Any, Any] = {}
_SHARED_MAX = 4096
_K = TypeVar("_K", bound=tuple[int, ...])


def shared(key: _K) -> _K:
    """One tuple object for equal small keys (a handful of distinct ones: attempts and phases), so that
    what is kept per live object refers to them instead of holding copies; bounded."""
    if len(_SHARED) >= _SHARED_MAX:
        found: _K = _SHARED.get(key, key)
        return found
    kept: _K = _SHARED.setdefault(key, key)
    return kept


@dataclass(frozen=True, slots=True)
class Observation:
    """One TaskAction as seen in one watch event, reduced to what the record needs."""

    action_id: ActionId
    namespace: str
    name: str
    uid: str
    parent: str | None
    action_type: ActionType
    phase: ActionPhase
    attempts: int
    cache_status: int
    created_at: datetime | None
    end_time: datetime | None
    deleting: bool
    labelled_recorded: bool
    finalizers: tuple[str, ...]
    owner_references: tuple[Mapping[str, Any], ...]
    spec: Mapping[str, Any] = field(repr=False)
    annotations: Mapping[str, str] = field(repr=False)
    events: tuple[PhaseEvent, ...] = ()
    #: ``status.errorState.kind`` of the last failed attempt: "USER", "SYSTEM" or "".
    error_kind: str = ""
    #: A signalled condition's ``status.signalValue`` (a serialized core.Literal) and
    #: ``status.signalledBy``; None unless it has one.
    signal_value: bytes | None = None
    signalled_by: str = ""
    #: Carries the ``flyte.org/record-shard`` label (``crd/shards.py``).
    shard_labelled: bool = False

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def parent_id(self) -> ActionId | None:
        return None if self.parent is None else ActionId(self.action_id.run, self.parent)

    @property
    def run_source(self) -> RunSource:
        raw = self.annotations.get(RUN_SOURCE_ANNOTATION, "")
        try:
            return RunSource.from_protobuf(raw) if raw else RunSource.UNSPECIFIED
        except ValueError:
            return RunSource.UNSPECIFIED


def observe(body: Mapping[str, Any], *, deleted: bool = False, now: datetime | None = None) -> Observation:
    """Reduce a TaskAction body to an Observation.

    ``deleted`` is true for a DELETED watch event; a body with ``deletionTimestamp`` counts as
    deleting too. Raises InvalidTaskAction when the identifying spec fields are missing.
    """
    meta: Mapping[str, Any] = body.get("metadata") or {}
    spec: Mapping[str, Any] = body.get("spec") or {}
    status: Mapping[str, Any] = body.get("status") or {}
    missing = [k for k in ("project", "domain", "runName", "actionName") if not spec.get(k)]
    if missing:
        raise InvalidTaskAction(f"spec lacks {', '.join(missing)}")
    # The strings many objects share (one namespace, project and domain for all of them, a run for
    # each of its actions) as one object each: the reconciler and the index keep them per live object.
    action_id = ActionId.of(
        sys.intern(str(spec["project"])),
        sys.intern(str(spec["domain"])),
        sys.intern(str(spec["runName"])),
        spec["actionName"],
    )
    parent = spec.get("parentActionName") or None
    if action_id.name == ROOT_ACTION_NAME:
        parent = None
    conditions = status.get("conditions") or []
    phase = phase_from_conditions(conditions)
    deleting = deleted or bool(meta.get("deletionTimestamp"))
    finalizers = tuple(meta.get("finalizers") or ())
    # A deletion is the action's end once nothing but our guard holds the object (or at its final
    # tombstone): until then another finalizer (Flyte's executor's) may still write a terminal status.
    finalizing = any(f != RECORD_GUARD_FINALIZER for f in finalizers)
    now = now or datetime.now(UTC)
    end_time: datetime | None = None
    if deleting and not phase.is_terminal() and (deleted or not finalizing):
        phase = ActionPhase.ABORTED
        end_time = now
    elif phase.is_terminal():
        end_time = _terminal_time(conditions) or now
    attempts = _int(status.get("attempts"))
    return Observation(
        action_id=action_id,
        namespace=sys.intern(str(meta.get("namespace") or "")),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        parent=parent,
        action_type=ActionType.CONDITION if spec.get("actionType") == "condition" else ActionType.TASK,
        phase=phase,
        attempts=attempts,
        cache_status=_int(status.get("cacheStatus")),
        created_at=parse_rfc3339(meta.get("creationTimestamp")),
        end_time=end_time,
        deleting=deleting,
        labelled_recorded=is_recorded(body),
        shard_labelled=SHARD_LABEL in (meta.get("labels") or {}),
        finalizers=finalizers,
        owner_references=tuple(meta.get("ownerReferences") or ()),
        spec=spec,
        annotations=meta.get("annotations") or {},
        events=phase_events(status.get("phaseHistory"), phase, max(attempts, 1), conditions, end_time),
        error_kind=str((status.get("errorState") or {}).get("kind") or ""),
        signal_value=decode_bytes(status.get("signalValue")),
        signalled_by=str(status.get("signalledBy") or ""),
    )


def phase_events(
    history: Sequence[Mapping[str, Any]] | None,
    current: ActionPhase,
    attempts: int,
    conditions: Sequence[Mapping[str, Any]] | None = None,
    current_time: datetime | None = None,
) -> tuple[PhaseEvent, ...]:
    """Every phase passed through, deduplicated by (attempt, phase), in order: the events Flyte's
    executor reports for the same status (``taskaction_controller.go: buildActionEvent``).

    Attempts as the executor numbers them (from ``status.attempts`` at each transition): a new attempt
    starts at an in-place restart's Queued entry (message "restarting task", written in the same
    status write that bumps ``status.attempts``), or after a RetryableFailure entry (executors that
    write one). Where the history and the attempts disagree, the attempts win: no entry is numbered
    above ``attempts``, and the current phase belongs to ``attempts`` (a restart from Queued leaves no
    entry: ``appendPhaseHistory`` drops a repeat of the last one).

    The current phase is an event of its own only when the history does not already end in a terminal
    one: the executor's abort is ``Failed=True`` (FAILED by the conditions) with an Aborted entry,
    and it reports that as one ABORTED event, not two. UNSPECIFIED is never an event.
    """
    seen: set[tuple[int, int, int]] = set()
    out: list[PhaseEvent] = []

    def add(ev: PhaseEvent) -> None:
        if ev.phase is not ActionPhase.UNSPECIFIED and ev.key not in seen:
            seen.add(ev.key)
            out.append(ev)

    attempt = 1
    last: ActionPhase | None = None
    for entry in history or ():
        name = str(entry.get("phase") or "")
        phase = _HISTORY_PHASES.get(name)
        if name == "Queued" and entry.get("message") == RESTART_MESSAGE and last is not None:
            attempt += 1
        if phase is not None:
            last = phase
            add(
                PhaseEvent(
                    min(attempt, attempts),
                    phase,
                    parse_rfc3339(entry.get("occurredAt")),
                    entry.get("message") or None,
                )
            )
        if name == "RetryableFailure":
            attempt += 1
    if not (current.is_terminal() and last is not None and last.is_terminal()):
        add(PhaseEvent(attempts, current, current_time or _condition_time(conditions, current)))
    return tuple(out)


def _condition_time(conditions: Sequence[Mapping[str, Any]] | None, phase: ActionPhase) -> datetime | None:
    for cond in conditions or ():
        if cond.get("status") == "True" and phase_from_conditions([cond]) is phase:
            return parse_rfc3339(cond.get("lastTransitionTime"))
    return None


def _terminal_time(conditions: Sequence[Mapping[str, Any]]) -> datetime | None:
    for cond in conditions:
        if cond.get("type") in {"Succeeded", "Failed"} and cond.get("status") == "True":
            return parse_rfc3339(cond.get("lastTransitionTime"))
    return None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
