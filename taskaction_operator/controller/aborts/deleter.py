"""The abort sweep's hands in the cluster: find an action's TaskAction, delete it, confirm it is gone."""

from __future__ import annotations

from typing import Protocol

from taskaction_operator.crd.names import action_selector
from taskaction_operator.k8s import KubeOps
from taskaction_operator.model import ActionId, cr_name


class KnownPlaces(Protocol):
    """Where this process has seen actions (the recording index)."""

    def locate(self, action_id: ActionId) -> tuple[str, str] | None: ...


class KubeDeleter:
    """Finds an action's TaskAction (this process's index first, then by labels) and deletes it."""

    def __init__(self, kube: KubeOps, places: KnownPlaces, namespaces: tuple[str, ...]) -> None:
        self._kube = kube
        self._places = places
        self._namespaces = namespaces

    async def locate(self, action_id: ActionId) -> list[tuple[str, str]] | None:
        """Where the action's TaskAction is; ``[]`` when it is gone; None when it is not ours.

        A cluster-wide operator sees everything, so not found means gone (upstream's rule). A
        namespace-scoped one only answers for actions it has seen or finds in its namespaces; the
        others belong to another operator sharing the database, and their requests are left alone.
        """
        seen = self._places.locate(action_id)
        if seen is not None:
            return [seen] if await self.exists(*seen) else []
        selector = action_selector(action_id)
        places: list[tuple[str, str]] = []
        for ns in self._namespaces or (None,):
            for item in await self._kube.list_taskactions(ns, selector):
                places.append((item["metadata"]["namespace"], item["metadata"]["name"]))
        if not self._namespaces:
            return places
        name = cr_name(action_id)
        for ns in self._namespaces:
            if (ns, name) not in places and await self._kube.get_taskaction(ns, name) is not None:
                places.append((ns, name))
        return places or None

    async def delete(self, namespace: str, name: str) -> None:
        await self._kube.delete_taskaction(namespace, name)

    async def exists(self, namespace: str, name: str) -> bool:
        return await self._kube.get_taskaction(namespace, name) is not None

    async def warn(self, namespace: str, name: str, reason: str, message: str) -> None:
        body = await self._kube.get_taskaction(namespace, name)
        if body is not None:
            await self._kube.post_event(body, type_="Warning", reason=reason, message=message)
