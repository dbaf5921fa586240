"""The operator's own changes to one TaskAction after an observation was committed: the ownerReference
and record-guard finalizer on first sight, the recorded label and the guard's release at the end."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, RECORDED_LABEL, is_recorded, owner_reference
from taskaction_operator.crd.observe import Observation, phase_from_conditions
from taskaction_operator.model import cr_name


@dataclass(frozen=True, slots=True)
class PatchPlan:
    """The operator's own changes to one TaskAction, applied as one JSON patch."""

    owner_reference: Mapping[str, Any] | None = None
    add_guard: bool = False
    remove_guard: bool = False
    label_recorded: bool = False

    def __bool__(self) -> bool:
        return bool(self.owner_reference or self.add_guard or self.remove_guard or self.label_recorded)

    @property
    def touches_finalizers(self) -> bool:
        """Finalizers are a list others write too: only a resourceVersion-guarded patch is safe."""
        return self.add_guard or self.remove_guard

    def as_merge_patch(self) -> dict[str, Any]:
        """The plan as a JSON merge patch, for plans that leave finalizers alone: labels merge, and the
        ownerReference is set once on an object that has none (upstream replaces the list too), so no
        resourceVersion guard is needed and the patch cannot conflict with the executor's writes."""
        if self.touches_finalizers:
            raise ValueError("a plan that changes finalizers needs a guarded JSON patch")
        meta: dict[str, Any] = {}
        if self.owner_reference is not None:
            meta["ownerReferences"] = [dict(self.owner_reference)]
        if self.label_recorded:
            meta["labels"] = {RECORDED_LABEL: "true"}
        return {"metadata": meta} if meta else {}

    def apply(self, body: dict[str, Any]) -> None:
        """Mutate a body into the planned shape (idempotent: kopf diffs the result into a JSON patch).

        kopf calls this on the freshest body it knows, which may be newer than the observation the
        plan came from: when the guarded patch loses a race, kopf keeps it and applies it again with
        the object's next event. So the guard is only added to a body that is still unfinished
        (not terminal, not labelled, not deleting); a later terminal plan releases it in any case.
        """
        meta = body.setdefault("metadata", {})
        if self.owner_reference is not None and not meta.get("ownerReferences"):
            meta["ownerReferences"] = [dict(self.owner_reference)]
        finalizers = list(meta.get("finalizers") or [])
        if self.add_guard and RECORD_GUARD_FINALIZER not in finalizers and not _finished_by_now(body):
            meta["finalizers"] = [*finalizers, RECORD_GUARD_FINALIZER]
        if self.remove_guard and RECORD_GUARD_FINALIZER in finalizers:
            meta["finalizers"] = [f for f in finalizers if f != RECORD_GUARD_FINALIZER]
        if self.label_recorded:
            meta.setdefault("labels", {})[RECORDED_LABEL] = "true"


def _finished_by_now(body: Mapping[str, Any]) -> bool:
    """Whether the body kopf applies the plan to is deleting, labelled recorded or terminal.

    The one reading of a body outside ``crd.observe``, and only for a plan that adds the guard: kopf
    applies the plan to the body it holds at patch time, which after a lost race is a later event's
    (the observation the plan came from was unfinished, or no guard would have been planned).
    """
    if (body.get("metadata") or {}).get("deletionTimestamp") or is_recorded(body):
        return True
    return phase_from_conditions((body.get("status") or {}).get("conditions")).is_terminal()


def plan_patch(obs: Observation, *, guard: bool, committed: bool, parent_uid: str | None) -> PatchPlan:
    """What to change on the object after its observation was committed to the database.

    - a child without ownerReferences gets one to its parent (when the parent's uid is known);
    - with the record guard on, a live non-terminal object carries the guard finalizer;
    - once the terminal phase is committed, the recorded label is set and the guard released in
      the same patch (nothing is left to guard); with the guard on, that patch always checks the
      freshest body for the guard, since a guard may have been added after this observation;
    - a deleting object's guard is released once its end is committed.
    Nothing that depends on the database is planned unless ``committed``.
    """
    has_guard = RECORD_GUARD_FINALIZER in obs.finalizers
    if obs.deleting:
        # Only once its end is committed: while another finalizer runs, the end is not known yet.
        return PatchPlan(remove_guard=committed and has_guard and obs.phase.is_terminal())
    terminal_done = committed and obs.phase.is_terminal()
    owner = None
    if obs.parent is not None and not obs.owner_references and parent_uid:
        owner = owner_reference(_parent_cr_name(obs), parent_uid)
    return PatchPlan(
        owner_reference=owner,
        add_guard=guard and not has_guard and not obs.phase.is_terminal(),
        remove_guard=terminal_done and (has_guard or guard),
        label_recorded=terminal_done,
    )


def _parent_cr_name(obs: Observation) -> str:
    parent_id = obs.parent_id
    assert parent_id is not None
    return cr_name(parent_id)
