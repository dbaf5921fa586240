"""The NOTIFY channels and their payloads, and who is notified after each write: decided here only.

Payloads are keys only; watchers re-read the row (upstream runs/repository/impl/action.go:
notifyRunUpdate, notifyActionUpdate). The writer sends a :class:`Notify` in the writing transaction;
the listener LISTENs on :data:`CHANNELS` and routes by the same payloads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from taskaction_operator.model import ActionId, RunId
from taskaction_operator.repo.models import PhaseUpdate

__all__ = [
    "ABORT_CHANNEL",
    "ACTION_CHANNEL",
    "CHANNELS",
    "NOBODY",
    "RUN_CHANNEL",
    "Notify",
    "action_payload",
    "after_abort_action",
    "after_abort_run",
    "after_batch",
    "after_update",
    "run_payload",
]

RUN_CHANNEL = "run_updates"
ACTION_CHANNEL = "action_updates"
#: Ours, not upstream's: ``project/domain/run/action`` of each abort_run/abort_action, so that the
#: abort sweep wakes at once instead of at its next tick. Upstream listeners never LISTEN on it.
ABORT_CHANNEL = "abort_requests"
CHANNELS = (RUN_CHANNEL, ACTION_CHANNEL, ABORT_CHANNEL)


def run_payload(run: RunId) -> str:
    """``project/domain/run``, upstream's run_updates payload."""
    return f"{run.project}/{run.domain}/{run.name}"


def action_payload(action: ActionId) -> str:
    """``project/domain/run/action``, upstream's action_updates payload."""
    return f"{action.project}/{action.domain}/{action.run_name}/{action.name}"


@dataclass(frozen=True, slots=True)
class Notify:
    """What one transaction notifies: runs on run_updates, actions on action_updates, requested
    aborts on abort_requests."""

    runs: tuple[RunId, ...] = ()
    actions: tuple[ActionId, ...] = ()
    aborts: tuple[ActionId, ...] = ()

    def messages(self) -> list[tuple[str, str]]:
        """``(channel, payload)`` for each distinct run, action and abort request, once."""
        out = [(RUN_CHANNEL, run_payload(run)) for run in dict.fromkeys(self.runs)]
        out += [(ACTION_CHANNEL, action_payload(a)) for a in dict.fromkeys(self.actions)]
        out += [(ABORT_CHANNEL, action_payload(a)) for a in dict.fromkeys(self.aborts)]
        return out


# -- who is notified: upstream's table (runs/repository/impl/action.go), plus our abort_requests ----
#: MarkAbortAttempt, ClearAbortRequest, and a write that found nothing.
NOBODY = Notify()


def after_batch(
    inserted: Iterable[ActionId],
    evented: Iterable[ActionId],
    updates: Sequence[PhaseUpdate],
    applied: Sequence[bool],
) -> Notify:
    """CreateAction: an action whose row was inserted. InsertEvents: each distinct action of the
    events. UpdateActionPhase: an action whose update was applied, and the run of every root (``a0``)
    update even when the guard blocked it. ``applied`` says, for each update, whether it was."""
    touched = [*inserted, *evented]
    touched += [u.action_id for u, ok in zip(updates, applied, strict=True) if ok]
    runs = [u.action_id.run for u in updates if u.action_id.is_root]
    return Notify(runs=tuple(runs), actions=tuple(touched))


def after_update(action_id: ActionId, found: bool) -> Notify:
    """UpdateActionDetailedInfo, UpdateActionState, NotifyStateUpdate: the action, if it exists."""
    return Notify(actions=(action_id,)) if found else NOBODY


def after_abort_action(action_id: ActionId, found: bool) -> Notify:
    """AbortAction: the action (and, ours, its abort request); not the run, even for ``a0``."""
    return Notify(actions=(action_id,), aborts=(action_id,)) if found else NOBODY


def after_abort_run(run: RunId, roots: Sequence[str]) -> Notify:
    """AbortRun: the run and the root action it marked, by name (and, ours, the root's abort request)."""
    marked = tuple(ActionId(run, name) for name in roots)
    return Notify(runs=(run,), actions=marked, aborts=marked) if marked else NOBODY
