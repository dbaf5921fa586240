"""Adopting orphans: a child whose parent TaskAction did not exist yet at its event gets its
ownerReference later, from a background task that waits for the parent (woken when the watch reports
it, else retrying with backoff) and gives up with a Warning Event after ``parent_wait`` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from taskaction_operator.controller.recording.index import ActionIndex, Place
from taskaction_operator.crd.names import owner_reference
from taskaction_operator.crd.observe import Observation
from taskaction_operator.k8s import KubeOps
from taskaction_operator.k8s.errors import KubeError

log = logging.getLogger(__name__)


class OrphanAdopter:
    """One background task per orphaned child, until its parent shows up or the wait runs out."""

    def __init__(self, index: ActionIndex, kube: KubeOps, *, parent_wait: float = 600.0) -> None:
        self._index = index
        self._kube = kube
        self._parent_wait = parent_wait
        self._orphans: dict[Place, asyncio.Task[None]] = {}

    @property
    def pending(self) -> int:
        """Children still waiting for their ownerReference."""
        return sum(not task.done() for task in self._orphans.values())

    def adopt_later(self, obs: Observation, parent_name: str) -> None:
        """Set the child's ownerReference once ``parent_name`` exists (one task per child)."""
        key = (obs.namespace, obs.name)
        if key in self._orphans and not self._orphans[key].done():
            return
        self._orphans[key] = asyncio.create_task(
            self._adopt_when_parent_appears(obs, parent_name), name=f"orphan:{obs.namespace}/{obs.name}"
        )

    async def close(self) -> None:
        for task in list(self._orphans.values()):
            task.cancel()
        for task in list(self._orphans.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._orphans.clear()

    async def _adopt_when_parent_appears(self, obs: Observation, parent_name: str) -> None:
        """Retry the ownerReference with backoff (1 s doubling to 60 s) until the parent exists."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._parent_wait
        delay = 1.0
        try:
            while loop.time() < deadline:
                waiter = self._index.appeared(obs.namespace, parent_name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), timeout=random.uniform(delay / 2, delay))
                delay = min(delay * 2, 60.0)
                try:
                    known = await self._index.find(obs.namespace, parent_name)
                    if known is None:
                        continue
                    if known.run != obs.action_id.run:
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
