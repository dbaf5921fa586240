"""Deleting recorded TaskActions after the grace period (``TASKACTION_DELETE_RECORDED_AFTER``): only
runs recorded through and through, only the topmost expired action of each (its children go with
it), by uid; nothing recent, nothing of a run with an action still unrecorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from taskaction_operator.controller.recording.expiry import delete_expired
from taskaction_operator.crd.names import RECORDED_LABEL, RECORDED_SELECTOR, UNRECORDED_SELECTOR
from tests.factories import taskaction_body

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def action(
    name: str, parent: str | None, *, run: str = "r1", ended: timedelta | None, ns: str = "ns"
) -> dict[str, Any]:
    """A TaskAction that ended ``ended`` before NOW (recorded), or ``None``: still running (unrecorded)."""
    if ended is None:
        return taskaction_body(name, parent, run=run, namespace=ns, uid=f"uid-{run}-{name}")
    at = (NOW - ended).strftime("%Y-%m-%dT%H:%M:%SZ")
    cond = {"type": "Succeeded", "status": "True", "reason": "Completed", "lastTransitionTime": at}
    return taskaction_body(
        name, parent, run=run, namespace=ns, uid=f"uid-{run}-{name}", conditions=[cond],
        labels={RECORDED_LABEL: "true"},
    )  # fmt: skip


class Kube:
    """Lists by the two selectors the pass uses (in pages of two); records deletions."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = list(objects)
        self.deleted: list[tuple[str, str, str | None]] = []
        self.listed: list[tuple[str | None, str]] = []

    async def taskaction_pages(
        self, namespace: str | None = None, label_selector: str = ""
    ) -> AsyncIterator[list[dict[str, Any]]]:
        self.listed.append((namespace, label_selector))
        want = {RECORDED_SELECTOR: True, UNRECORDED_SELECTOR: False}[label_selector]
        found = [
            o for o in self.objects
            if (o["metadata"].get("labels", {}).get(RECORDED_LABEL) == "true") == want
            and namespace in (None, o["metadata"]["namespace"])
        ]  # fmt: skip
        for i in range(0, len(found), 2):
            yield found[i : i + 2]

    async def delete_taskaction(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        self.deleted.append((namespace, name, uid))
        return True


async def test_an_expired_run_goes_by_its_root_alone_and_a_recent_one_stays() -> None:
    kube = Kube(
        action("a0", None, ended=timedelta(hours=3)),
        action("a1", "a0", ended=timedelta(hours=3)),
        action("a1-1", "a1", ended=timedelta(hours=4)),
        action("a0", None, run="r2", ended=timedelta(minutes=10)),
    )
    assert await delete_expired(kube, (), HOUR, now=NOW) == 1  # type: ignore[arg-type]
    assert kube.deleted == [("ns", "r1-a0", "uid-r1-a0")]


async def test_a_run_with_an_unrecorded_action_keeps_every_one_of_its_taskactions() -> None:
    kube = Kube(
        action("a0", None, ended=timedelta(days=2)),
        action("a1", "a0", ended=timedelta(days=2)),
        action("a2", "a0", ended=None),  # still running
    )
    assert await delete_expired(kube, (), HOUR, now=NOW) == 0  # type: ignore[arg-type]
    assert kube.deleted == []
    assert kube.listed[0] == (None, UNRECORDED_SELECTOR)  # the busy runs are known before any decision


async def test_expired_children_of_a_recent_parent_go_one_by_one_namespace_by_namespace() -> None:
    kube = Kube(
        action("a0", None, ended=timedelta(minutes=5), ns="a"),
        action("a1", "a0", ended=timedelta(hours=2), ns="a"),
        action("a1-1", "a1", ended=timedelta(hours=2), ns="a"),
        action("a2", "a0", ended=timedelta(hours=2), ns="a"),
        action("a0", None, ended=timedelta(hours=2), ns="b"),
    )
    assert await delete_expired(kube, ("a",), HOUR, now=NOW) == 2  # type: ignore[arg-type]
    assert sorted(kube.deleted) == [("a", "r1-a1", "uid-r1-a1"), ("a", "r1-a2", "uid-r1-a2")]
    assert {ns for ns, _ in kube.listed} == {"a"}
