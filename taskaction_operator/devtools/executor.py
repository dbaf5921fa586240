"""A stand-in for Flyte's executor: moves TaskActions through phases by writing their status.

It writes what the real executor writes (``executor/pkg/controller/taskaction_controller.go``):
``mapPhaseToConditions`` (the ``Progressing`` condition with the phase's reason and message,
``Succeeded``/``Failed`` once terminal, with the executor's own messages), ``appendPhaseHistory``
(no entry when the last one has the same phase), ``errorState`` from the execution error
(``errorStateFromExecError``), ``attempts``, the in-place restart of a USER retryable failure (the
transition rewritten as Queued "restarting task" and ``attempts`` bumped in the same write, no
RetryableFailure entry, as long as attempts remain), and once terminal the GC labels of
``ensureTerminalLabels`` in a patch of their own. All status goes through the status subresource.
The demo, the e2e tests and the benchmark use it to play the executor.

Not played: the executor's own finalizer and its abort on deletion (``handleAbortAndFinalize``),
and the events it reports through ``EventsProxyService.Record`` (the operator derives them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskaction_operator.k8s import KubeOps

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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Track:
    conditions: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 1
    error_state: dict[str, str] | None = None


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
    if phase in _FAILURES:
        track.error_state = {"code": phase, "kind": "USER", "message": message or phase}
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
        "attempts": track.attempts,
        "pluginPhase": phase,
        "stateJson": "",
    }
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


class StandInExecutor:
    """Drives TaskActions' status; it is the only writer of the status it manages."""

    def __init__(self, kube: KubeOps) -> None:
        self.kube = kube
        self._tracks: dict[tuple[str, str], _Track] = {}

    async def move(
        self, namespace: str, name: str, phase: str, *, message: str = ""
    ) -> dict[str, Any] | None:
        """Write the status of ``phase``, then, once terminal, the GC labels (a second patch, as the
        executor makes it); returns the patched object (None when it is gone)."""
        track = self._tracks.setdefault((namespace, name), _Track())
        status = build_status(track, phase, message=message)
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


SUCCESS_PATH = ["Queued", "Initializing", "Executing", "Completed"]
FAILURE_PATH = ["Queued", "Initializing", "Executing", "PermanentFailure"]
TIMEOUT_PATH = ["Queued", "Initializing", "Executing", "TimedOut"]
