"""The operator's own changes to one TaskAction after an observation was committed: the ownerReference
and record-guard finalizer on first sight (nothing, for an object created with both: by our actions
client, or through the admission webhook), the recorded label and the guard's release at the end."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, RECORDED_LABEL, is_recorded, owner_reference
from taskaction_operator.crd.observe import Observation, phase_from_conditions
from taskaction_operator.crd.shards import SHARD_LABEL
from taskaction_operator.k8s.json_patch import (
    finalizer_addition_ops,
    finalizer_removal_ops,
    finalizers_as_read,
)
from taskaction_operator.model import cr_name


@dataclass(frozen=True, slots=True)
class PatchPlan:
    """The operator's own changes to one TaskAction: one merge patch, or one precise JSON patch."""

    owner_reference: Mapping[str, Any] | None = None
    add_guard: bool = False
    remove_guard: bool = False
    label_recorded: bool = False
    #: The ``flyte.org/record-shard`` value to add (sharded recording; only beside a first-sight
    #: change, never a write of its own).
    shard_label: str | None = None

    def __bool__(self) -> bool:
        return bool(self.owner_reference or self.add_guard or self.remove_guard or self.label_recorded)

    @property
    def touches_finalizers(self) -> bool:
        """Finalizers are a list others write too: the patch must test the entries it depends on."""
        return self.add_guard or self.remove_guard

    def as_merge_patch(self) -> dict[str, Any]:
        """The plan as a JSON merge patch, for plans that leave finalizers alone: labels merge, and the
        ownerReference is set once on an object that has none (upstream replaces the list too), so no
        test is needed and the patch cannot conflict with the executor's writes."""
        if self.touches_finalizers:
            raise ValueError("a plan that changes finalizers needs a precise JSON patch (json_ops)")
        meta: dict[str, Any] = {}
        if self.owner_reference is not None:
            meta["ownerReferences"] = [dict(self.owner_reference)]
        labels: dict[str, str] = {}
        if self.label_recorded:
            labels[RECORDED_LABEL] = "true"
        if self.shard_label is not None:
            labels[SHARD_LABEL] = self.shard_label
        if labels:
            meta["labels"] = labels
        return {"metadata": meta} if meta else {}

    def json_ops(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The plan as RFC 6902 operations on ``body`` (the object as last read), testing exactly what
        they depend on and nothing else: never the resourceVersion, so the executor's status writes,
        which change neither finalizers nor labels, can never make it fail. Empty when ``body``
        already has the planned shape.

        - releasing the guard tests the guard's entry at its index, then removes that index (as
          ``KubeOps.remove_finalizer``): another writer's finalizer is never removed;
        - a plan that should release the guard of a body that does not show it (a guard added after
          this reading: the first-sight patch may have landed after it) tests the whole finalizer
          list as read, so the label is never set while a guard it did not see stays on;
        - adding the guard tests the list it extends (``null``: still absent), so an entry written
          meanwhile is never lost and the guard is never added twice; it is added only to a body
          still unfinished (not terminal, not labelled, not deleting);
        - the label is one key added to the labels map (others' labels untouched), and so is the shard
          label, added only beside another change (an object already created with the guard and
          its ownerReference is not patched for it).
        A failed test answers 422: the caller reads the object again and asks for the ops anew.
        """
        meta = body.get("metadata") or {}
        ops: list[dict[str, Any]] = []
        if self.owner_reference is not None and not meta.get("ownerReferences"):
            ops.append(
                {"op": "add", "path": "/metadata/ownerReferences", "value": [dict(self.owner_reference)]}
            )
        raw_finalizers = meta.get("finalizers")
        finalizers = list(raw_finalizers or [])
        if self.remove_guard:
            if RECORD_GUARD_FINALIZER in finalizers:
                ops += finalizer_removal_ops(finalizers, RECORD_GUARD_FINALIZER)
            elif self.label_recorded:
                ops.append(finalizers_as_read(raw_finalizers))
        elif self.add_guard and RECORD_GUARD_FINALIZER not in finalizers and not _finished_by_now(body):
            ops += finalizer_addition_ops(raw_finalizers, RECORD_GUARD_FINALIZER)
        labels = meta.get("labels")
        wanted: dict[str, str] = {}
        if self.label_recorded and (labels or {}).get(RECORDED_LABEL) != "true":
            wanted[RECORDED_LABEL] = "true"
        if self.shard_label is not None and SHARD_LABEL not in (labels or {}) and ops:
            wanted[SHARD_LABEL] = self.shard_label
        if wanted and labels:
            ops += [
                {"op": "add", "path": f"/metadata/labels/{_pointer(key)}", "value": value}
                for key, value in wanted.items()
            ]
        elif wanted:
            ops += [
                {"op": "test", "path": "/metadata/labels", "value": None},
                {"op": "add", "path": "/metadata/labels", "value": wanted},
            ]
        if all(op["op"] == "test" for op in ops):
            return []
        return ops


def _pointer(key: str) -> str:
    """A label key as a JSON pointer segment (RFC 6901: "~" → "~0", "/" → "~1")."""
    return key.replace("~", "~0").replace("/", "~1")


def _finished_by_now(body: Mapping[str, Any]) -> bool:
    """Whether the body the guard would be added to is deleting, labelled recorded or terminal.

    The one reading of a body outside ``crd.observe``, and only for a plan that adds the guard: after a
    failed test the plan is asked for its ops again on the object as read again, which may be newer
    than the observation the plan came from (that one was unfinished, or no guard would be planned).
    """
    if (body.get("metadata") or {}).get("deletionTimestamp") or is_recorded(body):
        return True
    return phase_from_conditions((body.get("status") or {}).get("conditions")).is_terminal()


def plan_patch(
    obs: Observation,
    *,
    guard: bool,
    committed: bool,
    parent_uid: str | None,
    shard_label: str | None = None,
) -> PatchPlan:
    """What to change on the object after its observation was committed to the database.

    - a child without ownerReferences gets one to its parent (when the parent's uid is known);
    - with the record guard on, a live non-terminal object carries the guard finalizer;
    - once the terminal phase is committed, the recorded label is set and the guard released in
      the same patch (nothing is left to guard); with the guard on, that patch is planned as a
      release even when this observation shows no guard (one may have been added after it: the
      ops then test that the finalizers are still as read);
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
    add_guard = guard and not has_guard and not obs.phase.is_terminal()
    return PatchPlan(
        owner_reference=owner,
        add_guard=add_guard,
        remove_guard=terminal_done and (has_guard or guard),
        label_recorded=terminal_done,
        # Only beside a first-sight change: an object created with everything (our actions client)
        # is not patched for the label alone; its owner finds it unlabelled all the same.
        shard_label=shard_label if (owner is not None or add_guard) and not obs.shard_labelled else None,
    )


def _parent_cr_name(obs: Observation) -> str:
    parent_id = obs.parent_id
    assert parent_id is not None
    return cr_name(parent_id)
