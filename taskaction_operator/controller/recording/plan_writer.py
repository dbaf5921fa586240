"""Writing a plan that changes finalizers: one precise JSON patch (``PatchPlan.json_ops``), sent by the
operator itself rather than through kopf's patch functions, which always test the resourceVersion.

A resourceVersion test fails whenever anything at all was written since the body was read, and the
executor writes status all the time: every such failure was a rejected write and a second try. The
ops here test only the finalizer entries and lists they depend on, so they fail only when another
writer changed the finalizers meanwhile; then the object is read again and the ops are made anew
from what it holds now, a few times at most.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from taskaction_operator.controller.recording.patch_plan import PatchPlan
from taskaction_operator.k8s.errors import Invalid, KubeError

log = logging.getLogger(__name__)

#: Tries of a plan whose tests keep failing (another writer keeps changing the finalizers).
ATTEMPTS = 5


class PatchingKube(Protocol):
    async def json_patch_taskaction(
        self, namespace: str, name: str, ops: list[dict[str, Any]], *, status: bool = False
    ) -> dict[str, Any] | None: ...

    async def get_taskaction(self, namespace: str, name: str) -> dict[str, Any] | None: ...


async def write_plan(
    kube: PatchingKube,
    body: Mapping[str, Any],
    plan: PatchPlan,
    *,
    on_written: Callable[[PatchPlan], None],
    on_rejected: Callable[[PatchPlan], None],
    attempts: int = ATTEMPTS,
    reread: bool = False,
) -> bool:
    """Apply ``plan`` to the object ``body`` was read from; True once the object has the planned
    shape (written, or nothing left to write), False when it is gone, replaced (another uid), or the
    API server could not be reached (logged; the object's next event plans again). ``reread``: the
    caller knows ``body`` is older than a write of its own; the ops are made on the object read now."""
    meta = body.get("metadata") or {}
    namespace, name, uid = str(meta.get("namespace")), str(meta.get("name")), meta.get("uid")
    current: Mapping[str, Any] | None = body
    if reread:
        current = await _read_same(kube, namespace, name, uid)
        if current is None:
            return False
    for _ in range(attempts):
        assert current is not None
        ops = plan.json_ops(current)
        if not ops:
            return True
        try:
            written = await kube.json_patch_taskaction(namespace, name, ops)
        except Invalid:
            # A test failed: the finalizers changed since ``current`` was read.
            on_rejected(plan)
            current = await _read_same(kube, namespace, name, uid)
            if current is None:
                return False
            continue
        except KubeError as exc:
            log.warning("patching %s/%s failed: %s", namespace, name, exc)
            return False
        if written is None:
            return False
        on_written(plan)
        return True
    log.warning(
        "the finalizers of %s/%s kept changing; its next event plans the patch again", namespace, name
    )
    return False


async def _read_same(kube: PatchingKube, namespace: str, name: str, uid: Any) -> Mapping[str, Any] | None:
    """The object as the API server has it now; None when gone, replaced (another uid) or unreadable."""
    try:
        current = await kube.get_taskaction(namespace, name)
    except KubeError as exc:
        log.warning("could not read %s/%s to patch it: %s", namespace, name, exc)
        return None
    if current is None or (current.get("metadata") or {}).get("uid") != uid:
        return None
    return current
