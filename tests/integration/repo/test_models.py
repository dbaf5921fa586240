"""The records: fields are the columns, clone is deep, payloads round-trip as flyteidl2 messages."""

from __future__ import annotations

import dataclasses

import pytest
from flyteidl2.common import identifier_pb2, identity_pb2
from flyteidl2.task import run_pb2
from flyteidl2.workflow import run_definition_pb2, run_info_pb2

from taskaction_operator.model import ActionId, ActionPhase, ActionType, CatalogCacheStatus, RunId, RunSource
from taskaction_operator.repo import Action, ActionEvent, PhaseUpdate
from taskaction_operator.repo.schema import action_events, actions
from tests.integration.repo.helpers import T0


def test_action_fields_are_the_actions_columns_in_order_and_then_the_state() -> None:
    """Upstream's columns, in order; then ours, the state (from taskaction_action_states)."""
    assert [f.name for f in dataclasses.fields(Action)] == [*(c.name for c in actions.c), "action_state"]


def test_event_fields_are_the_action_events_columns_in_order() -> None:
    assert [f.name for f in dataclasses.fields(ActionEvent)] == [c.name for c in action_events.c]


def test_action_conveniences() -> None:
    root = Action.new(ActionId.of("p", "d", "r", "a0"))
    child = Action.new(ActionId.of("p", "d", "r", "c1"), parent_action_name="a0")
    assert root.is_root and not child.is_root
    assert root.run_id == RunId("p", "d", "r")
    assert child.action_id == ActionId.of("p", "d", "r", "c1")
    assert child.run_name == "r"
    # upstream create-time defaults
    assert (root.phase, root.attempts, root.action_details) == (ActionPhase.QUEUED, 1, b"{}")


def test_integers_become_the_enums() -> None:
    a = Action("p", "d", "r", "a0", None, 4, "", 2, cache_status=3)  # type: ignore[arg-type]
    assert a.phase is ActionPhase.RUNNING
    assert a.action_type is ActionType.TRACE
    assert a.cache_status is CatalogCacheStatus.CACHE_POPULATED
    with pytest.raises(ValueError, match="11"):
        Action("p", "d", "r", "a0", phase=11)  # type: ignore[arg-type]


def test_clone_is_independent() -> None:
    original = Action.new(ActionId.of("p", "d", "r", "a0"), created_at=T0, action_spec=b"\x01")
    copy = original.clone()
    assert copy == original and copy is not original
    copy.phase = ActionPhase.FAILED
    copy.action_spec = b"\x02"
    assert original.phase is ActionPhase.QUEUED and original.action_spec == b"\x01"
    ev = ActionEvent("p", "d", "r", "a0", 1, ActionPhase.RUNNING, 0, info=b"x")
    ev2 = ev.clone()
    ev2.version = 3
    assert ev.version == 0


def test_run_source_is_stored_as_its_name() -> None:
    a = Action.new(ActionId.of("p", "d", "r", "a0"))
    assert a.run_source == "" and a.get_run_source() is None
    a.set_run_source(RunSource.CLI)
    assert a.run_source == "RUN_SOURCE_CLI"
    assert a.get_run_source() is RunSource.CLI
    a.set_run_source(RunSource.UNSPECIFIED)
    assert a.run_source == "RUN_SOURCE_UNSPECIFIED"


def test_payloads_round_trip_as_messages() -> None:
    a = Action.new(ActionId.of("p", "d", "r", "a0"))
    assert a.get_action_spec() is None and a.get_detailed_info() is None
    spec = run_definition_pb2.ActionSpec(input_uri="s3://in", run_output_base="s3://out")
    info = run_info_pb2.RunInfo(inputs_uri="s3://in/inputs.pb", task_spec_digest="abc")
    run_spec = run_pb2.RunSpec(queue="q1")
    who = identity_pb2.EnrichedIdentity(
        user=identity_pb2.User(id=identifier_pb2.UserIdentifier(subject="me"))
    )
    a.set_action_spec(spec)
    a.set_detailed_info(info)
    a.set_run_spec(run_spec)
    a.set_created_by(who)
    assert a.get_action_spec() == spec
    assert a.get_detailed_info() == info
    assert a.get_run_spec() == run_spec
    assert a.get_created_by() == who
    a.set_run_spec(None)
    assert a.run_spec is None


def test_event_from_proto() -> None:
    msg = run_definition_pb2.ActionEvent(
        id=identifier_pb2.ActionIdentifier(
            run=identifier_pb2.RunIdentifier(org="o", project="p", domain="d", name="r"), name="c1"
        ),
        attempt=2,
        phase=6,
        version=1,
        error_info=run_definition_pb2.ErrorInfo(message="boom", kind=run_definition_pb2.ErrorInfo.KIND_USER),
    )
    ev = ActionEvent.from_proto(msg)
    assert (ev.project, ev.domain, ev.run_name, ev.name) == ("p", "d", "r", "c1")
    assert (ev.attempt, ev.phase, ev.version, ev.error_kind) == (2, ActionPhase.FAILED, 1, "KIND_USER")
    assert ev.get_info() == msg
    msg.ClearField("error_info")
    assert ActionEvent.from_proto(msg).error_kind is None


def test_phase_update_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone"):
        PhaseUpdate(
            ActionId.of("p", "d", "r", "a0"), ActionPhase.RUNNING, 1, 0, start_time=T0.replace(tzinfo=None)
        )
