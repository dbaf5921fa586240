"""The abort sweep's hands in the cluster: find an action's TaskAction, delete it, confirm it is gone.

Only an object whose spec names the action is taken for it: CR names collide (the same run and
action in two projects of one namespace; run ``x`` + action ``y-z`` against run ``x-y`` + action
``z``, both ``x-y-z``). And it is deleted by uid (``preconditions.uid``), so an object created under
the same name between the look and the delete is left alone. DELIBERATE DIFFERENCE: upstream's
abort reconciler deletes by CR name (``runs/service/abort_reconciler.go``: ``processTask``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from taskaction_operator.crd.names import action_selector
from taskaction_operator.k8s import KubeOps
from taskaction_operator.model import ActionId, cr_name


class Place(NamedTuple):
    """One TaskAction of the action: where it is and which object it is."""

    namespace: str
    name: str
    uid: str


class KnownPlaces(Protocol):
    """Where this process has seen actions (the recording index)."""

    def locate(self, action_id: ActionId) -> tuple[str, str] | None: ...


def is_action(body: Mapping[str, Any], action_id: ActionId) -> bool:
    """The object's spec names ``action_id`` (its labels or name alone do not prove it)."""
    spec = body.get("spec") or {}
    return (spec.get("project"), spec.get("domain"), spec.get("runName"), spec.get("actionName")) == (
        action_id.project,
        action_id.domain,
        action_id.run_name,
        action_id.name,
    )


def _place(body: Mapping[str, Any]) -> Place:
    meta = body["metadata"]
    return Place(str(meta["namespace"]), str(meta["name"]), str(meta.get("uid") or ""))


class KubeDeleter:
    """Finds an action's TaskAction (this process's index first, then by labels) and deletes it."""

    def __init__(self, kube: KubeOps, places: KnownPlaces, namespaces: tuple[str, ...]) -> None:
        self._kube = kube
        self._places = places
        self._namespaces = namespaces

    async def locate(self, action_id: ActionId) -> list[Place] | None:
        """Where the action's TaskAction is; ``[]`` when it is gone; None when it is not ours.

        A cluster-wide operator sees everything, so not found means gone (upstream's rule). A
        namespace-scoped one only answers for actions it has seen or finds in its namespaces; the
        others belong to another operator sharing the database, and their requests are left alone.
        """
        seen = self._places.locate(action_id)
        if seen is not None:
            body = await self._kube.get_taskaction(*seen)
            return [_place(body)] if body is not None and is_action(body, action_id) else []
        selector = action_selector(action_id)
        places: list[Place] = []
        for ns in self._namespaces or (None,):
            places += [
                _place(b) for b in await self._kube.list_taskactions(ns, selector) if is_action(b, action_id)
            ]
        if not self._namespaces:
            return places
        name = cr_name(action_id)
        for ns in self._namespaces:
            if any(p.namespace == ns and p.name == name for p in places):
                continue
            body = await self._kube.get_taskaction(ns, name)
            if body is not None and is_action(body, action_id):
                places.append(_place(body))
        return places or None

    async def delete(self, place: Place) -> None:
        await self._kube.delete_taskaction(place.namespace, place.name, uid=place.uid or None)

    async def exists(self, place: Place) -> bool:
        return await self._current(place) is not None

    async def warn(self, place: Place, reason: str, message: str) -> None:
        body = await self._current(place)
        if body is not None:
            await self._kube.post_event(body, type_="Warning", reason=reason, message=message)

    async def _current(self, place: Place) -> dict[str, Any] | None:
        """The object at ``place`` if it is still the same object (uid)."""
        body = await self._kube.get_taskaction(place.namespace, place.name)
        if body is None or (place.uid and body["metadata"].get("uid") != place.uid):
            return None
        return body
