"""The TaskAction handler: every watch event (listing, ADDED, MODIFIED, DELETED) is recorded.

A raw ``on.event`` handler, deliberately: kopf stores no progress or diff-base annotations for it
and posts no per-handler Events, so the operator's own API writes are only the ones it plans (the
ownerReference and the record-guard finalizer on first sight, none for an object created with both;
the recorded label when terminal; the finalizer's release on deletion), folded into one patch: a
merge patch that kopf applies after the handler when finalizers stay as they are, otherwise a JSON
patch the handler sends itself (``recording/plan_writer.py``) whose tests name only the finalizer
entries it depends on, so neither can be rejected because the executor wrote status meanwhile.

Only TaskActions not yet labelled terminal-status-recorded are watched (see ``lifecycle.startup``):
setting the label ends an object's stream with a DELETED event of its last unlabelled state, which is
terminal and already recorded, so it writes nothing.

The body is reduced to an ``Observation`` here, once per event (``crd.observe``); the reconciler and
the patch plan work from that observation.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from taskaction_operator.controller import instruments
from taskaction_operator.controller.recording.patch_plan import PatchPlan
from taskaction_operator.controller.recording.plan_writer import write_plan
from taskaction_operator.controller.runtime import Runtime
from taskaction_operator.crd.names import GROUP, PLURAL, RECORD_GUARD_FINALIZER, VERSION
from taskaction_operator.crd.observe import InvalidTaskAction, observe, phase_from_conditions
from taskaction_operator.k8s.errors import KubeError

HANDLER_ID = "record-taskaction"
log = logging.getLogger(__name__)


@kopf.on.event(GROUP, VERSION, PLURAL, id=HANDLER_ID)
async def record_taskaction(
    event: kopf.RawEvent, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    runtime: Runtime = memo["runtime"]
    if not runtime.owns(body):
        # Another replica's shard: only seen while this replica's watch is being narrowed, or for an
        # object without the shard label (created while the webhook was unavailable).
        return
    kind = event.get("type") or "LISTED"
    deleted = kind == "DELETED"
    instruments.count_event_received(kind)
    if deleted and await _left_the_watch(runtime, body):
        return
    try:
        observation = observe(body, deleted=deleted)  # the event's only reading of its body
        outcome = await runtime.reconciler.handle(observation, deleted=deleted)
    except InvalidTaskAction as exc:
        kopf.warn(body, reason="InvalidTaskAction", message=f"not recorded: {exc}")
        await _release_unrecorded(runtime, body, deleted, "invalid", str(exc))
        return
    except Exception as exc:  # a bug or the unforeseen: logged, and never a guard held forever
        log.exception("recording %s failed", body.get("metadata", {}).get("name"))
        await _release_unrecorded(runtime, body, deleted, "error", f"{type(exc).__name__}: {exc}")
        return
    for reason, message in outcome.warnings:
        kopf.warn(body, reason=reason, message=message)
    if not outcome.committed and not outcome.plan.remove_guard:
        # The recorder retries temporary database errors until the database answers: what comes
        # back uncommitted was refused for good (bad data), and waiting would hold the guard forever.
        detail = outcome.warnings[0][1] if outcome.warnings else "refused by the database"
        if await _release_unrecorded(runtime, body, deleted, "record-failed", detail):
            return
    if outcome.committed:
        instruments.count_event_recorded(kind)
        instruments.record_lag(body)
    if outcome.plan and not deleted:
        if outcome.plan.touches_finalizers:
            # A release planned on an event older than our own first-sight patch (a backlog: the
            # executor finished the action before the operator first saw it) would test a list
            # without the guard and be rejected: read the object first instead.
            reread = (
                outcome.plan.remove_guard
                and RECORD_GUARD_FINALIZER not in observation.finalizers
                and runtime.reconciler.wrote_guard(observation.uid)
            )
            if await _write(runtime, body, outcome.plan, reread=reread):
                runtime.reconciler.written(observation.uid, outcome.plan)
        else:
            patch.update(outcome.plan.as_merge_patch())
            instruments.count_patch(outcome.plan)


async def _write(runtime: Runtime, body: kopf.Body, plan: PatchPlan, *, reread: bool = False) -> bool:
    """A plan that changes finalizers, as one precise JSON patch (see the module docstring)."""
    return await write_plan(
        runtime.kube,
        body,
        plan,
        reread=reread,
        on_written=instruments.count_patch,
        on_rejected=instruments.count_patch_rejected,
    )


async def _left_the_watch(runtime: Runtime, body: kopf.Body) -> bool:
    """A DELETED event of an unfinished object with no deletionTimestamp may be no deletion at all:
    the object left the watch's label selector (someone set the recorded label by hand). A GET tells;
    only a deletion is recorded ABORTED. DELIBERATE DIFFERENCE: upstream's informer records it."""
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    if phase_from_conditions((body.get("status") or {}).get("conditions")).is_terminal():
        return False
    try:
        current = await runtime.kube.get_taskaction(str(meta.get("namespace")), str(meta.get("name")))
    except KubeError as exc:  # cannot tell: a deletion, as upstream takes it
        log.warning("could not confirm the deletion of %s: %s", meta.get("name"), exc)
        return False
    return current is not None and current["metadata"].get("uid") == meta.get("uid")


async def _release_unrecorded(
    runtime: Runtime, body: kopf.Body, deleted: bool, reason: str, detail: str
) -> bool:
    """Release our guard from an object being deleted whose end could not be recorded, with a Warning
    and a count (``reason``). The guard exists to hold a deletion until its end is recorded; when that
    cannot happen, holding on would keep the object, and its namespace, forever. False when there is
    nothing to release (not deleting, no guard, or a DELETED event: the object is gone)."""
    meta = body.get("metadata") or {}
    if (
        deleted
        or not meta.get("deletionTimestamp")
        or RECORD_GUARD_FINALIZER not in (meta.get("finalizers") or ())
    ):
        return False
    await _write(runtime, body, PatchPlan(remove_guard=True))
    kopf.warn(
        body,
        reason="GuardReleased",
        message=f"the end of this action could not be recorded ({detail}); the record-guard finalizer "
        "is released so that the deletion can finish, and the database lacks this action's end",
    )
    instruments.count_guard_released_unrecorded(reason)
    return True
