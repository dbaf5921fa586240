"""Release the record guard of TaskActions whose end is recorded but that still carry it.

The recorded label takes an object out of the watch (a server-side label selector), so a guard left
on a labelled object is never seen again: after a rollout with mixed ``TASKACTION_RECORD_GUARD``
settings, or a label patch that won its race against the guard's release. Such objects are complete
in the database; holding them only blocks their deletion (and their namespace's). A paged list of
labelled objects, every ``interval`` seconds, on the sweep leader only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from taskaction_operator.controller.recording.expiry import on_leader_every
from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, RECORDED_SELECTOR
from taskaction_operator.k8s import KubeOps

log = logging.getLogger(__name__)


async def release_recorded_guards(kube: KubeOps, namespaces: tuple[str, ...]) -> int:
    """One pass: the guard taken off every recorded TaskAction still carrying it; how many."""
    released = 0
    for ns in namespaces or (None,):
        async for obj in kube.holding(RECORD_GUARD_FINALIZER, ns, RECORDED_SELECTOR):
            meta = obj["metadata"]
            if await kube.remove_finalizer(meta["namespace"], meta["name"], RECORD_GUARD_FINALIZER):
                released += 1
                log.info("released the guard of recorded TaskAction %s/%s", meta["namespace"], meta["name"])
    return released


async def sweep_recorded_guards(
    kube: KubeOps, namespaces: tuple[str, ...], interval: float, is_leader: Callable[[], bool]
) -> None:
    """:func:`release_recorded_guards` every ``interval`` seconds while this replica leads, forever."""
    await on_leader_every(
        interval,
        is_leader,
        lambda: release_recorded_guards(kube, namespaces),
        "release guards of recorded TaskActions",
    )
