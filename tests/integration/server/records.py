"""Records of runs for the RunService suites: a small tree with events, written through ActionRepo."""

from __future__ import annotations

from datetime import timedelta

from flyteidl2.core import execution_pb2
from flyteidl2.task import task_definition_pb2
from flyteidl2.workflow import run_definition_pb2

from taskaction_operator.model import ActionId, ActionPhase, ActionType, RunId
from taskaction_operator.repo import Action, ActionEvent, ActionRepo
from tests.integration.repo.helpers import T0, at

#: The tree :func:`seed_run` writes: name → (parent, phase, task name).
TREE = {
    "a0": (None, ActionPhase.RUNNING, "wf.pipeline"),
    "a1": ("a0", ActionPhase.SUCCEEDED, "wf.prepare"),
    "a1-1": ("a1", ActionPhase.SUCCEEDED, "wf.download"),
    "a2": ("a0", ActionPhase.FAILED, "wf.train"),
}


def row(
    aid: ActionId, parent: str | None, phase: ActionPhase, task: str, offset: float, **fields: object
) -> Action:
    spec = run_definition_pb2.ActionSpec(action_id=aid.to_proto(), parent_action_name=parent or "")
    spec.task.id.CopyFrom(
        task_definition_pb2.TaskIdentifier(project=aid.project, domain=aid.domain, name=task, version="v1")
    )
    a = Action.new(
        aid,
        parent_action_name=parent,
        phase=phase,
        action_type=ActionType.TASK,
        task_project=aid.project,
        task_domain=aid.domain,
        task_name=task,
        task_version="v1",
        task_type="python",
        function_name=task.rsplit(".", 1)[-1],
        created_at=at(offset),
        run_source="RUN_SOURCE_CLI" if parent is None else "",
        **fields,  # type: ignore[arg-type]
    )
    a.set_action_spec(spec)
    if phase.is_terminal():
        a.ended_at = at(offset + 5)
        a.duration_ms = 5000
    return a


def reported(
    aid: ActionId, attempt: int, phase: ActionPhase, seconds: float, **fields: object
) -> ActionEvent:
    """An event as Flyte's executor reports it (``info`` the serialized ActionEvent)."""
    msg = run_definition_pb2.ActionEvent(
        id=aid.to_proto(),
        attempt=attempt,
        phase=int(phase),
        cluster="c1",
        **fields,  # type: ignore[arg-type]
    )
    msg.updated_time.FromDatetime(T0 + timedelta(seconds=seconds))
    msg.reported_time.FromDatetime(T0 + timedelta(seconds=seconds))
    return ActionEvent.from_proto(msg)


async def seed_run(repo: ActionRepo, run_id: RunId, offset: float = 0) -> dict[str, ActionId]:
    """Writes :data:`TREE` under ``run_id`` (children one second after their parent), with a2's two
    attempts reported: the first FAILED with a user error, the second FAILED with a system error."""
    ids = {name: ActionId(run_id, name) for name in TREE}
    for i, (name, (parent, phase, task)) in enumerate(TREE.items()):
        attempts = 2 if name == "a2" else 1
        await repo.create_action(row(ids[name], parent, phase, task, offset + i, attempts=attempts))
    a2 = ids["a2"]
    log = execution_pb2.TaskLog(name="pod", uri="http://logs/a2")
    user, system = run_definition_pb2.ErrorInfo.KIND_USER, run_definition_pb2.ErrorInfo.KIND_SYSTEM
    oom = run_definition_pb2.ErrorInfo(message="oom", kind=user)
    lost = run_definition_pb2.ErrorInfo(message="node lost", kind=system)
    await repo.insert_reported_events(
        [
            reported(a2, 1, ActionPhase.QUEUED, 10),
            reported(a2, 1, ActionPhase.RUNNING, 11, log_info=[log]),
            reported(a2, 1, ActionPhase.FAILED, 12, error_info=oom),
            reported(a2, 2, ActionPhase.RUNNING, 13),
            reported(a2, 2, ActionPhase.FAILED, 14, error_info=lost),
        ]
    )
    return ids
