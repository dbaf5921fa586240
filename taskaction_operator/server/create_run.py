"""RunService.CreateRun for a task spec: upstream's CreateRun (runs/service/run_service.go) on
:func:`taskaction_operator.client.runs.create_run`, which writes the root row (upstream's
persistRunModel: the RunInfo with ``<prefix>/inputs.pb``, the ActionSpec, the run spec) and then
creates the root action's TaskAction through the Kubernetes API (served with ``serve --actions``).

As upstream: a run named by ``run_id`` keeps its name (a DNS-1035 label), one given only a
``project_id`` is named ``r`` + 19 random characters (generateRunName); the inputs live under
``<base>/<project>/<domain>/<run>/inputs`` and the outputs under ``<base>/<project>/<domain>/<run>/``
(buildInputPrefix, buildRunOutputBase), the base being the run spec's ``run_base_dir`` or the server's
``--storage-prefix``; offloaded inputs (``offloaded_input_data``) are used where they are; the raw
data prefix defaults to the storage prefix; ``run_start_time`` is stamped for SDKs from 2.3.6 on
(meetsRunStartTimeSDKVersion).

DELIBERATE DIFFERENCES: only ``task_spec`` is served (there is no tasks table to find a ``task_id``
in, nor triggers: both answer ``unimplemented``); inline ``inputs`` cannot be written (this server has
no data store: a request carrying literals answers ``unimplemented``, an empty one needs nothing
written); the project is not looked up (there is no project service); no cache key is computed; and a
root TaskAction that cannot be created fails the call (the run is left ABORTED with its reason, see
:mod:`~taskaction_operator.client.runs`) where upstream logs it and answers success.
"""

from __future__ import annotations

import re
import secrets

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from flyteidl2.actions import actions_service_pb2
from flyteidl2.task import run_pb2
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as rs

from taskaction_operator.client.actions_client import ActionExistsError, ActionsClient
from taskaction_operator.client.names import InvalidActionError, validate_run_name
from taskaction_operator.client.runs import CreateRunError, RunExistsError, create_run
from taskaction_operator.model import RunId, RunSource
from taskaction_operator.repo import ActionRepo
from taskaction_operator.server import convert

__all__ = ["RUN_NAME_ALPHABET", "create_run_from_request", "generate_run_name"]

#: The characters of a generated run name (Kubernetes' rand.String, which upstream uses: no vowels,
#: no confusable digits).
RUN_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_RUN_NAME_LENGTH = 20  # upstream's runIDLength, "r" included
_SDK_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def generate_run_name() -> str:
    """``r`` and 19 random characters (upstream's generateRunName)."""
    return "r" + "".join(secrets.choice(RUN_NAME_ALPHABET) for _ in range(_RUN_NAME_LENGTH - 1))


def _understands_run_start_time(version: str) -> bool:
    """Upstream's meetsRunStartTimeSDKVersion: the task's SDK is 2.3.6 or later."""
    match = _SDK_VERSION.search(version)
    return match is not None and tuple(int(g) for g in match.groups()) >= (2, 3, 6)


def _run_id(request: rs.CreateRunRequest) -> RunId:
    match request.WhichOneof("id"):
        case "run_id":
            run_id = RunId.from_proto(request.run_id)
            try:
                validate_run_name(run_id.name)
            except InvalidActionError as exc:
                raise ConnectError(Code.INVALID_ARGUMENT, str(exc)) from None
        case "project_id":
            run_id = RunId(request.project_id.name, request.project_id.domain, generate_run_name())
        case _:
            raise ConnectError(Code.INVALID_ARGUMENT, "invalid run ID type: give run_id or project_id")
    if not run_id.project or not run_id.domain:
        raise ConnectError(Code.INVALID_ARGUMENT, "the run's project and domain are required")
    return run_id


async def create_run_from_request(
    repo: ActionRepo, client: ActionsClient, request: rs.CreateRunRequest, storage_prefix: str
) -> rs.CreateRunResponse:
    """The run created as upstream's CreateRun creates it (see the module docstring)."""
    run_id = _run_id(request)
    which = request.WhichOneof("task")
    if which != "task_spec":
        raise ConnectError(
            Code.UNIMPLEMENTED,
            f"CreateRun with {which or 'no task'} is not served here: give task_spec (there is no tasks "
            "table to look a task_id up in, nor triggers)",
        )
    task_spec = request.task_spec
    run_spec = run_pb2.RunSpec()
    if request.HasField("run_spec"):
        run_spec.CopyFrom(request.run_spec)
    if not run_spec.HasField("run_start_time") and _understands_run_start_time(
        task_spec.task_template.metadata.runtime.version
    ):
        if request.HasField("run_start_time"):
            run_spec.run_start_time.CopyFrom(request.run_start_time)
        else:
            run_spec.run_start_time.GetCurrentTime()
    base = (run_spec.run_base_dir or storage_prefix).rstrip("/")
    input_prefix = f"{base}/{run_id.project}/{run_id.domain}/{run_id.name}/inputs"
    if request.WhichOneof("input_wrapper") == "offloaded_input_data":
        input_prefix = request.offloaded_input_data.uri
    elif request.inputs.literals or request.inputs.context:
        raise ConnectError(
            Code.UNIMPLEMENTED,
            "CreateRun with inline inputs is not served here (no data store to write inputs.pb to): "
            "upload them and pass offloaded_input_data",
        )
    if not base and request.WhichOneof("input_wrapper") != "offloaded_input_data":
        raise ConnectError(
            Code.FAILED_PRECONDITION,
            "no storage for the run's data: start serve with --storage-prefix, or set run_spec.run_base_dir",
        )
    if not run_spec.raw_data_storage.raw_data_prefix:
        run_spec.raw_data_storage.raw_data_prefix = storage_prefix
    t = task_spec.task_template.id
    root = actions_service_pb2.Action(
        action_id=run_id.root.to_proto(),
        input_uri=input_prefix,
        run_output_base=f"{base}/{run_id.project}/{run_id.domain}/{run_id.name}/",
    )
    root.task.CopyFrom(wf.TaskAction(spec=task_spec))
    root.task.id.project, root.task.id.domain, root.task.id.name, root.task.id.version = (
        t.project,
        t.domain,
        t.name,
        t.version,
    )
    try:
        row = await create_run(repo, client, root, run_spec, source=RunSource(int(request.source)))
    except RunExistsError as exc:
        raise ConnectError(Code.ALREADY_EXISTS, str(exc)) from None
    except InvalidActionError as exc:
        raise ConnectError(Code.INVALID_ARGUMENT, str(exc)) from None
    except CreateRunError as exc:
        # The TaskAction existed already (the row now follows it), or could not be created.
        code = Code.ALREADY_EXISTS if isinstance(exc.__cause__, ActionExistsError) else Code.INTERNAL
        raise ConnectError(code, str(exc)) from None
    return rs.CreateRunResponse(run=convert.run(row))
