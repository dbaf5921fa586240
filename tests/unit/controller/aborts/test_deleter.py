"""Finding an action's TaskAction for the abort sweep: this process's index first, then the cluster
by the action's labels (cluster-wide) or also by its CR name (namespace-scoped, where not found means
another operator's action)."""

from __future__ import annotations

from typing import Any

from taskaction_operator.controller.aborts.deleter import KubeDeleter
from taskaction_operator.model import ActionId

A1 = ActionId.of("p", "d", "r1", "a1")
SELECTOR = "flyte.org/project=p,flyte.org/domain=d,flyte.org/run=r1,flyte.org/action=a1"


class Places:
    def __init__(self, **seen: tuple[str, str]) -> None:
        self.seen = {ActionId.of("p", "d", "r1", k): v for k, v in seen.items()}

    def locate(self, action_id: ActionId) -> tuple[str, str] | None:
        return self.seen.get(action_id)


class Kube:
    """TaskActions by (namespace, name), each labelled as A1's."""

    def __init__(self, *objects: tuple[str, str]) -> None:
        self.objects = set(objects)
        self.selectors: list[tuple[str | None, str]] = []
        self.deleted: list[tuple[str, str]] = []
        self.events: list[tuple[str, str, str]] = []

    async def list_taskactions(self, namespace: str | None, selector: str) -> list[dict[str, Any]]:
        self.selectors.append((namespace, selector))
        return [
            {"metadata": {"namespace": ns, "name": name}}
            for ns, name in sorted(self.objects)
            if namespace in (None, ns)
        ]

    async def get_taskaction(self, namespace: str, name: str) -> dict[str, Any] | None:
        return (
            {"metadata": {"namespace": namespace, "name": name}}
            if (namespace, name) in self.objects
            else None
        )

    async def delete_taskaction(self, namespace: str, name: str) -> bool:
        self.deleted.append((namespace, name))
        return True

    async def post_event(self, obj: dict[str, Any], *, type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], type_, reason))


def deleter(kube: Kube, places: Places, *namespaces: str) -> KubeDeleter:
    return KubeDeleter(kube, places, namespaces)  # type: ignore[arg-type]


async def test_a_place_this_process_has_seen_is_used_without_listing() -> None:
    kube = Kube(("ns", "r1-a1"))
    assert await deleter(kube, Places(a1=("ns", "r1-a1"))).locate(A1) == [("ns", "r1-a1")]
    assert await deleter(Kube(), Places(a1=("ns", "r1-a1"))).locate(A1) == []
    assert kube.selectors == []


async def test_cluster_wide_it_lists_by_the_action_labels_and_not_found_means_gone() -> None:
    kube = Kube(("ns1", "r1-a1"))
    assert await deleter(kube, Places()).locate(A1) == [("ns1", "r1-a1")]
    assert kube.selectors == [(None, SELECTOR)]
    assert await deleter(Kube(), Places()).locate(A1) == []


async def test_namespace_scoped_it_also_looks_by_name_and_not_found_is_not_ours() -> None:
    kube = Kube(("ns2", "r1-a1"))
    assert await deleter(kube, Places(), "ns1", "ns2").locate(A1) == [("ns2", "r1-a1")]
    assert kube.selectors == [("ns1", SELECTOR), ("ns2", SELECTOR)]
    assert await deleter(Kube(("other", "r1-a1")), Places(), "ns1").locate(A1) is None


async def test_delete_exists_and_warn_go_to_the_object() -> None:
    kube = Kube(("ns", "r1-a1"))
    d = deleter(kube, Places())
    await d.delete("ns", "r1-a1")
    assert kube.deleted == [("ns", "r1-a1")]
    assert await d.exists("ns", "r1-a1") and not await d.exists("ns", "gone")
    await d.warn("ns", "r1-a1", "AbortGaveUp", "manual action needed")
    await d.warn("ns", "gone", "AbortGaveUp", "manual action needed")
    assert kube.events == [("r1-a1", "Warning", "AbortGaveUp")]
