"""A stand-in for Flyte's executor: moves TaskActions through phases by writing their status.

It writes what the real executor writes (upstream ``mapPhaseToConditions``,
``executor/pkg/controller/taskaction_controller.go``): the ``Progressing`` condition with the phase's
reason, ``Succeeded``/``Failed`` once terminal, the ``phaseHistory`` timeline (not appended when the
last entry has the same phase), ``attempts``, and ``errorState`` on failures, all through the status
subresource. The demo, the e2e tests and the
benchmark use it to play the executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskaction_operator.k8s import KubeOps

#: plugin phase → (Progressing status, reason, terminal condition type or None)
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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Track:
    conditions: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 1


def build_status(track: _Track, phase: str, *, message: str = "", at: str | None = None) -> dict[str, Any]:
    """Advance ``track`` to ``phase`` and return the full status to write."""
    if phase not in PHASES:
        raise ValueError(f"unknown executor phase {phase!r}; one of {', '.join(PHASES)}")
    at = at or _now()
    prog_status, reason, terminal = PHASES[phase]
    if (
        phase in {"Queued", "Initializing", "Executing"}
        and track.history
        and track.history[-1]["phase"] == "RetryableFailure"
    ):
        track.attempts += 1
    _set_condition(track.conditions, "Progressing", prog_status, reason, message, at)
    if terminal is not None:
        _set_condition(track.conditions, terminal, "True", reason, message, at)
    if not track.history or track.history[-1]["phase"] != phase:
        entry: dict[str, Any] = {"phase": phase, "occurredAt": at}
        if message:
            entry["message"] = message
        track.history.append(entry)
    status: dict[str, Any] = {
        "conditions": [dict(c) for c in track.conditions],
        "phaseHistory": [dict(h) for h in track.history],
        "attempts": track.attempts,
        "pluginPhase": phase,
        "stateJson": "",
    }
    if phase in {"PermanentFailure", "RetryableFailure", "TimedOut", "Aborted"}:
        status["errorState"] = {"code": phase, "kind": "USER", "message": message or phase}
    return status


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
        """Write the status of ``phase``; returns the patched object (None when it is gone)."""
        track = self._tracks.setdefault((namespace, name), _Track())
        status = build_status(track, phase, message=message)
        return await self.kube.merge_patch_taskaction(namespace, name, {"status": status}, status=True)

    async def run_through(self, namespace: str, name: str, phases: list[str]) -> None:
        for phase in phases:
            await self.move(namespace, name, phase)


SUCCESS_PATH = ["Queued", "Initializing", "Executing", "Completed"]
FAILURE_PATH = ["Queued", "Initializing", "Executing", "PermanentFailure"]
TIMEOUT_PATH = ["Queued", "Initializing", "Executing", "TimedOut"]
