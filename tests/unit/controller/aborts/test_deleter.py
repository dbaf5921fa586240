"""Finding an action's TaskAction for the abort sweep: this process's index first, then the cluster
by the action's labels (cluster-wide) or also by its CR name (namespace-scoped, where not found means
another operator's action). Only an object whose spec names the action is ever taken for it (CR
names collide: the same run and action in two projects, or run ``x`` + action ``y-z`` against run
``x-y`` + action ``z``), and it is deleted by its uid (``preconditions.uid``), so an object created
under the same name meanwhile is left alone."""

from __future__ import annotations

from typing import Any

from taskaction_operator.controller.aborts.deleter import KubeDeleter, Place
from taskaction_operator.model import ActionId

A1 = ActionId.of("p", "d", "r1", "a1")
SELECTOR = "flyte.org/project=p,flyte.org/domain=d,flyte.org/run=r1,flyte.org/action=a1"


class Places:
    def __init__(self, **seen: tuple[str, str]) -> None:
        self.seen = {ActionId.of("p", "d", "r1", k): v for k, v in seen.items()}

    def locate(self, action_id: ActionId) -> tuple[str, str] | None:
        return self.seen.get(action_id)


def obj(namespace: str, name: str, uid: str, action: ActionId = A1) -> dict[str, Any]:
    spec = {"project": action.project, "domain": action.domain, "runName": action.run_name}
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": uid},
        "spec": spec | {"actionName": action.name},
    }


class Kube:
    """TaskActions by (namespace, name); listing by A1's labels returns those whose spec is A1's."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}
        self.selectors: list[tuple[str | None, str]] = []
        self.deleted: list[tuple[str, str, str | None]] = []
        self.events: list[tuple[str, str, str]] = []

    async def list_taskactions(self, namespace: str | None, selector: str) -> list[dict[str, Any]]:
        self.selectors.append((namespace, selector))
        return [
            o
            for (ns, _), o in sorted(self.objects.items())
            if namespace in (None, ns) and o["spec"]["project"] == "p"
        ]

    async def get_taskaction(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((namespace, name))

    async def delete_taskaction(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        self.deleted.append((namespace, name, uid))
        current = self.objects.get((namespace, name))
        if current is None or (uid is not None and current["metadata"]["uid"] != uid):
            return False
        del self.objects[(namespace, name)]
        return True

    async def post_event(self, obj: dict[str, Any], *, type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], type_, reason))


def deleter(kube: Kube, places: Places, *namespaces: str) -> KubeDeleter:
    return KubeDeleter(kube, places, namespaces)  # type: ignore[arg-type]


async def test_a_place_this_process_has_seen_is_used_without_listing() -> None:
    kube = Kube(obj("ns", "r1-a1", "u1"))
    assert await deleter(kube, Places(a1=("ns", "r1-a1"))).locate(A1) == [Place("ns", "r1-a1", "u1")]
    assert await deleter(Kube(), Places(a1=("ns", "r1-a1"))).locate(A1) == []
    assert kube.selectors == []


async def test_cluster_wide_it_lists_by_the_action_labels_and_not_found_means_gone() -> None:
    kube = Kube(obj("ns1", "r1-a1", "u1"))
    assert await deleter(kube, Places()).locate(A1) == [Place("ns1", "r1-a1", "u1")]
    assert kube.selectors == [(None, SELECTOR)]
    assert await deleter(Kube(), Places()).locate(A1) == []


async def test_namespace_scoped_it_also_looks_by_name_and_not_found_is_not_ours() -> None:
    kube = Kube(obj("ns2", "r1-a1", "u2"))
    assert await deleter(kube, Places(), "ns1", "ns2").locate(A1) == [Place("ns2", "r1-a1", "u2")]
    assert kube.selectors == [("ns1", SELECTOR), ("ns2", SELECTOR)]
    assert await deleter(Kube(obj("other", "r1-a1", "u3")), Places(), "ns1").locate(A1) is None


async def test_an_object_of_another_action_under_the_same_name_is_never_taken_for_it() -> None:
    other_project = obj("ns", "r1-a1", "u-q", ActionId.of("q", "d", "r1", "a1"))
    dashed = ActionId.of("p", "d", "x-y", "z")  # cr name x-y-z, as run x's action y-z
    run_x_action_y_z = obj("ns", "x-y-z", "u-x", ActionId.of("p", "d", "x", "y-z"))
    kube = Kube(other_project, run_x_action_y_z)
    # Seen here before, then replaced by another action's object: A1's is gone.
    assert await deleter(kube, Places(a1=("ns", "r1-a1"))).locate(A1) == []
    # Namespace-scoped, by name: not A1's, so not ours to take.
    assert await deleter(kube, Places(), "ns").locate(A1) is None
    assert await deleter(kube, Places(), "ns").locate(dashed) is None
    assert kube.deleted == []


async def test_delete_goes_by_uid_and_a_replaced_object_counts_as_gone() -> None:
    kube = Kube(obj("ns", "r1-a1", "u1"))
    d = deleter(kube, Places())
    (place,) = await d.locate(A1) or []
    kube.objects[("ns", "r1-a1")] = obj("ns", "r1-a1", "u-new")  # re-created meanwhile
    await d.delete(place)
    assert kube.deleted == [("ns", "r1-a1", "u1")]
    assert ("ns", "r1-a1") in kube.objects, "the new object was left alone"
    assert not await d.exists(place)
    assert await d.exists(Place("ns", "r1-a1", "u-new"))


async def test_warn_goes_to_the_object_itself() -> None:
    kube = Kube(obj("ns", "r1-a1", "u1"))
    d = deleter(kube, Places())
    await d.warn(Place("ns", "r1-a1", "u1"), "AbortGaveUp", "manual action needed")
    await d.warn(Place("ns", "r1-a1", "u-other"), "AbortGaveUp", "manual action needed")
    await d.warn(Place("ns", "gone", "u9"), "AbortGaveUp", "manual action needed")
    assert kube.events == [("r1-a1", "Warning", "AbortGaveUp")]
