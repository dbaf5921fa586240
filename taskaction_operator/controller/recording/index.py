"""Where each TaskAction this process has seen lives: an in-memory index fed by the watch.

Two maps. ``(namespace, CR name)`` → uid and run, for the parent of a child: its ownerReference
needs the parent's uid, and a parent of another run is refused. Every event refreshes an entry; the
uid a child's ownerReference will carry is read from the API first (``read``), since a parent
deleted and created again under the same name may have left a stale entry. And action →
``(namespace, CR name)``, deleted ones included, for the abort sweep, bounded (oldest forgotten
first). Whoever waits for a TaskAction to show up (a child waiting for its parent) is woken when the
watch first reports it."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from taskaction_operator.crd.observe import Observation
from taskaction_operator.k8s import KubeOps
from taskaction_operator.model import ActionId, RunId

#: Most actions whose place is remembered for the abort sweep (oldest forgotten first).
PLACES_MAX = 500_000

Place = tuple[str, str]  # (namespace, CR name)


@dataclass(frozen=True, slots=True)
class Known:
    """A TaskAction as far as its children need it."""

    uid: str
    run: RunId


class ActionIndex:
    """Namespace, CR name and uid of every action seen since start."""

    def __init__(self, kube: KubeOps, *, places_max: int = PLACES_MAX) -> None:
        self._kube = kube
        self._places_max = places_max
        self._known: dict[Place, Known] = {}
        self._appeared: dict[Place, asyncio.Event] = {}
        self._places: OrderedDict[ActionId, Place] = OrderedDict()

    def saw(self, obs: Observation, *, deleted: bool) -> None:
        """Index one watch event's object (a DELETED event takes it out of the parents' map)."""
        place = (obs.namespace, obs.name)
        if deleted:
            self._known.pop(place, None)
        else:
            # Every event refreshes the entry: a parent deleted and created again under the same name
            # (its DELETED event missed, e.g. across a relist) must not keep its old uid here.
            self._known[place] = Known(obs.uid, obs.action_id.run)
            waiter = self._appeared.pop(place, None)
            if waiter is not None:
                waiter.set()
        self._places[obs.action_id] = place
        self._places.move_to_end(obs.action_id)
        while len(self._places) > self._places_max:
            self._places.popitem(last=False)

    def locate(self, action_id: ActionId) -> Place | None:
        """(namespace, CR name) of an action this process has seen since it started, even if deleted."""
        return self._places.get(action_id)

    def cached(self, namespace: str, name: str) -> tuple[str, RunId] | None:
        """(uid, run) of ``namespace/name`` as the watch last reported it, without an API call (the
        admission webhook's lookup: it must answer at once); None when not seen or deleted."""
        known = self._known.get((namespace, name))
        return None if known is None else (known.uid, known.run)

    async def find(self, namespace: str, name: str) -> Known | None:
        """The TaskAction ``namespace/name`` from the index, else from the API (None: it does not exist)."""
        known = self._known.get((namespace, name))
        if known is not None:
            return known
        return await self.read(namespace, name)

    async def read(self, namespace: str, name: str) -> Known | None:
        """The TaskAction ``namespace/name`` as the API server has it now (None: it does not exist);
        the index is corrected to match. The uid an ownerReference will carry comes from here: an
        ownerReference to a uid that no longer exists gets the child garbage-collected."""
        body = await self._kube.get_taskaction(namespace, name)
        if body is None:
            self._known.pop((namespace, name), None)
            return None
        spec = body.get("spec") or {}
        known = Known(
            body["metadata"]["uid"],
            RunId(spec.get("project", ""), spec.get("domain", ""), spec.get("runName", "")),
        )
        self._known[(namespace, name)] = known
        return known

    def appeared(self, namespace: str, name: str) -> asyncio.Event:
        """Set once the watch first reports ``namespace/name`` (one event per name until then)."""
        return self._appeared.setdefault((namespace, name), asyncio.Event())
