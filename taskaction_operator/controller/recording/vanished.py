"""Record the TaskActions that vanished in a watch gap.

kopf relists after its watch expires (410 Gone, e.g. after etcd compaction or an API server restart
while the operator was paused or partitioned) and, like every informer, invents no DELETED events for
the objects that went away meanwhile. With the record guard on, nothing can go away unseen (the
guard holds every unfinished object until its end is recorded); with it off, such an action would
stay unfinished in the record forever. Upstream's informer has the same gap (``actions/k8s/
client.go``, a watch restarted from a fresh list); here it is closed:

every ``interval`` seconds the sweep leader lists the unrecorded TaskActions of each namespace that
holds an action it tracks as unfinished; a tracked object missing from that list and confirmed gone
by a GET (not found, or the name now belongs to another uid) is recorded ABORTED, as a deletion of an
unfinished TaskAction is. The GET makes the list's timing harmless: an object created, or labelled
recorded, after the list is found by it and left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from taskaction_operator.controller.recording.expiry import on_leader_every
from taskaction_operator.controller.recording.reconciler import ActionReconciler
from taskaction_operator.crd.names import UNRECORDED_SELECTOR
from taskaction_operator.k8s import KubeOps

log = logging.getLogger(__name__)


async def record_vanished(kube: KubeOps, reconciler: ActionReconciler) -> int:
    """One pass; how many vanished objects it recorded."""
    by_namespace: dict[str, dict[str, str]] = {}
    for uid, (namespace, name) in reconciler.unfinished().items():
        by_namespace.setdefault(namespace, {})[uid] = name
    recorded = 0
    for namespace, tracked in by_namespace.items():
        present: set[str] = set()
        async for page in kube.taskaction_pages(namespace, UNRECORDED_SELECTOR):
            present.update(str(o["metadata"].get("uid") or "") for o in page)
        for uid, name in tracked.items():
            if uid in present:
                continue
            obj = await kube.get_taskaction(namespace, name)
            if obj is not None and obj["metadata"].get("uid") == uid:
                continue  # created or labelled after the list: not gone
            if await reconciler.handle_vanished(uid):
                recorded += 1
                log.warning(
                    "TaskAction %s/%s (uid %s) is gone with no deletion seen (a watch gap); recorded ABORTED",
                    namespace,
                    name,
                    uid,
                )
    return recorded


async def sweep_vanished(
    kube: KubeOps, reconciler: ActionReconciler, interval: float, is_leader: Callable[[], bool]
) -> None:
    """:func:`record_vanished` every ``interval`` seconds while this replica leads, forever."""
    await on_leader_every(
        interval, is_leader, lambda: record_vanished(kube, reconciler), "record vanished TaskActions"
    )
