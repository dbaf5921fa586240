"""The operator's metric recording, one function per thing recorded; each records and does nothing else.

The metrics themselves are declared in ``taskaction_operator.metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from taskaction_operator import metrics
from taskaction_operator.controller.recording.patch_plan import PatchPlan
from taskaction_operator.model.times import parse_rfc3339


def count_event_received(kind: str) -> None:
    """A watch event of type ``kind`` (LISTED, ADDED, MODIFIED, DELETED) reached the handler."""
    metrics.EVENTS_RECEIVED.labels(kind).inc()


def count_event_recorded(kind: str) -> None:
    """The rows of a watch event of type ``kind`` are committed."""
    metrics.EVENTS_RECORDED.labels(kind).inc()


def record_lag(body: Mapping[str, Any]) -> None:
    """Lag from the object's last write (its newest managedFields time, 1 s precision) to now."""
    times = [parse_rfc3339(m.get("time")) for m in (body.get("metadata", {}).get("managedFields") or [])]
    newest = max((t for t in times if t is not None), default=None)
    if newest is not None:
        metrics.RECORDING_LAG.observe(max(0.0, (datetime.now(UTC) - newest).total_seconds()))


def count_patch(plan: PatchPlan) -> None:
    """One patch of a TaskAction, by what it changes (e.g. ``owner+guard``, ``label+release``)."""
    metrics.API_WRITES.labels(patch_kind(plan)).inc()


def count_patch_rejected(plan: PatchPlan) -> None:
    """One patch of a TaskAction the API server refused (422: a test failed, the finalizers changed
    since the object was read), by what it was to change; it is made again from a fresh read."""
    metrics.API_WRITES_REJECTED.labels(patch_kind(plan)).inc()


def patch_kind(plan: PatchPlan) -> str:
    """What a patch changes, as a label value: its parts joined by ``+`` (``owner+guard``, …)."""
    return "+".join(
        k
        for k, on in (
            ("owner", plan.owner_reference is not None),
            ("guard", plan.add_guard),
            ("release", plan.remove_guard),
            ("label", plan.label_recorded),
        )
        if on
    )


def record_batch(items: int, rows: int, seconds: float) -> None:
    """A recorder transaction committed ``rows`` rows (the Recorder's ``on_batch``)."""
    metrics.BATCHES.observe(rows)


def record_db_error(exc: BaseException, temporary: bool) -> None:
    """A database error met by the recorder: temporary (retried) or permanent (Recorder's ``on_error``)."""
    metrics.DB_ERRORS.labels("temporary" if temporary else "permanent").inc()


def count_guard_released_unrecorded(reason: str) -> None:
    """A deleting TaskAction's guard released although its end is not recorded (see handlers)."""
    metrics.GUARDS_RELEASED_UNRECORDED.labels(reason).inc()


def record_abort_attempt(outcome: str) -> None:
    """An abort attempt ended: cleared, retry or gave_up (the AbortSweeper's ``on_attempt``)."""
    metrics.ABORT_ATTEMPTS.labels(outcome).inc()


def count_watch_restart() -> None:
    """The database listener for abort requests failed and is restarted."""
    metrics.WATCH_RESTARTS.inc()


def publish_gauges(*, queue_depth: int, tracked: int) -> None:
    """Set the gauges: observations waiting for a transaction, objects tracked."""
    metrics.QUEUE_DEPTH.set(queue_depth)
    metrics.TRACKED.set(tracked)


def follow_shards(owned: Callable[[], frozenset[int]]) -> None:
    """The shards gauge asks at every scrape: ownership lapses on its own, as leadership does."""
    metrics.SHARDS_OWNED.set_function(lambda: float(len(owned())))


def follow_sweep_leadership(is_leader: Callable[[], bool]) -> None:
    """The sweep-leadership gauge asks ``is_leader`` at every scrape. Leadership lapses on its own
    (two thirds of the lease after the last renewal sent): a value set at the sweep's ticks would go
    on saying 1 until the next one, while the successor already says 1 too."""
    metrics.SWEEP_LEADER.set_function(lambda: 1.0 if is_leader() else 0.0)
