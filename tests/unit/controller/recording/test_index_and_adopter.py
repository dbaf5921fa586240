"""The index of where actions live, and the adoption of a child whose parent appears after it.

Kubernetes is an in-memory stand-in at the API boundary (GET, JSON patch, Event).
"""

from __future__ import annotations

import asyncio
from typing import Any

from taskaction_operator.controller.recording.adopter import OrphanAdopter
from taskaction_operator.controller.recording.index import ActionIndex, Known
from taskaction_operator.crd.names import owner_reference
from taskaction_operator.crd.observe import Observation, observe
from taskaction_operator.model import ActionId, RunId
from tests.factories import taskaction_body

RUN = RunId("p", "d", "r1")


def seen(action: str, parent: str | None = "a0", *, run: str = "r1", **meta: Any) -> Observation:
    return observe(taskaction_body(action, parent, run=run, uid=f"u-{action}", **meta))


class Kube:
    def __init__(self, *bodies: dict[str, Any]) -> None:
        self.bodies = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in bodies}
        self.reads: list[tuple[str, str]] = []
        self.patches: list[tuple[str, list[dict[str, Any]]]] = []
        self.events: list[tuple[str, str]] = []

    async def get_taskaction(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append((namespace, name))
        return self.bodies.get((namespace, name))

    async def json_patch_taskaction(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> None:
        self.patches.append((name, ops))

    async def post_event(self, obj: dict[str, Any], *, type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], reason))


def index_of(kube: Kube, **kw: Any) -> ActionIndex:
    return ActionIndex(kube, **kw)  # type: ignore[arg-type]


async def test_a_seen_action_is_located_even_after_its_deletion_and_the_oldest_is_forgotten() -> None:
    index = index_of(Kube(), places_max=2)
    index.saw(seen("a1"), deleted=False)
    index.saw(seen("a1"), deleted=True)
    assert index.locate(ActionId(RUN, "a1")) == ("ns", "r1-a1")
    index.saw(seen("a2"), deleted=False)
    index.saw(seen("a3"), deleted=False)
    assert index.locate(ActionId(RUN, "a1")) is None
    assert index.locate(ActionId(RUN, "a3")) == ("ns", "r1-a3")


async def test_find_answers_from_the_watch_else_reads_once_and_remembers() -> None:
    kube = Kube(taskaction_body("a0", None, uid="u-a0"))
    index = index_of(kube)
    index.saw(seen("a1"), deleted=False)
    assert await index.find("ns", "r1-a1") == Known("u-a1", RUN)
    assert await index.find("ns", "r1-a0") == Known("u-a0", RUN)
    assert await index.find("ns", "r1-a0") == Known("u-a0", RUN)
    assert kube.reads == [("ns", "r1-a0")]
    assert await index.find("ns", "r1-missing") is None
    index.saw(seen("a1"), deleted=True)
    await index.find("ns", "r1-a1")
    assert kube.reads[-1] == ("ns", "r1-a1"), "a DELETED object is no parent in memory"


async def test_an_orphan_is_adopted_as_soon_as_the_watch_reports_its_parent() -> None:
    child = taskaction_body("a1", "a0", uid="u-a1", resourceVersion="5")
    kube = Kube(child)
    index = index_of(kube)
    adopter = OrphanAdopter(index, kube, parent_wait=30.0)  # type: ignore[arg-type]
    adopter.adopt_later(seen("a1"), "r1-a0")
    adopter.adopt_later(seen("a1"), "r1-a0")  # one task per child
    await asyncio.sleep(0)  # the task is waiting for the parent
    index.saw(seen("a0", None), deleted=False)
    for _ in range(100):
        if kube.patches:
            break
        await asyncio.sleep(0.01)
    assert kube.patches == [
        (
            "r1-a1",
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "5"},
                {
                    "op": "add",
                    "path": "/metadata/ownerReferences",
                    "value": [owner_reference("r1-a0", "u-a0")],
                },
            ],
        )
    ]
    await adopter.close()


async def test_a_parent_of_another_run_is_not_adopted_and_a_missing_one_is_given_up_with_a_warning() -> None:
    kube = Kube(taskaction_body("a1", "a0", uid="u-a1", resourceVersion="5"))
    index = index_of(kube)
    kube.bodies[("ns", "r1-a0")] = taskaction_body("a0", None, run="r2", uid="u-r2-a0")  # of run r2
    other_run = OrphanAdopter(index, kube, parent_wait=0.5)  # type: ignore[arg-type]
    await other_run._adopt_when_parent_appears(seen("a1"), "r1-a0")
    assert kube.patches == [] and kube.events == []

    gone = OrphanAdopter(index_of(Kube()), kube, parent_wait=0.0)  # type: ignore[arg-type]
    await gone._adopt_when_parent_appears(seen("a1"), "r1-a0")
    assert kube.events == [("r1-a1", "ParentNotFound")]
