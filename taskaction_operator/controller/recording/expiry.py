"""Delete recorded, finished TaskActions from the cluster once a grace period has passed (off by
default: ``TASKACTION_DELETE_RECORDED_AFTER``), so that etcd does not grow with every run forever,
as Tekton's pruner and Flyte's executor garbage collection do. The record in the database stays.

On the sweep leader, every pass: the unrecorded TaskActions are listed first (the runs still busy),
then the recorded ones; a recorded action whose end is older than the grace period is deleted by
its uid (background propagation: its recorded children go with it through their ownerReferences),
unless its run still has an action that is not recorded. Only the topmost expired action of a run
is deleted; a child whose parent is also expired goes with the parent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from taskaction_operator.crd.names import RECORDED_SELECTOR, UNRECORDED_SELECTOR
from taskaction_operator.crd.observe import InvalidTaskAction, Observation, observe
from taskaction_operator.k8s import KubeOps

log = logging.getLogger(__name__)

#: A run in a namespace: (namespace, project, domain, run name).
RunKey = tuple[str, str, str, str]


def _run_key(o: Observation) -> RunKey:
    return (o.namespace, o.action_id.project, o.action_id.domain, o.action_id.run_name)


async def _observed(kube: KubeOps, namespace: str | None, selector: str) -> list[Observation]:
    out: list[Observation] = []
    async for page in kube.taskaction_pages(namespace, selector):
        for body in page:
            try:
                out.append(observe(body))
            except InvalidTaskAction:
                continue
    return out


async def delete_expired(
    kube: KubeOps, namespaces: tuple[str, ...], after: float, now: datetime | None = None
) -> int:
    """One pass: delete the recorded TaskActions that ended more than ``after`` seconds ago and whose
    run has nothing unrecorded left; how many deletions were issued."""
    now = now or datetime.now(UTC)
    deleted = 0
    for ns in namespaces or (None,):
        busy = {_run_key(o) for o in await _observed(kube, ns, UNRECORDED_SELECTOR)}
        expired: dict[RunKey, dict[str, Observation]] = {}
        for o in await _observed(kube, ns, RECORDED_SELECTOR):
            ended = o.end_time if o.phase.is_terminal() and not o.deleting else None
            if ended is not None and (now - ended).total_seconds() >= after and _run_key(o) not in busy:
                expired.setdefault(_run_key(o), {})[o.action_id.name] = o
        for run in expired.values():
            for o in run.values():
                if o.parent is not None and o.parent in run:
                    continue  # goes with its parent
                if await kube.delete_taskaction(o.namespace, o.name, uid=o.uid):
                    deleted += 1
    if deleted:
        log.info("deleted %d recorded TaskAction(s) that ended more than %.0f s ago", deleted, after)
    return deleted


async def on_leader_every(
    interval: float, is_leader: Callable[[], bool], one_pass: Callable[[], Awaitable[object]], what: str
) -> None:
    """``one_pass()`` every ``interval`` seconds while this replica leads, forever; a failed pass is
    logged (one line) and the next one tries again."""
    while True:
        if is_leader():
            try:
                await one_pass()
            except Exception as exc:
                log.warning("could not %s: %s", what, exc)
        await asyncio.sleep(interval)
