"""Our enums mirror flyteidl2's exactly: same members, same integers, same names."""

from __future__ import annotations

from typing import Any

import pytest
from flyteidl2.common import phase_pb2
from flyteidl2.core import catalog_pb2
from flyteidl2.workflow import run_definition_pb2

from taskaction_operator.model import (
    ActionId,
    ActionPhase,
    ActionType,
    CatalogCacheStatus,
    RunSource,
    cr_name,
)

ENUMS = [
    (ActionPhase, phase_pb2.ActionPhase, "ACTION_PHASE_"),
    (ActionType, run_definition_pb2.ActionType, "ACTION_TYPE_"),
    (RunSource, run_definition_pb2.RunSource, "RUN_SOURCE_"),
    (CatalogCacheStatus, catalog_pb2.CatalogCacheStatus, ""),
]


@pytest.mark.parametrize(("ours", "proto", "prefix"), ENUMS)
def test_every_protobuf_value_has_a_member_with_its_name(ours: Any, proto: Any, prefix: str) -> None:
    assert {name: value for name, value in proto.items()} == {
        m.to_protobuf_name(): m.to_protobuf_value() for m in ours
    }
    for member in ours:
        assert member.to_protobuf_name() == prefix + member.name
        assert ours.from_protobuf(member.to_protobuf_value()) is member
        assert ours.from_protobuf(member.to_protobuf_name()) is member
        assert ours.from_protobuf(member.name) is member


def test_unknown_values_are_refused() -> None:
    with pytest.raises(ValueError, match="not a valid ActionPhase"):
        ActionPhase.from_protobuf("ACTION_PHASE_DONE")
    with pytest.raises(ValueError, match="42"):
        ActionPhase.from_protobuf(42)


def test_terminal_phases_are_upstreams_five() -> None:
    assert {p for p in ActionPhase if p.is_terminal()} == {
        ActionPhase.SUCCEEDED,
        ActionPhase.FAILED,
        ActionPhase.ABORTED,
        ActionPhase.TIMED_OUT,
        ActionPhase.RECOVERED,
    }


@pytest.mark.parametrize(
    ("run", "action", "name"),
    [("r1", "a0", "r1-a0"), ("r1", "a3", "r1-a3"), ("r1", "r1", "r1-a0"), ("x", "y-z", "x-y-z")],
)
def test_cr_name_is_run_dash_action_and_root_is_a0(run: str, action: str, name: str) -> None:
    assert cr_name(ActionId.of("p", "d", run, action)) == name
