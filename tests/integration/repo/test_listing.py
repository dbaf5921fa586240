"""list_actions: filters and the allowlist, sorting, offset and keyset pages with tied created_at,
limit rules, scope filters including has-paused, and the proto request conversion."""

from __future__ import annotations

from typing import Any

import pytest
from flyteidl2.common import list_pb2

from taskaction_operator.model import ActionId, ActionPhase, ActionType
from taskaction_operator.repo import (
    KEYSET_SORT,
    Action,
    ActionRepo,
    Filter,
    FilterOp,
    InvalidArgumentError,
    ListActionsRequest,
    SortBy,
    TaskScope,
    TriggerScope,
)
from tests.integration.repo.helpers import action, at, run

pytestmark = pytest.mark.db
P = ActionPhase


def names(rows: list[Action]) -> list[str]:
    return [a.name for a in rows]


async def _all_pages(repo: ActionRepo, **req: Any) -> list[Action]:
    out: list[Action] = []
    offset = 0
    while True:
        page = await repo.list_actions(ListActionsRequest(offset=offset, **req))
        out += page.actions
        if not page.has_more:
            assert page.next_token == ""
            return out
        offset = int(page.next_token)


async def test_offset_pages_with_tied_created_at_are_total(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    # 23 actions, created in three instants: ties broken by the appended run_name, name tiebreakers
    rows = [action(ActionId(rid, f"n{i:02d}"), created_at=at(i % 3)) for i in range(23)]
    await repo.record_batch(actions=rows)
    got = await _all_pages(repo, run=rid, sort_by=[SortBy("created_at")], limit=5)
    assert names(got) == [r.name for r in sorted(rows, key=lambda r: (r.created_at, r.name))]
    desc = await _all_pages(repo, run=rid, sort_by=[SortBy("created_at", descending=True)], limit=4)
    assert names(desc) == [r.name for r in sorted(rows, key=lambda r: (-(r.created_at.timestamp()), r.name))]  # type: ignore[union-attr]


async def test_keyset_pages_with_tied_created_at(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    rows = [action(ActionId(rid, f"k{i:02d}"), created_at=at(i % 4)) for i in range(30)]
    await repo.record_batch(actions=rows)
    await repo.create_action(action(ActionId(run(project, "r2"), "k00"), created_at=at(0)))  # another run
    seen: list[Action] = []
    after = None
    pages = 0
    while True:
        page = await repo.list_actions(ListActionsRequest(run=rid, sort_by=KEYSET_SORT, after=after, limit=7))
        pages += 1
        seen += page.actions
        if not page.has_more:
            assert page.next_after is None
            break
        assert page.next_after == (page.actions[-1].created_at, page.actions[-1].name)
        after = page.next_after
    assert pages == 5
    assert names(seen) == [r.name for r in sorted(rows, key=lambda r: (r.created_at, r.name))]


async def test_keyset_rules(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    bad = [
        dict(after=(at(0), "x")),  # keyset needs exactly created_at ASC, name ASC
        dict(after=(at(0), "x"), sort_by=[SortBy("created_at"), SortBy("name", True)]),
        dict(after=(at(0), ""), sort_by=KEYSET_SORT),
        dict(after=(at(0), "x"), sort_by=KEYSET_SORT, offset=3),
    ]
    for req in bad:
        with pytest.raises(InvalidArgumentError):
            await repo.list_actions(ListActionsRequest(run=rid, **req))  # type: ignore[arg-type]


async def test_default_order_puts_non_terminal_first(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    await repo.record_batch(
        actions=[
            action(ActionId(rid, "done"), phase=P.SUCCEEDED, created_at=at(5)),
            action(ActionId(rid, "old"), phase=P.RUNNING, created_at=at(1)),
            action(ActionId(rid, "new"), phase=P.RUNNING, created_at=at(3)),
            action(ActionId(rid, "q"), phase=P.QUEUED, created_at=at(0)),
        ]
    )
    page = await repo.list_actions(ListActionsRequest(run=rid))
    assert names(page.actions) == ["q", "new", "old", "done"]  # phase ASC, created_at DESC


async def test_limit_rules_and_probe(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    await repo.record_batch(actions=[action(ActionId(rid, f"x{i:02d}"), created_at=at(i)) for i in range(60)])
    page = await repo.list_actions(ListActionsRequest(run=rid, limit=0))
    assert (len(page.actions), page.has_more, page.next_token) == (50, True, "50")  # 0 means 50
    page = await repo.list_actions(ListActionsRequest(run=rid, limit=10, offset=50))
    assert (len(page.actions), page.has_more, page.next_token) == (10, False, "")
    for limit in (-1, 201):
        with pytest.raises(InvalidArgumentError):
            await repo.list_actions(ListActionsRequest(run=rid, limit=limit))
    big = await repo.list_actions(ListActionsRequest(run=rid, limit=1000, max_limit=1000))
    assert len(big.actions) == 60 and not big.has_more
    with pytest.raises(InvalidArgumentError):
        await repo.list_actions(ListActionsRequest(run=rid, offset=-1))


async def test_filters(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    rows = [
        action(ActionId(rid, "a"), phase=P.RUNNING, function_name="train_model", task_name="wf.Train",
               action_type=ActionType.TASK, created_at=at(1), ended_at=at(1.1), trigger_revision=1),
        action(ActionId(rid, "b"), phase=P.SUCCEEDED, function_name="eval_model", task_name="wf.eval",
               action_type=ActionType.TRACE, created_at=at(2), ended_at=at(2.2)),
        action(ActionId(rid, "c"), phase=P.FAILED, function_name="train_data", task_name="wf.prep",
               action_type=ActionType.TASK, created_at=at(3), created_by_subject="alice"),
    ]  # fmt: skip
    await repo.record_batch(actions=rows)

    async def match(*filters: Filter) -> list[str]:
        page = await repo.list_actions(
            ListActionsRequest(run=rid, filters=filters, sort_by=[SortBy("created_at")])
        )
        return names(page.actions)

    F, Op = Filter.of, FilterOp
    assert await match(F("phase", Op.EQUAL, P.RUNNING)) == ["a"]
    assert await match(F("phase", Op.EQUAL, "6")) == ["c"]  # proto values are strings
    assert await match(F("phase", Op.EQUAL, "ACTION_PHASE_SUCCEEDED")) == ["b"]
    assert await match(F("phase", Op.NOT_EQUAL, 4)) == ["b", "c"]
    assert await match(F("phase", Op.GREATER_THAN, 4)) == ["b", "c"]
    assert await match(F("phase", Op.GREATER_THAN_OR_EQUAL, 5)) == ["b", "c"]
    assert await match(F("phase", Op.LESS_THAN, 6)) == ["a", "b"]
    assert await match(F("phase", Op.LESS_THAN_OR_EQUAL, 4)) == ["a"]
    assert await match(F("phase", Op.VALUE_IN, 4, 6)) == ["a", "c"]
    assert await match(F("function_name", Op.CONTAINS, "model")) == ["a", "b"]
    assert await match(F("function_name", Op.ENDS_WITH, "_data")) == ["c"]
    assert await match(F("function_name", Op.NOT_ENDS_WITH, "_model")) == ["c"]
    assert await match(F("task_name", Op.CONTAINS_CASE_INSENSITIVE, "TRAIN")) == ["a"]
    assert await match(F("task_name", Op.CONTAINS, "Train")) == ["a"]
    assert await match(F("created_at", Op.GREATER_THAN, at(1).isoformat())) == ["b", "c"]
    assert await match(F("created_at", Op.LESS_THAN_OR_EQUAL, at(2))) == ["a", "b"]
    assert await match(F("duration_ms", Op.GREATER_THAN, "150")) == ["b"]
    assert await match(F("action_type", Op.EQUAL, "ACTION_TYPE_TRACE")) == ["b"]
    assert await match(F("created_by_subject", Op.EQUAL, "alice")) == ["c"]
    assert await match(F("trigger_revision", Op.EQUAL, 1)) == ["a"]
    anded = await match(F("phase", Op.GREATER_THAN, 4), F("function_name", Op.CONTAINS, "train"))
    assert anded == ["c"]


async def test_filter_and_sort_validation(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    bad_filters = [
        Filter.of("name", FilterOp.EQUAL, "a"),  # not in the allowlist
        Filter.of("trigger_type", FilterOp.EQUAL, "x"),  # upstream's allowlist, no such column
        Filter.of("phase", FilterOp.EQUAL, 1, 2),  # one value only
        Filter.of("phase", FilterOp.VALUE_IN),
        Filter.of("phase", FilterOp.CONTAINS, "1"),  # LIKE on a number
        Filter.of("phase", FilterOp.EQUAL, "RUNNINGISH"),
        Filter.of("created_at", FilterOp.EQUAL, "yesterday"),
    ]
    for f in bad_filters:
        with pytest.raises(InvalidArgumentError):
            await repo.list_actions(ListActionsRequest(run=rid, filters=[f]))
    with pytest.raises(InvalidArgumentError):
        await repo.list_actions(ListActionsRequest(run=rid, sort_by=[SortBy("parent_action_name")]))


async def test_scope_filters(repo: ActionRepo, project: str) -> None:
    r1, r2, r3 = run(project, "r1"), run(project, "r2"), run(project, "r3")
    await repo.record_batch(
        actions=[
            action(r1.root, created_at=at(1), task_project=project, task_domain="development", task_name="wf",
                   task_version="v1", trigger_name="nightly", trigger_task_name="wf"),
            action(ActionId(r1, "c1"), created_at=at(2), phase=P.PAUSED),
            action(r2.root, created_at=at(3), task_project=project, task_domain="development", task_name="wf",
                   task_version="v2"),
            action(ActionId(r2, "c1"), created_at=at(4), phase=P.RUNNING),
            action(r3.root, created_at=at(5), phase=P.PAUSED),
            action(run(project, "r4", domain="prod").root, created_at=at(6)),
        ]
    )  # fmt: skip

    async def runs_of(**scope: Any) -> list[str]:
        page = await repo.list_actions(ListActionsRequest(sort_by=[SortBy("created_at")], **scope))
        return [f"{a.run_name}/{a.name}" for a in page.actions]

    assert await runs_of(project=(project, "development"), roots_only=True) == ["r1/a0", "r2/a0", "r3/a0"]
    assert await runs_of(project=(project, "prod")) == ["r4/a0"]
    assert await runs_of(run=r2) == ["r2/a0", "r2/c1"]
    assert await runs_of(project=(project, "development"), roots_only=True, has_paused_action=True) == [
        "r1/a0",
        "r3/a0",
    ]
    assert await runs_of(task=TaskScope(project, "development", "wf")) == ["r1/a0", "r2/a0"]
    assert await runs_of(task=TaskScope(project, "development", "wf", "v2")) == ["r2/a0"]
    assert await runs_of(trigger=TriggerScope(project, "development", "wf", "nightly")) == ["r1/a0"]


async def test_request_from_proto() -> None:
    req = ListActionsRequest.from_proto(
        list_pb2.ListRequest(
            limit=0,
            token="40",
            sort_by_fields=[list_pb2.Sort(key="created_at", direction=list_pb2.Sort.ASCENDING)],
            filters=[list_pb2.Filter(function=list_pb2.Filter.VALUE_IN, field="phase", values=["4", "5"])],
        ),
        roots_only=True,
    )
    assert (req.effective_limit, req.offset, req.roots_only) == (50, 40, True)
    assert list(req.sort_by) == [SortBy("created_at")]
    assert list(req.filters) == [Filter("phase", FilterOp.VALUE_IN, ("4", "5"))]
    deprecated = ListActionsRequest.from_proto(list_pb2.ListRequest(sort_by=list_pb2.Sort(key="phase")))
    assert list(deprecated.sort_by) == [SortBy("phase", descending=True)]  # anything but ASCENDING is DESC
    for bad in (
        list_pb2.ListRequest(token="x"),
        list_pb2.ListRequest(token="-5"),
        list_pb2.ListRequest(sort_by_fields=[list_pb2.Sort(key="name")]),
        list_pb2.ListRequest(filters=[list_pb2.Filter(function=list_pb2.Filter.EXISTS, field="phase")]),
    ):
        with pytest.raises(InvalidArgumentError):
            ListActionsRequest.from_proto(bad)
    with pytest.raises(InvalidArgumentError):
        _ = ListActionsRequest.from_proto(list_pb2.ListRequest(limit=201)).effective_limit
