"""Per-object recording logic: one watch event in, rows committed, one patch plan out.

Called from the kopf handler, which kopf serialises per object; different objects run concurrently
and share database transactions through the Recorder. What one object has already committed is
remembered in memory (row created, event keys, last phase written), so a steady stream of status
updates costs one guarded UPDATE each and nothing is written twice; after a restart everything is
re-sent once and the database's idempotence (ON CONFLICT DO NOTHING, the phase guard) absorbs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from taskaction_operator.controller.recording.patch_plan import PatchPlan, plan_patch
from taskaction_operator.controller.recording.recorder import Recorder, Work
from taskaction_operator.controller.recording.rows import action_row, event_row
from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, owner_reference
from taskaction_operator.crd.observe import InvalidTaskAction, Observation, observe
from taskaction_operator.k8s import KubeOps
from taskaction_operator.k8s.errors import KubeError
from taskaction_operator.model import ActionId, ActionPhase, cr_name
from taskaction_operator.repo import Action, ActionEvent, PhaseUpdate

log = logging.getLogger(__name__)

#: Most actions whose place is remembered for the abort sweep (oldest forgotten first).
_PLACES_MAX = 500_000
#: Seconds before an ownerReference or terminal patch already planned for an object is planned again.
_RESEND_AFTER = 2.0

Warning_ = tuple[str, str]  # (reason, message) of a Warning Event
EventKey = tuple[int, int, int]
RowWork = Work[Action, ActionEvent, PhaseUpdate]


@dataclass(slots=True)
class _ObjectState:
    created: bool = False
    events: set[tuple[int, int, int]] = field(default_factory=set)
    last_update: tuple[int, int, int] | None = None
    promoted: bool = False
    parent_problem: str | None = None
    #: When an ownerReference / terminal patch was last planned (the reconciler's clock).
    owner_sent: float = -math.inf
    terminal_sent: float = -math.inf


@dataclass(frozen=True, slots=True)
class _Known:
    uid: str
    run: tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the handler does after recording: patch the object, post Warning Events."""

    plan: PatchPlan
    warnings: tuple[Warning_, ...] = ()
    committed: bool = True


class ActionReconciler:
    """Turns TaskAction bodies into committed rows and the object's patch plan."""

    def __init__(
        self,
        recorder: Recorder[Action, ActionEvent, PhaseUpdate],
        kube: KubeOps,
        *,
        guard: bool,
        parent_wait: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._recorder = recorder
        self._kube = kube
        self._guard = guard
        self._parent_wait = parent_wait
        self._clock = clock
        self._states: dict[str, _ObjectState] = {}
        self._known: dict[tuple[str, str], _Known] = {}
        self._parent_seen: dict[tuple[str, str], asyncio.Event] = {}
        self._orphans: dict[tuple[str, str], asyncio.Task[None]] = {}
        #: Where every action seen since start lives, deleted ones included (the abort sweep asks).
        self._places: OrderedDict[ActionId, tuple[str, str]] = OrderedDict()

    @property
    def tracked(self) -> int:
        return len(self._states)

    def locate(self, action_id: ActionId) -> tuple[str, str] | None:
        """(namespace, CR name) of an action this process has seen since it started, even if deleted."""
        return self._places.get(action_id)

    async def close(self) -> None:
        for task in list(self._orphans.values()):
            task.cancel()
        for task in list(self._orphans.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._orphans.clear()

    async def handle(self, body: Mapping[str, Any], *, deleted: bool) -> Outcome:
        """Record one watch event of one TaskAction; return what to patch and what to warn about."""
        try:
            obs = observe(body, deleted=deleted)
        except InvalidTaskAction as exc:
            return Outcome(PatchPlan(), (("InvalidTaskAction", f"not recorded: {exc}"),), committed=False)
        key = (obs.namespace, obs.name)
        self._index(obs, key, deleted)
        self._remember(obs.action_id, key)
        if obs.labelled_recorded:
            # Recorded earlier: ignored, but never left holding our finalizer.
            self._states.pop(obs.uid, None)
            return Outcome(PatchPlan(remove_guard=obs.deleting and self._has_guard(obs)))
        state = self._states.setdefault(obs.uid, _ObjectState())
        work, promote, event_keys, update_key = self._work(obs, state)
        warnings: list[Warning_] = []
        committed = True
        if len(work):
            try:
                await self._recorder.submit(work)
            except Exception as exc:  # permanent: bad data; the object is left unlabelled
                log.error("could not record %s/%s: %s", obs.namespace, obs.name, exc)
                warnings.append(("RecordFailed", f"the database refused this action's record: {exc}"))
                committed = False
        if committed:
            state.created = True
            state.events |= event_keys
            if update_key is not None:
                state.last_update = update_key
            state.promoted = state.promoted or promote
        parent_uid = await self._parent_uid(obs, state, warnings) if committed else None
        if deleted:
            self._states.pop(obs.uid, None)
        plan = plan_patch(obs, guard=self._guard, committed=committed, parent_uid=parent_uid)
        if not deleted:
            plan = self._without_repeats(plan, state)
        return Outcome(plan, tuple(warnings), committed)

    def _without_repeats(self, plan: PatchPlan, state: _ObjectState) -> PatchPlan:
        """Drop what was sent moments ago: events already in flight when a patch went out still show
        the object without it (they would plan it again: a second write). An ownerReference or a
        terminal patch (label, guard release) is planned again only after ``_RESEND_AFTER`` seconds;
        a guarded patch that lost its race is re-applied by kopf itself with the next event."""
        now = self._clock()
        owner = plan.owner_reference
        if owner is not None:
            if now - state.owner_sent < _RESEND_AFTER:
                owner = None
            else:
                state.owner_sent = now
        label, release = plan.label_recorded, plan.remove_guard
        if label:
            if now - state.terminal_sent < _RESEND_AFTER:
                label = release = False
            else:
                state.terminal_sent = now
        if owner is plan.owner_reference and label == plan.label_recorded:
            return plan
        return replace(plan, owner_reference=owner, label_recorded=label, remove_guard=release)

    def _remember(self, action_id: ActionId, place: tuple[str, str]) -> None:
        self._places[action_id] = place
        self._places.move_to_end(action_id)
        while len(self._places) > _PLACES_MAX:
            self._places.popitem(last=False)

    def forget(self, uid: str) -> None:
        self._states.pop(uid, None)

    # -- internals ---------------------------------------------------------------------------------
    @staticmethod
    def _has_guard(obs: Observation) -> bool:
        return RECORD_GUARD_FINALIZER in obs.finalizers

    def _index(self, obs: Observation, key: tuple[str, str], deleted: bool) -> None:
        if deleted:
            self._known.pop(key, None)
            return
        run = (obs.action_id.project, obs.action_id.domain, obs.action_id.run_name)
        if key not in self._known:
            self._known[key] = _Known(obs.uid, run)
            waiter = self._parent_seen.pop(key, None)
            if waiter is not None:
                waiter.set()

    def _work(
        self, obs: Observation, state: _ObjectState
    ) -> tuple[RowWork, bool, set[EventKey], EventKey | None]:
        work: RowWork = Work()
        if not state.created:
            work.actions.append(action_row(obs))
        promote = (
            obs.parent_id is not None
            and obs.parent != obs.action_id.name  # a self-reference is refused, not promoted
            and not state.promoted
            and not obs.deleting
        )
        if promote:
            assert obs.parent_id is not None
            # Upstream sends the parent's promotion without attempts or cache status, which zeroes
            # them; we keep the parent's own values (None: unchanged).
            work.updates.append(PhaseUpdate(obs.parent_id, ActionPhase.RUNNING, None, None))
        new_events = [ev for ev in obs.events if ev.key not in state.events]
        work.events.extend(event_row(obs, ev) for ev in new_events)
        update_key = None
        if obs.phase is not ActionPhase.UNSPECIFIED:
            attempts = max(obs.attempts, 1)
            update_key = (int(obs.phase), attempts, obs.cache_status)
            if update_key != state.last_update:
                work.updates.append(
                    PhaseUpdate(
                        obs.action_id,
                        obs.phase,
                        attempts,
                        obs.cache_status,
                        start_time=obs.created_at,
                        end_time=obs.end_time,
                    )
                )
        return work, promote, {ev.key for ev in new_events}, update_key

    async def _parent_uid(
        self, obs: Observation, state: _ObjectState, warnings: list[Warning_]
    ) -> str | None:
        parent_id = obs.parent_id
        if parent_id is None or obs.owner_references or obs.deleting:
            return None
        if parent_id.name == obs.action_id.name:
            self._report(
                state,
                warnings,
                "InvalidParent",
                f"spec.parentActionName {parent_id.name!r} names the action itself; no ownerReference set",
            )
            return None
        parent_name = cr_name(parent_id)
        known = await self._find(obs.namespace, parent_name)
        if known is None:
            self._report(
                state,
                warnings,
                "ParentNotFound",
                f"parent TaskAction {parent_name} does not exist yet; retrying with backoff",
            )
            self._watch_for_parent(obs, parent_name)
            return None
        run = (obs.action_id.project, obs.action_id.domain, obs.action_id.run_name)
        if known.run != run:
            self._report(
                state,
                warnings,
                "InvalidParent",
                f"parent TaskAction {parent_name} belongs to run {'/'.join(known.run)}, "
                f"not {'/'.join(run)}; no ownerReference set",
            )
            return None
        return known.uid

    @staticmethod
    def _report(state: _ObjectState, warnings: list[Warning_], reason: str, message: str) -> None:
        if state.parent_problem != reason:
            state.parent_problem = reason
            warnings.append((reason, message))

    async def _find(self, namespace: str, name: str) -> _Known | None:
        known = self._known.get((namespace, name))
        if known is not None:
            return known
        body = await self._kube.get_taskaction(namespace, name)
        if body is None:
            return None
        spec = body.get("spec") or {}
        known = _Known(
            body["metadata"]["uid"],
            (spec.get("project", ""), spec.get("domain", ""), spec.get("runName", "")),
        )
        self._known.setdefault((namespace, name), known)
        return known

    def _watch_for_parent(self, obs: Observation, parent_name: str) -> None:
        key = (obs.namespace, obs.name)
        if key in self._orphans and not self._orphans[key].done():
            return
        self._orphans[key] = asyncio.create_task(
            self._adopt_when_parent_appears(obs, parent_name), name=f"orphan:{obs.namespace}/{obs.name}"
        )

    async def _adopt_when_parent_appears(self, obs: Observation, parent_name: str) -> None:
        """Retry the ownerReference with backoff (1 s doubling to 60 s) until the parent exists."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._parent_wait
        delay = 1.0
        pkey = (obs.namespace, parent_name)
        try:
            while loop.time() < deadline:
                waiter = self._parent_seen.setdefault(pkey, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), timeout=random.uniform(delay / 2, delay))
                delay = min(delay * 2, 60.0)
                try:
                    known = await self._find(obs.namespace, parent_name)
                    if known is None:
                        continue
                    run = (obs.action_id.project, obs.action_id.domain, obs.action_id.run_name)
                    if known.run != run:
                        return  # reported by the handler on the child's next event
                    await self._set_owner(obs, parent_name, known.uid)
                    return
                except KubeError as exc:
                    log.warning("ownerReference for %s/%s: %s; retrying", obs.namespace, obs.name, exc.reason)
            await self._kube.post_event(
                {"metadata": {"namespace": obs.namespace, "name": obs.name, "uid": obs.uid}},
                type_="Warning",
                reason="ParentNotFound",
                message=f"gave up waiting {self._parent_wait:.0f} s for parent TaskAction {parent_name}; "
                "no ownerReference set",
            )
        finally:
            self._orphans.pop((obs.namespace, obs.name), None)

    async def _set_owner(self, obs: Observation, parent_name: str, parent_uid: str) -> None:
        current = await self._kube.get_taskaction(obs.namespace, obs.name)
        if current is None or current["metadata"].get("uid") != obs.uid:
            return
        if current["metadata"].get("ownerReferences"):
            return
        await self._kube.json_patch_taskaction(
            obs.namespace,
            obs.name,
            [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": current["metadata"]["resourceVersion"],
                },
                {
                    "op": "add",
                    "path": "/metadata/ownerReferences",
                    "value": [owner_reference(parent_name, parent_uid)],
                },
            ],
        )
        log.info("set ownerReference of %s/%s to %s", obs.namespace, obs.name, parent_name)
