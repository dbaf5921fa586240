"""The actions client: upstream's ``ActionsClient`` (``actions/k8s/client.go``) over the Kubernetes API.

What callers use to put work into the system and follow it without the database: ``enqueue`` turns a
flyteidl2 ``Action`` into a TaskAction (built by :mod:`.taskaction_cr`), ``abort_action`` deletes
one (the garbage collector takes its subtree), ``put_status`` writes attempts and cache status,
``list_*``/``get_task_action`` read TaskActions live, and ``subscribe`` streams ``ActionUpdate``s
from one watch of the namespace (:mod:`.informer`, fan-out in :mod:`.updates`).

Deliberate differences from upstream:

* validation happens before any API call (:class:`~.validate.InvalidActionError`);
* ``put_status`` writes through the status subresource with an optimistic-concurrency precondition
  and retries conflicts (upstream does one ``Status().Update`` and fails on a conflict);
* a child is refused when its parent is already being deleted (it would be garbage-collected at
  birth);
* the namespace is ensured once per client, and again only if a create says it is missing (upstream
  GETs it before every create);
* the watch is our own list+watch loop (:class:`~.informer.TaskActionInformer`), not
  controller-runtime's shared informer; slow subscribers coalesce instead of dropping;
* with the record guard on (``record_guard``, by default ``TASKACTION_RECORD_GUARD``, the operator's
  own setting, true unless set false), a TaskAction is created holding the guard finalizer, as the
  operator would otherwise patch it on first sight; the ownerReference is set at creation as
  upstream sets it. The client cannot ask the operator how it runs: a client whose setting says on
  beside an operator whose guard is off costs nothing (that operator releases any guard it finds with
  the recorded label); one that says off beside a guarding operator leaves the guard to its patch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from flyteidl2.actions import actions_service_pb2
from flyteidl2.task import run_pb2

from taskaction_operator.client.informer import TaskActionInformer, resource_version
from taskaction_operator.client.taskaction_cr import build_taskaction
from taskaction_operator.client.updates import (
    DEFAULT_BUFFER,
    ActionUpdate,
    Subscription,
    update_from_taskaction,
)
from taskaction_operator.client.validate import action_id_of, action_kind, parent_name, validate_action
from taskaction_operator.config import PREFIX, parse_bool
from taskaction_operator.crd.names import run_selector
from taskaction_operator.k8s.errors import Conflict, KubeError, NotFound
from taskaction_operator.k8s.ops import KubeOps
from taskaction_operator.model import ActionId, RunId, cr_name

log = logging.getLogger(__name__)


def record_guard_setting(env: dict[str, str] | None = None) -> bool:
    """``TASKACTION_RECORD_GUARD`` as the operator reads it (true when unset or unreadable)."""
    raw = (os.environ if env is None else env).get(f"{PREFIX}RECORD_GUARD", "")
    try:
        return parse_bool(raw) if raw.strip() else True
    except ValueError:
        return True


class ActionsClientError(Exception):
    """A TaskAction operation failed; the message says which object and why."""


class ActionNotFoundError(ActionsClientError, LookupError):
    """The TaskAction does not exist (message contains "not found", as upstream's wrapped NotFound)."""


class ActionExistsError(ActionsClientError):
    """A task TaskAction of that name already exists (upstream: AlreadyExists is an error for tasks)."""


@dataclass(frozen=True, slots=True)
class StatusWrite:
    """What ``put_status`` did: whether it changed the status, and how many conflicts it retried."""

    changed: bool
    conflicts: int


class Sentinel:
    """Marks the end of the snapshot in :meth:`ActionsClient.watch_for_updates` (``ControlMessage``)."""

    def __repr__(self) -> str:
        return "SENTINEL"


SENTINEL = Sentinel()


class ActionsClient:
    """TaskAction operations and update fan-out for one namespace."""

    def __init__(
        self,
        kube: KubeOps,
        namespace: str,
        *,
        buffer_size: int = DEFAULT_BUFFER,
        watch_timeout: int = 300,
        status_retries: int = 10,
        record_guard: bool | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.status_retries = status_retries
        #: Create TaskActions holding the record guard (None: ``TASKACTION_RECORD_GUARD``, else true).
        self.record_guard = record_guard_setting() if record_guard is None else record_guard
        self._namespace_ready = False
        #: The watch behind :meth:`subscribe` (started by :meth:`start_watching`).
        self.informer = TaskActionInformer(
            kube, namespace, buffer_size=buffer_size, watch_timeout=watch_timeout
        )

    # --- enqueue -------------------------------------------------------------------------------
    async def enqueue(
        self, action: actions_service_pb2.Action, run_spec: run_pb2.RunSpec | None = None
    ) -> dict[str, Any]:
        """Create the TaskAction for a task or condition action; returns the stored object.

        Raises InvalidActionError (before any API call), ActionNotFoundError when a child's parent
        TaskAction does not exist, ActionExistsError when a task's TaskAction already exists (a
        condition's existing TaskAction is returned instead: idempotent, as upstream).
        """
        validate_action(action, run_spec)
        aid = action_id_of(action)
        name = cr_name(aid)
        await self.ensure_namespace()
        parent: dict[str, Any] | None = None
        pname = parent_name(action)
        if pname is not None:
            parent_cr = cr_name(ActionId(aid.run, pname))
            parent = await self.kube.get_taskaction(self.namespace, parent_cr)
            if parent is None:
                raise ActionNotFoundError(f"failed to get parent TaskAction {parent_cr}: not found")
            if (parent.get("metadata") or {}).get("deletionTimestamp"):
                raise ActionsClientError(
                    f"parent TaskAction {parent_cr} is being deleted: {name} would be collected at once"
                )
        body = build_taskaction(
            action, run_spec, namespace=self.namespace, parent=parent, record_guard=self.record_guard
        )
        try:
            return await self._create(body)
        except Conflict:
            if action_kind(action) == "condition":
                existing = await self.kube.get_taskaction(self.namespace, name)
                return existing if existing is not None else body
            raise ActionExistsError(f"failed to create TaskAction {name}: already exists") from None
        except KubeError as exc:
            raise ActionsClientError(f"failed to create TaskAction {name}: {exc.message}") from None

    async def ensure_namespace(self) -> None:
        """Create the namespace unless it exists (once per client; upstream checks before every create)."""
        if not self._namespace_ready:
            await self.kube.ensure_namespace(self.namespace)
            self._namespace_ready = True

    async def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.kube.create_taskaction(self.namespace, body)
        except NotFound:
            pass
        # The namespace went away since we ensured it: ensure again, once.
        self._namespace_ready = False
        await self.ensure_namespace()
        return await self.kube.create_taskaction(self.namespace, body)

    # --- abort, status -------------------------------------------------------------------------
    async def abort_action(self, action_id: ActionId, reason: str | None = None) -> None:
        """Delete the action's TaskAction (GET, then DELETE, as upstream); descendants follow by GC.

        Raises ActionNotFoundError when it does not exist. ``reason`` is only logged, as upstream.
        """
        name = cr_name(action_id)
        log.info("aborting TaskAction %s/%s (reason: %s)", self.namespace, name, reason or "-")
        if await self.kube.get_taskaction(self.namespace, name) is None:
            raise ActionNotFoundError(f"failed to get TaskAction {name}: not found")
        if not await self.kube.delete_taskaction(self.namespace, name):
            raise ActionNotFoundError(f"failed to delete TaskAction {name}: not found")

    async def put_status(self, action_id: ActionId, attempt: int, cache_status: int) -> StatusWrite:
        """Set ``status.attempts`` and ``status.cacheStatus`` (upstream ``PutStatus``); a no-op if equal.

        Each write carries the resourceVersion it was decided on, so a concurrent writer causes a 409
        Conflict; then the object is re-read and the decision made again (deliberately unlike
        upstream, which fails on a conflict). Gives up after ``status_retries`` conflicts.
        """
        if attempt < 0 or int(cache_status) < 0:
            raise ValueError("attempt and cache_status must be non-negative")
        name = cr_name(action_id)
        conflicts = 0
        delay = 0.02
        while True:
            obj = await self.kube.get_taskaction(self.namespace, name)
            if obj is None:
                raise ActionNotFoundError(f"failed to get TaskAction {name}: not found")
            status = obj.get("status") or {}
            if int(status.get("attempts") or 0) == attempt and int(status.get("cacheStatus") or 0) == int(
                cache_status
            ):
                return StatusWrite(False, conflicts)
            patch = {
                "metadata": {"resourceVersion": resource_version(obj)},
                "status": {"attempts": attempt, "cacheStatus": int(cache_status)},
            }
            try:
                written = await self.kube.merge_patch_taskaction(self.namespace, name, patch, status=True)
            except Conflict:
                conflicts += 1
                if conflicts > self.status_retries:
                    raise ActionsClientError(
                        f"failed to update status of {name}: {conflicts} conflicting writes in a row"
                    ) from None
                await asyncio.sleep(random.uniform(0, delay))
                delay = min(delay * 2, 1.0)
                continue
            except KubeError as exc:
                raise ActionsClientError(f"failed to update status of {name}: {exc.message}") from None
            if written is None:
                raise ActionNotFoundError(f"failed to update status of {name}: not found")
            return StatusWrite(True, conflicts)

    # --- reads ---------------------------------------------------------------------------------
    async def get_task_action(self, action_id: ActionId) -> dict[str, Any]:
        name = cr_name(action_id)
        obj = await self.kube.get_taskaction(self.namespace, name)
        if obj is None:
            raise ActionNotFoundError(f"failed to get TaskAction {name}: not found")
        return obj

    async def list_run_actions(self, run_id: RunId) -> list[dict[str, Any]]:
        """Every TaskAction of the run, by the project/domain/run labels (a live list, not a cache)."""
        return await self.kube.list_taskactions(self.namespace, run_selector(run_id))

    async def list_child_actions(self, parent_id: ActionId) -> list[dict[str, Any]]:
        """The parent's TaskAction itself plus its direct children (upstream ``ListChildActions``)."""
        items = await self.list_run_actions(parent_id.run)
        return [
            obj for obj in items
            if (spec := obj.get("spec") or {}).get("actionName") == parent_id.name
            or spec.get("parentActionName") == parent_id.name
        ]  # fmt: skip

    # --- subscribe -----------------------------------------------------------------------------
    def subscribe(
        self, run_name: str, parent_action_name: str, *, maxsize: int | None = None
    ) -> Subscription:
        """Updates of the run's actions whose parent is ``parent_action_name`` (``""``: the root itself).

        Updates flow only while watching (:meth:`start_watching`). Iterate with ``async for``; end
        with :meth:`unsubscribe`.
        """
        return self.informer.subscribe(run_name, parent_action_name, maxsize)

    def unsubscribe(self, sub: Subscription) -> None:
        self.informer.unsubscribe(sub)

    async def watch_for_updates(self, parent_id: ActionId) -> AsyncIterator[ActionUpdate | Sentinel]:
        """Upstream ``WatchForUpdates``: subscribe first, then the snapshot (the parent and its direct
        children), then :data:`SENTINEL`, then live updates. At least once: the two may overlap."""
        sub = self.subscribe(parent_id.run_name, parent_id.name)
        try:
            for obj in await self.list_child_actions(parent_id):
                update = update_from_taskaction(obj)
                if update is not None:
                    yield update
            yield SENTINEL
            async for update in sub:
                yield update
        finally:
            self.unsubscribe(sub)

    # --- watch ---------------------------------------------------------------------------------
    @property
    def watching(self) -> bool:
        return self.informer.running

    async def start_watching(self) -> None:
        """Start the informer (upstream ``StartWatching``): list, then watch. Idempotent.

        Returns once the initial list is in; objects it finds are published as additions.
        """
        await self.informer.start()

    async def stop_watching(self, grace: float = 10.0) -> None:
        """Stop the informer and close every subscription (upstream ``StopWatching``)."""
        await self.informer.stop(grace)
