"""Validation of an action before it becomes a TaskAction: every limit the CRD and the API server
enforce, refused up front with one readable message, and the values at each boundary accepted."""

from __future__ import annotations

import pytest
from flyteidl2.actions import actions_service_pb2
from flyteidl2.core import types_pb2

from taskaction_operator.client.validate import InvalidActionError, validate_action
from tests.unit.client.actions import condition, task


# --- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "message"),
    [
        (task(run="r" * 31), "run name 'rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr' is 31 characters; at most 30"),
        (task(run="1abc"), "not a DNS-1035 label"),
        (task(run="Run"), "not a DNS-1035 label"),
        (task(run=""), "run name is empty"),
        (task(project="p" * 64), "project 'ppp"),
        (task(project=""), "project is empty"),
        (task(domain="bad domain"), "domain 'bad domain' is not a valid label value"),
        (task("a" * 31, "a0"), "is 31 characters; at most 30"),
        (task("A_1", "a0"), "action name 'A_1' cannot name a TaskAction"),
        (task("a1", "x" * 31), "parent action name 'xxx"),
        (task("a1", "a1"), "names itself as its parent"),
        (task("rdemo1", "a0"), "reserved"),
        (task(cache_key="k" * 257), "cacheKey is 257 characters; at most 256"),
        (task(task_type="t" * 64), "taskType is 64 characters; at most 63"),
        (task(short_name="s" * 64), "shortName is 64 characters; at most 63"),
        (task(group="g" * 257), "group is 257 characters; at most 256"),
        (condition("c1", "a0", types_pb2.SimpleType.STRUCT), "boolean, integer, float or string"),
    ],
)
def test_limits_are_refused_with_a_readable_message(action: actions_service_pb2.Action, message: str) -> None:
    with pytest.raises(InvalidActionError, match=message.replace("(", r"\(")):
        validate_action(action)


def test_limits_at_the_boundary_are_accepted() -> None:
    validate_action(task("a" * 30, "a0", run="r" * 30, project="p" * 63, domain="d" * 63, cache_key="k" * 256,
                         task_type="t" * 63, short_name="s" * 63, group="g" * 256))  # fmt: skip


def test_trace_and_empty_actions_are_refused() -> None:
    trace = task()
    trace.trace.name = "t"
    with pytest.raises(InvalidActionError, match="traces are recorded, not enqueued"):
        validate_action(trace)
    empty = actions_service_pb2.Action(action_id=task().action_id)
    with pytest.raises(InvalidActionError, match="has no spec"):
        validate_action(empty)
