"""Subscribe fan-out without a cluster: the update a TaskAction body becomes, and the bounded buffer
that coalesces by action instead of dropping when a subscriber falls behind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from taskaction_operator.client.updates import (
    ActionUpdate,
    SubscriberRegistry,
    Subscription,
    update_from_taskaction,
)
from taskaction_operator.model import ActionId, ActionPhase
from tests.factories import taskaction_body


def upd(action: str, phase: ActionPhase, parent: str = "a0", run: str = "r1") -> ActionUpdate:
    return ActionUpdate(ActionId.of("p", "d", run, action), parent, phase)


def body(conditions: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    return taskaction_body(
        namespace="flyte",
        resourceVersion="42",
        conditions=conditions,
        status=status,
        spec={"runOutputBase": "s3://b/p/d/r1/", "taskType": "python"},
    )


RUNNING = [{"type": "Progressing", "status": "True", "reason": "Executing"}]
FAILED = [
    {
        "type": "Failed",
        "status": "True",
        "reason": "PermanentFailure",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
]


# --- ActionUpdate from a body --------------------------------------------------------------------
def test_update_carries_identity_parent_phase_and_output_uri() -> None:
    u = update_from_taskaction(body(RUNNING, attempts=2))
    assert u is not None
    assert (str(u.action_id), u.parent, u.phase, u.task_type) == (
        "p/d/r1/a1",
        "a0",
        ActionPhase.RUNNING,
        "python",
    )
    assert u.output_uri.endswith("/p/d/r1/a1/2")
    assert u.key == "r1/a0"
    assert u.error is None and not u.is_deleted


def test_error_is_set_only_for_failed() -> None:
    err = {"code": "E1", "kind": "USER", "message": "boom"}
    failed = update_from_taskaction(body(FAILED, errorState=err))
    assert failed is not None and failed.error is not None and failed.error.message == "boom"
    running = update_from_taskaction(body(RUNNING, errorState=err))
    assert running is not None and running.error is None


def test_deleting_a_running_action_reads_aborted_and_a_failed_one_stays_failed() -> None:
    deleted_running = update_from_taskaction(body(RUNNING), deleted=True)
    assert deleted_running is not None and deleted_running.phase is ActionPhase.ABORTED
    assert deleted_running.is_deleted
    deleted_failed = update_from_taskaction(body(FAILED), deleted=True)
    assert deleted_failed is not None and deleted_failed.phase is ActionPhase.FAILED


def test_body_without_identity_gives_no_update() -> None:
    assert update_from_taskaction({"metadata": {"name": "x"}, "spec": {}}) is None


def test_root_update_is_keyed_run_slash_empty() -> None:
    b = body(RUNNING)
    b["spec"].update(actionName="a0", parentActionName=None)
    u = update_from_taskaction(b)
    assert u is not None and u.parent == "" and u.key == "r1/"


# --- the buffer ----------------------------------------------------------------------------------
def drain(sub: Subscription) -> list[ActionUpdate]:
    out = []
    while (u := sub.get_nowait()) is not None:
        out.append(u)
    return out


def test_within_the_bound_every_update_is_kept_in_order() -> None:
    sub = Subscription("r1", "a0", maxsize=4)
    for u in [upd("a1", ActionPhase.QUEUED), upd("a1", ActionPhase.RUNNING), upd("a2", ActionPhase.QUEUED)]:
        sub.push(u)
    assert [(u.action_id.name, u.phase) for u in drain(sub)] == [
        ("a1", ActionPhase.QUEUED), ("a1", ActionPhase.RUNNING), ("a2", ActionPhase.QUEUED)
    ]  # fmt: skip
    assert sub.coalesced == 0 and sub.overflows == 0


def test_overflow_coalesces_by_action_keeping_the_latest_and_counting_what_was_folded() -> None:
    sub = Subscription("r1", "a0", maxsize=3)
    sub.push(upd("a1", ActionPhase.QUEUED))
    sub.push(upd("a2", ActionPhase.QUEUED))
    sub.push(upd("a1", ActionPhase.RUNNING))
    sub.push(upd("a1", ActionPhase.SUCCEEDED))  # overflow: a1's three states fold into one slot
    sub.push(upd("a3", ActionPhase.QUEUED))
    got = drain(sub)
    assert [(u.action_id.name, u.phase, u.coalesced) for u in got] == [
        ("a1", ActionPhase.SUCCEEDED, 2), ("a2", ActionPhase.QUEUED, 0), ("a3", ActionPhase.QUEUED, 0)
    ]  # fmt: skip
    assert sub.overflows == 1 and sub.coalesced == 2


def test_coalescing_never_drops_an_action_even_beyond_the_bound() -> None:
    sub = Subscription("r1", "a0", maxsize=2)
    for i in range(10):
        sub.push(upd(f"c{i}", ActionPhase.QUEUED))
    for i in range(10):
        sub.push(upd(f"c{i}", ActionPhase.SUCCEEDED))
    got = drain(sub)
    assert sorted(u.action_id.name for u in got) == sorted(f"c{i}" for i in range(10))
    assert all(u.phase is ActionPhase.SUCCEEDED for u in got)


def test_after_catching_up_the_buffer_keeps_every_update_again() -> None:
    sub = Subscription("r1", "a0", maxsize=1)
    sub.push(upd("a1", ActionPhase.QUEUED))
    sub.push(upd("a1", ActionPhase.RUNNING))
    assert [u.phase for u in drain(sub)] == [ActionPhase.RUNNING]
    sub.push(upd("a1", ActionPhase.SUCCEEDED))
    assert [u.coalesced for u in drain(sub)] == [0]


async def test_iteration_waits_for_updates_and_ends_after_close_once_drained() -> None:
    sub = Subscription("r1", "a0")
    got: list[ActionUpdate] = []

    async def consume() -> None:
        async for u in sub:
            got.append(u)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    sub.push(upd("a1", ActionPhase.QUEUED))
    sub.push(upd("a2", ActionPhase.QUEUED))
    sub.close()
    await asyncio.wait_for(task, 1)
    assert [u.action_id.name for u in got] == ["a1", "a2"]


def test_registry_routes_by_run_and_parent_only() -> None:
    reg = SubscriberRegistry(buffer_size=10)
    mine = reg.subscribe("r1", "a0")
    other_run = reg.subscribe("r2", "a0")
    root_watch = reg.subscribe("r1", "")
    assert reg.publish(upd("a1", ActionPhase.QUEUED)) == 1
    assert reg.publish(upd("a0", ActionPhase.RUNNING, parent="")) == 1
    assert [len(mine), len(other_run), len(root_watch)] == [1, 0, 1]
    reg.unsubscribe(mine)
    assert mine.closed and reg.publish(upd("a1", ActionPhase.RUNNING)) == 0
    reg.close_all()
    assert len(reg) == 0 and other_run.closed


def test_a_slow_subscriber_does_not_change_what_a_fast_one_sees() -> None:
    reg = SubscriberRegistry()
    slow = reg.subscribe("r1", "a0", maxsize=2)
    fast = reg.subscribe("r1", "a0", maxsize=100)
    phases = [ActionPhase.QUEUED, ActionPhase.INITIALIZING, ActionPhase.RUNNING, ActionPhase.SUCCEEDED]
    seen_fast = []
    for p in phases:
        reg.publish(upd("a1", p))
        seen_fast += drain(fast)
    assert [u.phase for u in seen_fast] == phases
    assert [(u.phase, u.coalesced) for u in drain(slow)] == [(ActionPhase.SUCCEEDED, 3)]


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        Subscription("r1", "a0", maxsize=0)
