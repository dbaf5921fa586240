"""Per-object recording logic: one observation in, rows committed, one patch plan out.

Called from the kopf handler, which kopf serialises per object; different objects run concurrently
and share database transactions through the Recorder. What one object has already committed is
remembered in memory (row created, event keys, last phase written), so a steady stream of status
updates costs one guarded UPDATE each and nothing is written twice; after a restart everything is
re-sent once and the database's idempotence (ON CONFLICT DO NOTHING, the phase guard) absorbs it.

Where each action lives is the index's job (``index.py``); a child whose parent does not exist yet
is handed to the adopter (``adopter.py``), which sets its ownerReference later.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from taskaction_operator.controller.recording.adopter import OrphanAdopter
from taskaction_operator.controller.recording.index import ActionIndex
from taskaction_operator.controller.recording.patch_plan import PatchPlan, plan_patch
from taskaction_operator.controller.recording.recorder import Recorder, Work
from taskaction_operator.controller.recording.rows import action_row, event_row, signalled_run_info
from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER
from taskaction_operator.crd.observe import Observation, observe, shared
from taskaction_operator.crd.shards import bucket_label
from taskaction_operator.k8s.errors import KubeError
from taskaction_operator.model import ActionId, ActionPhase, RunId, cr_name
from taskaction_operator.repo import Action, ActionEvent, PhaseUpdate

log = logging.getLogger(__name__)

#: Seconds before an ownerReference or terminal patch already planned for an object is planned again.
_RESEND_AFTER = 2.0

Warning_ = tuple[str, str]  # (reason, message) of a Warning Event
EventKey = tuple[int, int, int]
RowWork = Work[Action, ActionEvent, PhaseUpdate]


@dataclass(slots=True)
class _ObjectState:
    #: The action and parent this object was first recorded as.
    identity: tuple[ActionId, str | None] | None = None
    identity_warned: bool = False
    created: bool = False
    #: The event keys committed (a tuple: a few keys each, kept for every live object).
    events: tuple[tuple[int, int, int], ...] = ()
    last_update: tuple[int, int, int] | None = None
    promoted: bool = False
    parent_problem: str | None = None
    #: When an ownerReference / the guard / a terminal patch was last planned (the reconciler's clock).
    owner_sent: float = -math.inf
    guard_sent: float = -math.inf
    #: The ownerReference / the guard is on the object (our patch was accepted, or found it there):
    #: never planned again for it, however late the events still in flight that do not show it.
    owner_written: bool = False
    guard_written: bool = False
    terminal_sent: float = -math.inf
    #: Where the object lives (namespace, name), for :meth:`ActionReconciler.unfinished`.
    where: tuple[str, str] = ("", "")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the handler does after recording: patch the object, post Warning Events."""

    plan: PatchPlan
    warnings: tuple[Warning_, ...] = ()
    committed: bool = True


class ActionReconciler:
    """Turns observations of TaskActions into committed rows and the object's patch plan."""

    def __init__(
        self,
        recorder: Recorder[Action, ActionEvent, PhaseUpdate],
        index: ActionIndex,
        adopter: OrphanAdopter,
        *,
        guard: bool,
        shard_label: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._recorder = recorder
        self._index = index
        self._adopter = adopter
        self._guard = guard
        self._shard_label = shard_label
        self._clock = clock
        self._states: dict[str, _ObjectState] = {}

    @property
    def tracked(self) -> int:
        return len(self._states)

    async def handle(self, obs: Observation, *, deleted: bool) -> Outcome:
        """Record one watch event of one TaskAction (``deleted``: a DELETED event); return what to
        patch and what to warn about."""
        known = self._states.get(obs.uid)
        if known is not None and known.identity not in (None, (obs.action_id, obs.parent)):
            return self._refuse_changed_identity(obs, known, deleted=deleted)
        self._index.saw(obs, deleted=deleted)
        if obs.labelled_recorded:
            # Recorded earlier: ignored, but never left holding our finalizer.
            self._states.pop(obs.uid, None)
            return Outcome(PatchPlan(remove_guard=obs.deleting and RECORD_GUARD_FINALIZER in obs.finalizers))
        state = self._states.setdefault(obs.uid, _ObjectState())
        state.where = (obs.namespace, obs.name)
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
            state.identity = (obs.action_id, obs.parent)
            state.created = True
            state.events += tuple(k for k in event_keys if k not in state.events)
            if update_key is not None:
                state.last_update = update_key
            state.promoted = state.promoted or promote
        # An ownerReference already written, or sent moments ago, would be dropped from the plan
        # anyway: no parent lookup (a GET) for it.
        owner_pending = not state.owner_written and self._clock() - state.owner_sent >= _RESEND_AFTER
        parent_uid = await self._parent_uid(obs, state, warnings) if committed and owner_pending else None
        if deleted:
            self._states.pop(obs.uid, None)
        run = obs.action_id.run
        # Labelled already (the webhook's, or an earlier patch's): no hash per event for it.
        wants_label = self._shard_label and not obs.shard_labelled
        plan = plan_patch(
            obs,
            guard=self._guard,
            committed=committed,
            parent_uid=parent_uid,
            shard_label=bucket_label(run.project, run.domain, run.name) if wants_label else None,
        )
        if not deleted:
            plan = self._without_repeats(plan, state)
        return Outcome(plan, tuple(warnings), committed)

    def written(self, uid: str, plan: PatchPlan) -> None:
        """The object ``uid`` has what ``plan`` set (the handler's JSON patch was accepted, or the
        object was found with it): its ownerReference and guard are not planned again."""
        state = self._states.get(uid)
        if state is None:
            return
        state.owner_written = state.owner_written or plan.owner_reference is not None
        state.guard_written = state.guard_written or plan.add_guard

    def forget(self, keep: Callable[[RunId], bool]) -> int:
        """Drop the memory of every object whose run ``keep`` refuses (its shard went to another
        replica); how many were dropped. Objects never recorded (no identity yet) stay."""
        gone = [
            uid for uid, s in self._states.items() if s.identity is not None and not keep(s.identity[0].run)
        ]
        for uid in gone:
            del self._states[uid]
        return len(gone)

    def wrote_guard(self, uid: str) -> bool:
        """Whether this process's own patch put the guard on the object ``uid`` (an event older than
        that patch does not show it)."""
        state = self._states.get(uid)
        return state is not None and state.guard_written

    def unfinished(self) -> dict[str, tuple[str, str]]:
        """uid → (namespace, name) of every object recorded and not finished (its end not recorded,
        no DELETED event seen): the candidates of :func:`.vanished.record_vanished`."""
        return {
            uid: s.where
            for uid, s in self._states.items()
            if s.identity is not None
            and not (s.last_update is not None and ActionPhase(s.last_update[0]).is_terminal())
        }

    async def handle_vanished(self, uid: str) -> bool:
        """Record the end of an object that is gone from the cluster with no DELETED event seen (a
        watch gap: kopf relists after a 410 and invents no DELETED events for what vanished
        meanwhile): ABORTED, as a deletion of an unfinished TaskAction, from what was recorded of it.
        False when the object is not tracked (any more)."""
        state = self._states.get(uid)
        if state is None or state.identity is None:
            return False
        action_id, parent = state.identity
        namespace, name = state.where
        spec = {
            "project": action_id.project,
            "domain": action_id.domain,
            "runName": action_id.run_name,
            "actionName": action_id.name,
        }
        if parent is not None:
            spec["parentActionName"] = parent
        attempts = state.last_update[1] if state.last_update is not None else 1
        body = {
            "metadata": {"uid": uid, "namespace": namespace, "name": name},
            "spec": spec,
            "status": {"attempts": attempts},
        }
        await self.handle(observe(body, deleted=True), deleted=True)
        return True

    def _refuse_changed_identity(self, obs: Observation, state: _ObjectState, *, deleted: bool) -> Outcome:
        """The same object (uid) now names another action or parent: upstream's CRD allows the edit,
        ours refuses it. The record keeps what was recorded; nothing is written for the new identity,
        nothing is labelled, and a deleting object never keeps our finalizer."""
        assert state.identity is not None
        warnings: tuple[Warning_, ...] = ()
        if not state.identity_warned:
            state.identity_warned = True
            (was, was_parent), now = state.identity, (obs.action_id, obs.parent)
            warnings = (
                (
                    "IdentityChanged",
                    f"spec identity changed after creation (was {was}, parent {was_parent}; now {now[0]}, "
                    f"parent {now[1]}): the record keeps the first and this object is no longer recorded; "
                    "restore the spec, or delete the TaskAction and create a new one",
                ),
            )
        if deleted:
            self._states.pop(obs.uid, None)
        release = obs.deleting and RECORD_GUARD_FINALIZER in obs.finalizers
        return Outcome(PatchPlan(remove_guard=release), warnings, committed=False)

    def _without_repeats(self, plan: PatchPlan, state: _ObjectState) -> PatchPlan:
        """Drop what was sent moments ago: events already in flight when a patch went out still show
        the object without it (they would plan it again: a second write, or a rejected one, its test
        failing on the finalizers the first one changed). An ownerReference, the guard or a terminal
        patch (label, guard release) is planned again only after ``_RESEND_AFTER`` seconds, and an
        ownerReference or guard never again once the handler's patch of it was accepted (under a
        long backlog, events older than that window still show the object without them); a patch
        whose test failed is made again at once from a fresh read (``plan_writer``)."""
        now = self._clock()
        owner = plan.owner_reference
        if owner is not None:
            if state.owner_written or now - state.owner_sent < _RESEND_AFTER:
                owner = None
            else:
                state.owner_sent = now
        add_guard = plan.add_guard
        if add_guard:
            if state.guard_written or now - state.guard_sent < _RESEND_AFTER:
                add_guard = False
            else:
                state.guard_sent = now
        label, release = plan.label_recorded, plan.remove_guard
        if label:
            if now - state.terminal_sent < _RESEND_AFTER:
                label = release = False
            else:
                state.terminal_sent = now
        if owner is plan.owner_reference and label == plan.label_recorded and add_guard == plan.add_guard:
            return plan
        return replace(
            plan,
            owner_reference=owner,
            add_guard=add_guard,
            label_recorded=label,
            remove_guard=release,
            shard_label=plan.shard_label if owner is not None or add_guard else None,
        )

    def _work(
        self, obs: Observation, state: _ObjectState
    ) -> tuple[RowWork, bool, tuple[EventKey, ...], EventKey | None]:
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
            # And only a parent still below RUNNING moves (PhaseUpdate.promotion): a FAILED parent
            # stays FAILED when its unrecorded children are seen again after a restart.
            work.updates.append(PhaseUpdate(obs.parent_id, ActionPhase.RUNNING, None, None, promotion=True))
        new_events = [ev for ev in obs.events if ev.key not in state.events]
        work.events.extend(event_row(obs, ev) for ev in new_events)
        update_key = None
        if obs.phase is not ActionPhase.UNSPECIFIED:
            attempts = max(obs.attempts, 1)
            update_key = shared((int(obs.phase), attempts, obs.cache_status))
            if update_key != state.last_update:
                work.updates.append(
                    PhaseUpdate(
                        obs.action_id,
                        obs.phase,
                        attempts,
                        obs.cache_status,
                        start_time=obs.created_at,
                        end_time=obs.end_time,
                        detailed_info=signalled_run_info(obs),
                    )
                )
        return work, promote, tuple(dict.fromkeys(ev.key for ev in new_events)), update_key

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
        # Read, not the index: the uid must be the parent's current one (see ActionIndex.read).
        try:
            known = await self._index.read(obs.namespace, parent_name)
        except KubeError as exc:
            # After COMMIT: the rest of this event's patch (the guard, a terminal label) must not be
            # lost with the lookup; the ownerReference is retried in the background.
            log.warning(
                "parent lookup for %s/%s failed (%s); retrying it later", obs.namespace, obs.name, exc
            )
            self._adopter.adopt_later(obs, parent_name)
            return None
        if known is None:
            self._report(
                state,
                warnings,
                "ParentNotFound",
                f"parent TaskAction {parent_name} does not exist yet; retrying with backoff",
            )
            self._adopter.adopt_later(obs, parent_name)
            return None
        run = obs.action_id.run
        if known.run != run:
            self._report(
                state,
                warnings,
                "InvalidParent",
                f"parent TaskAction {parent_name} belongs to run {known.run}, not {run}; "
                "no ownerReference set",
            )
            return None
        return known.uid

    @staticmethod
    def _report(state: _ObjectState, warnings: list[Warning_], reason: str, message: str) -> None:
        if state.parent_problem != reason:
            state.parent_problem = reason
            warnings.append((reason, message))
