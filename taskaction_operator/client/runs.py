"""CreateRun: the run's root row first, then its root TaskAction (upstream ``RunService.CreateRun``).

The row is written first, as upstream does (``persistRunModel`` then ``Enqueue``), so the run exists
for readers before anything executes and the operator finds a row to update when it sees the CR.

What happens when the second step fails is where we deliberately differ. Upstream logs the enqueue
error and returns success, leaving a QUEUED run that nothing will ever move: a silent orphan. Here:

* If the enqueue fails for any reason but "the TaskAction already exists", the run is marked with an
  abort request (``abort_run``: phase ABORTED, ``abort_requested_at``, the reason), and the error is
  raised. The operator's abort sweep then deletes the TaskAction if the create did land after all
  (a timeout after the API server accepted it) or finds it absent, and clears the request. Either
  way the run ends ABORTED with the reason visible in ``runs get``.
* If the TaskAction already exists (created by ``kubectl apply`` before the row), the row is left to
  follow it (the operator records that CR's phases into it) and the error says so.
* If marking the abort fails too (database gone), the error says exactly what to run to finish it.

A run that already exists is refused before anything is written, so re-submitting a run file never
touches (or aborts) an existing run.
"""

from __future__ import annotations

import asyncio

from flyteidl2.actions import actions_service_pb2
from flyteidl2.task import run_pb2
from flyteidl2.workflow import run_info_pb2

from taskaction_operator.client.actions_client import ActionExistsError, ActionsClient
from taskaction_operator.client.names import InvalidActionError
from taskaction_operator.client.taskaction_cr import build_action_spec
from taskaction_operator.client.validate import (
    action_id_of,
    action_kind,
    parent_name,
    validate_action,
)
from taskaction_operator.model import ROOT_ACTION_NAME, ActionPhase, ActionType, RunId, RunSource
from taskaction_operator.repo import Action, ActionRepo, NotFoundError


class RunExistsError(Exception):
    """A run of that project, domain and name exists already; nothing was written."""


class CreateRunError(Exception):
    """The root row was written but its TaskAction was not created; the message says what state the
    run was left in (``aborted``: an abort request was recorded for the operator's sweep)."""

    def __init__(self, message: str, *, aborted: bool) -> None:
        super().__init__(message)
        self.aborted = aborted


def root_row(
    root: actions_service_pb2.Action, run_spec: run_pb2.RunSpec | None, source: RunSource = RunSource.CLI
) -> Action:
    """The ``actions`` row CreateRun writes for the root (upstream ``persistRunModel``).

    a0, QUEUED, ActionType TASK, attempts 1, ``action_details`` ``{}``, ``run_source`` the enum name,
    ``detailed_info`` a RunInfo and ``action_spec``, both with ``<inputs>/inputs.pb``
    and the task without its cache key, ``run_spec`` (an empty RunSpec when none is given).
    """
    run_spec = run_spec if run_spec is not None else run_pb2.RunSpec()
    aid = action_id_of(root)
    spec = build_action_spec(root, run_spec)
    inputs = f"{root.input_uri}/inputs.pb" if root.input_uri else ""
    spec.input_uri = inputs
    spec.task.ClearField("cache_key")
    task = root.task
    row = Action.new(
        aid,
        phase=ActionPhase.QUEUED,
        action_type=ActionType.TASK,
        task_project=task.id.project or None,
        task_domain=task.id.domain or None,
        task_name=task.id.name or None,
        task_version=task.id.version or None,
        task_type=task.spec.task_template.type,
        task_short_name=task.spec.short_name or None,
        function_name=task.id.name,
        environment_name=task.spec.environment.name or None,
        action_details=b"{}",
        attempts=1,
    )
    row.set_run_source(source)
    row.set_action_spec(spec)
    row.set_detailed_info(run_info_pb2.RunInfo(inputs_uri=inputs))
    row.set_run_spec(run_spec)
    return row


def validate_root(root: actions_service_pb2.Action, run_spec: run_pb2.RunSpec | None) -> None:
    """A root is a task named a0 without a parent, within every limit."""
    validate_action(root, run_spec)
    if parent_name(root) is not None or root.action_id.name != ROOT_ACTION_NAME:
        raise InvalidActionError(f"a run's root action is {ROOT_ACTION_NAME!r} without a parent")
    if action_kind(root) != "task":
        raise InvalidActionError("a run's root action must be a task")


async def create_run(
    repo: ActionRepo,
    client: ActionsClient,
    root: actions_service_pb2.Action,
    run_spec: run_pb2.RunSpec | None = None,
    *,
    source: RunSource = RunSource.CLI,
    ensure_namespace_first: bool = False,
) -> Action:
    """Write the run's root row, then enqueue its root TaskAction; returns the stored row.

    With ``ensure_namespace_first``, the client's namespace is ensured once the run is known to be
    new and before the row is written, so an API server that cannot be reached (or refuses the
    namespace) changes nothing: its error is raised as it is. Without it, that failure comes from the
    enqueue and leaves the run aborted, as any other.

    Raises InvalidActionError (nothing written), RunExistsError (nothing written), CreateRunError
    (row written, TaskAction not created; see the module docstring for the state it leaves).
    """
    validate_root(root, run_spec)
    run_spec = run_spec if run_spec is not None else run_pb2.RunSpec()
    run_id: RunId = action_id_of(root).run
    try:
        await repo.get_run(run_id)
    except NotFoundError:
        pass
    else:
        raise RunExistsError(f"run {run_id} already exists")
    if ensure_namespace_first:
        await client.ensure_namespace()
    row = root_row(root, run_spec, source)
    stored = await repo.create_action(row)
    if stored.action_spec != row.action_spec or stored.run_source != row.run_source:
        # Someone created the same run between our check and our insert: theirs, not ours to touch.
        raise RunExistsError(f"run {run_id} already exists (created concurrently)")
    try:
        await client.enqueue(root, run_spec)
    except ActionExistsError as exc:
        raise CreateRunError(
            f"run {run_id}: {exc}; the run's row now follows that existing TaskAction", aborted=False
        ) from exc
    except (Exception, asyncio.CancelledError) as exc:
        await _abort_orphan(repo, run_id, exc)
        raise
    return stored


async def _abort_orphan(repo: ActionRepo, run_id: RunId, cause: BaseException) -> None:
    """Record an abort request for a run whose root TaskAction could not be created; raise what happened."""
    what = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    reason = f"CreateRun could not create the root TaskAction ({what})"[:1000]
    try:
        await asyncio.shield(repo.abort_run(run_id, reason))
    except Exception as exc:
        raise CreateRunError(
            f"run {run_id}: creating its root TaskAction failed ({what}) and recording the abort failed too "
            f"({exc}); finish it with: taskaction-operator abort {run_id.name} --project {run_id.project} "
            f"--domain {run_id.domain}",
            aborted=False,
        ) from cause
    if isinstance(cause, asyncio.CancelledError):
        return  # the caller re-raises the cancellation; the abort request is recorded
    raise CreateRunError(
        f"run {run_id}: creating its root TaskAction failed ({what}); the run is marked ABORTED with an "
        "abort request, which the operator's sweep completes",
        aborted=True,
    ) from cause
