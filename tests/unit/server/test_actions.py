"""ActionsService's update messages (upstream's taskActionToUpdate)."""

from __future__ import annotations

from flyteidl2.core import execution_pb2

from taskaction_operator.client.updates import ActionError, ActionUpdate
from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.server.actions import action_update

AID = ActionId(RunId("p", "d", "r"), "a1")


def test_a_failed_update_carries_its_error_and_others_do_not() -> None:
    failed = action_update(
        ActionUpdate(AID, "a0", ActionPhase.FAILED, error=ActionError("OOM", "USER", "out of memory"))
    )
    assert failed.phase == int(ActionPhase.FAILED) and failed.action_id.name == "a1"
    assert (failed.error.code, failed.error.kind, failed.error.message) == (
        "OOM",
        execution_pb2.ExecutionError.USER,
        "out of memory",
    )
    unknown_kind = action_update(ActionUpdate(AID, "a0", ActionPhase.FAILED, error=ActionError("X", "", "?")))
    assert unknown_kind.error.kind == execution_pb2.ExecutionError.UNKNOWN
    done = action_update(
        ActionUpdate(
            AID, "a0", ActionPhase.SUCCEEDED, output_uri="s3://o", error=ActionError("X", "USER", "?")
        )
    )
    assert done.output_uri == "s3://o" and not done.HasField("error")
