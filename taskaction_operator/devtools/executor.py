"""A stand-in for Flyte's executor: moves TaskActions through phases by writing their status.

It writes what the real executor writes (``executor/pkg/controller/taskaction_controller.go``):
``mapPhaseToConditions`` (the ``Progressing`` condition with the phase's reason and message,
``Succeeded``/``Failed`` once terminal, with the executor's own messages), ``appendPhaseHistory``
(no entry when the last one has the same phase), ``errorState`` from the execution error
(``errorStateFromExecError``), ``attempts``, the in-place restart of a USER retryable failure (the
transition rewritten as Queued "restarting task" and ``attempts`` bumped in the same write, no
RetryableFailure entry, as long as attempts remain), ``pluginPhase`` as the plugin phase's name,
and once terminal the GC labels of ``ensureTerminalLabels`` in a patch of their own. All status goes
through the status subresource. The demo, the e2e tests and the benchmark use it to play the
executor.

Two parts of the executor are played on request, because each needs the stand-in to keep running
(the demo's player exits once its run has ended):

* ``finalizer=True``: its own finalizer, put on a task action before the first status write
  (``reconcileTask``), and the abort on deletion (``handleAbortAndFinalize``): an ABORTED event
  recorded, then the finalizer removed, with no status write. :meth:`StandInExecutor.serve_deletions`
  does that for every deleting TaskAction holding the finalizer. Condition actions get no finalizer
  (``reconcileCondition``: "nothing external to clean up").
* ``events=EventsReporter(url)``: each transition's ``ActionEvent`` (``buildActionEvent``) recorded
  through ``EventsProxyService.Record`` before the status write that shows it (``recordEvent``,
  ``updateTaskActionStatus``); a failed Record fails the move, as it blocks the executor. Condition
  actions report nothing (``updateConditionStatus``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskaction_operator.k8s import KubeOps
from taskaction_operator.model.times import parse_rfc3339

#: executor phase → (Progressing status, reason, terminal condition type or None)
PHASES: dict[str, tuple[str, str, str | None]] = {
    "Queued": ("True", "Queued", None),
    "Initializing": ("True", "Initializing", None),
    "Executing": ("True", "Executing", None),
    "Completed": ("False", "Completed", "Succeeded"),
    "PermanentFailure": ("False", "PermanentFailure", "Failed"),
    "RetryableFailure": ("True", "RetryableFailure", None),
    "Aborted": ("False", "Aborted", "Failed"),
    "TimedOut": ("False", "TimedOut", "Failed"),
    "Paused": ("True", "Paused", None),
    "Signaled": ("False", "Signaled", "Succeeded"),
}
#: mapPhaseToConditions' fixed messages: (Progressing's, the terminal condition's and the history's).
_FIXED_MESSAGES = {
    "Completed": ("TaskAction has completed", "TaskAction completed successfully"),
    "Aborted": ("TaskAction was aborted", "TaskAction was aborted"),
}
#: The Queued transition an in-place restart writes (``PhaseInfoQueued(..., "restarting task")``).
RESTART_MESSAGE = "restarting task"
#: ensureTerminalLabels' labels.
TERMINATION_LABEL = "flyte.org/termination-status"
COMPLETED_TIME_LABEL = "flyte.org/completed-time"
_FAILURES = {"PermanentFailure", "RetryableFailure", "TimedOut"}
#: The executor's own finalizer (``taskActionFinalizer``).
EXECUTOR_FINALIZER = "flyte.org/plugin-finalizer"
#: Task phases → the plugin phase behind each (``pluginsCore.Phase``, whose ``String()`` is what the
#: executor writes to ``status.pluginPhase``); condition phases have none (conditions run no plugin).
PLUGIN_PHASES = {
    "Queued": "PhaseQueued",
    "Initializing": "PhaseInitializing",
    "Executing": "PhaseRunning",
    "Completed": "PhaseSuccess",
    "PermanentFailure": "PhasePermanentFailure",
    "RetryableFailure": "PhaseRetryableFailure",
    "Aborted": "PhaseAborted",
}
#: ``phaseToActionPhase``: plugin phase → ``ActionPhase`` name of the event it reports.
EVENT_PHASES = {
    "PhaseQueued": "ACTION_PHASE_QUEUED",
    "PhaseInitializing": "ACTION_PHASE_INITIALIZING",
    "PhaseRunning": "ACTION_PHASE_RUNNING",
    "PhaseSuccess": "ACTION_PHASE_SUCCEEDED",
    "PhaseRetryableFailure": "ACTION_PHASE_FAILED",
    "PhasePermanentFailure": "ACTION_PHASE_FAILED",
    "PhaseAborted": "ACTION_PHASE_ABORTED",
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Track:
    conditions: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 1
    error_state: dict[str, str] | None = None
    #: The transition of the last build: the phase written (a restart's Queued, not the
    #: RetryableFailure asked for), its message, and the error it carries (None if none).
    phase: str = ""
    message: str = ""
    error: dict[str, str] | None = None
    #: The TaskAction as first read (its identity is all an event needs, and it never changes).
    body: dict[str, Any] | None = None


def build_status(
    track: _Track, phase: str, *, message: str = "", at: str | None = None, max_attempts: int = 3
) -> dict[str, Any]:
    """Advance ``track`` to ``phase`` and return the full status to write."""
    if phase not in PHASES:
        raise ValueError(f"unknown executor phase {phase!r}; one of {', '.join(PHASES)}")
    at = at or _now()
    if phase == "RetryableFailure":
        if track.attempts < max_attempts:
            # The in-place restart: Queued "restarting task", attempts bumped, in this same write.
            track.attempts += 1
            phase, message = "Queued", RESTART_MESSAGE
        else:
            phase, message = "PermanentFailure", message or f"task failed after {track.attempts} attempt(s)"
    prog_status, reason, terminal = PHASES[phase]
    progressing_msg, terminal_msg = _FIXED_MESSAGES.get(phase, (message, message))
    track.phase, track.message, track.error = phase, terminal_msg, None
    if phase in _FAILURES:
        code = "ConditionTimedOut" if phase == "TimedOut" else phase  # reconcileCondition's code
        track.error_state = {"code": code, "kind": "USER", "message": message or phase}
        track.error = track.error_state
    _set_condition(track.conditions, "Progressing", prog_status, reason, progressing_msg, at)
    if terminal is not None:
        _set_condition(track.conditions, terminal, "True", reason, terminal_msg, at)
    if not track.history or track.history[-1]["phase"] != phase:
        entry: dict[str, Any] = {"phase": phase, "occurredAt": at}
        if terminal_msg:
            entry["message"] = terminal_msg
        track.history.append(entry)
    status: dict[str, Any] = {
        "conditions": [dict(c) for c in track.conditions],
        "phaseHistory": [dict(h) for h in track.history],
    }
    if phase in PLUGIN_PHASES:  # a task's status; a condition's is only the above and errorState
        status.update(attempts=track.attempts, pluginPhase=PLUGIN_PHASES[phase], pluginPhaseVersion=0)
        status["stateJson"] = ""
    if track.error_state is not None:
        status["errorState"] = dict(track.error_state)
    return status


def terminal_labels(status: dict[str, Any]) -> dict[str, str] | None:
    """ensureTerminalLabels: the GC labels of a terminal status (None while it is not terminal)."""
    for cond in status.get("conditions", ()):
        if cond["type"] in {"Succeeded", "Failed"} and cond["status"] == "True":
            when = datetime.strptime(cond["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ")
            return {TERMINATION_LABEL: "terminated", COMPLETED_TIME_LABEL: when.strftime("%Y-%m-%d.%H-%M")}
    return None


def _set_condition(
    conds: list[dict[str, Any]], ctype: str, status: str, reason: str, message: str, at: str
) -> None:
    """``meta.SetStatusCondition``: update in place (keeping list order), else append."""
    for c in conds:
        if c["type"] == ctype:
            if c["status"] != status:
                c["lastTransitionTime"] = at
            c.update(status=status, reason=reason, message=message)
            return
    conds.append(
        {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": at}
    )


class EventsReporter:
    """Records ActionEvents through ``EventsProxyService.Record`` at ``url``, as the executor's
    ``recordEvent`` does (one event per call; Flyte's executor may batch them, to the same effect)."""

    def __init__(self, url: str, *, cluster: str = "stand-in") -> None:
        from flyteidl2.workflow.events_proxy_service_connect import EventsProxyServiceClient

        self.cluster = cluster
        self.sent = 0
        self._client = EventsProxyServiceClient(url)

    async def record(self, event: Any) -> None:
        from flyteidl2.workflow import events_proxy_service_pb2

        await self._client.record(events_proxy_service_pb2.RecordRequest(events=[event]))
        self.sent += 1

    async def aclose(self) -> None:
        await self._client.close()


def action_event(
    body: dict[str, Any],
    status: dict[str, Any],
    plugin_phase: str,
    *,
    cluster: str,
    message: str = "",
    error: dict[str, str] | None = None,
    updated: datetime | None = None,
) -> Any:
    """``buildActionEvent``: the ActionEvent of one transition of the TaskAction ``body`` whose status
    becomes ``status``: the attempt from ``status.attempts`` (``observedAttempts``), version 0, the
    time of the last history entry (``updatedTimestamp``) unless ``updated`` is given, the error of
    the transition (``toActionErrorInfo``), its message as the one cluster event
    (``toClusterEvents``), the cache status and the time reported."""
    from flyteidl2.common import identifier_pb2, phase_pb2
    from flyteidl2.workflow import run_definition_pb2

    spec = body["spec"]
    event = run_definition_pb2.ActionEvent(
        id=identifier_pb2.ActionIdentifier(
            run=identifier_pb2.RunIdentifier(
                project=spec["project"], domain=spec["domain"], name=spec["runName"]
            ),
            name=spec["actionName"],
        ),
        attempt=max(int(status.get("attempts") or 1), 1),
        phase=phase_pb2.ActionPhase.Value(EVENT_PHASES[plugin_phase]),
        version=0,
        cluster=cluster,
        cache_status=int(status.get("cacheStatus") or 0),
    )
    history = status.get("phaseHistory") or []
    if updated is None and history:
        updated = parse_rfc3339(history[-1]["occurredAt"])
    event.updated_time.FromDatetime(updated or datetime.now(UTC))
    event.reported_time.FromDatetime(datetime.now(UTC))
    if error is not None:
        kinds = {
            "USER": run_definition_pb2.ErrorInfo.KIND_USER,
            "SYSTEM": run_definition_pb2.ErrorInfo.KIND_SYSTEM,
        }
        event.error_info.CopyFrom(
            run_definition_pb2.ErrorInfo(
                message=error.get("message", ""), kind=kinds.get(error.get("kind", ""), 0)
            )
        )
    if message:
        event.cluster_events.add(message=message).occurred_at.CopyFrom(event.updated_time)
    return event


def is_condition(body: dict[str, Any]) -> bool:
    return (body.get("spec") or {}).get("actionType") == "condition"


class StandInExecutor:
    """Drives TaskActions' status; it is the only writer of the status it manages."""

    def __init__(
        self, kube: KubeOps, *, finalizer: bool = False, events: EventsReporter | None = None
    ) -> None:
        self.kube = kube
        self.finalizer = finalizer
        self.events = events
        self._tracks: dict[tuple[str, str], _Track] = {}
        #: TaskActions finalized on deletion (``handleAbortAndFinalize``), as (namespace, name).
        self.finalized: list[tuple[str, str]] = []

    async def move(
        self, namespace: str, name: str, phase: str, *, message: str = ""
    ) -> dict[str, Any] | None:
        """Write the status of ``phase``, then, once terminal, the GC labels (a second patch, as the
        executor makes it); returns the patched object (None when it is gone). With ``finalizer``,
        a task action gets the executor's finalizer before its first status write; with ``events``,
        the transition is recorded before the status write that shows it."""
        track = self._tracks.setdefault((namespace, name), _Track())
        if track.body is None and (self.finalizer or self.events is not None):
            track.body = await self.kube.get_taskaction(namespace, name)
            if track.body is None:
                return None
            if self.finalizer and not is_condition(track.body):
                await self.kube.add_finalizer(namespace, name, EXECUTOR_FINALIZER)
        status = build_status(track, phase, message=message)
        if self.events is not None and track.phase in PLUGIN_PHASES:
            assert track.body is not None
            await self.events.record(
                action_event(
                    track.body,
                    status,
                    PLUGIN_PHASES[track.phase],
                    cluster=self.events.cluster,
                    message=track.message,
                    error=track.error,
                )
            )
        written = await self.kube.merge_patch_taskaction(namespace, name, {"status": status}, status=True)
        labels = terminal_labels(status)
        if written is not None and labels is not None:
            written = await self.kube.merge_patch_taskaction(
                namespace, name, {"metadata": {"labels": labels}}
            )
        return written

    async def run_through(self, namespace: str, name: str, phases: list[str]) -> None:
        for phase in phases:
            await self.move(namespace, name, phase)

    async def finalize(self, body: dict[str, Any]) -> bool:
        """``handleAbortAndFinalize`` for a deleting TaskAction holding the executor's finalizer (a
        terminal one too: the executor does not look at the phase): the ABORTED event of its
        current attempt, at the time of the abort, then the finalizer removed; no status write.
        False when there was nothing to do."""
        meta = body["metadata"]
        if not meta.get("deletionTimestamp") or EXECUTOR_FINALIZER not in (meta.get("finalizers") or ()):
            return False
        if self.events is not None:
            await self.events.record(
                action_event(
                    body,
                    body.get("status") or {},
                    "PhaseAborted",
                    cluster=self.events.cluster,
                    message="aborted",
                    updated=datetime.now(UTC),
                )
            )
        removed = await self.kube.remove_finalizer(meta["namespace"], meta["name"], EXECUTOR_FINALIZER)
        if removed:
            self.finalized.append((meta["namespace"], meta["name"]))
        return removed

    async def serve_deletions(self, namespace: str, *, interval: float = 0.3) -> None:
        """Finalize every deleting TaskAction of ``namespace`` holding the executor's finalizer, until
        cancelled (a poll: the stand-in keeps no watch of its own)."""
        while True:
            async for obj in self.kube.holding(EXECUTOR_FINALIZER, namespace):
                with contextlib.suppress(Exception):  # a failed Record or patch is retried next round
                    await self.finalize(obj)
            await asyncio.sleep(interval)


SUCCESS_PATH = ["Queued", "Initializing", "Executing", "Completed"]
FAILURE_PATH = ["Queued", "Initializing", "Executing", "PermanentFailure"]
TIMEOUT_PATH = ["Queued", "Initializing", "Executing", "TimedOut"]
