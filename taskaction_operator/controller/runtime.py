"""The operator's composition root: everything built at start-up, kept in kopf's memo, closed at exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskaction_operator import metrics
from taskaction_operator.config import Settings
from taskaction_operator.controller.aborts.sweeper import AbortSweeper
from taskaction_operator.controller.recording.patch_plan import PatchPlan
from taskaction_operator.controller.recording.reconciler import ActionReconciler
from taskaction_operator.controller.recording.recorder import Recorder
from taskaction_operator.k8s import KubeOps
from taskaction_operator.k8s.lease import LeaseElector
from taskaction_operator.model import ActionId, cr_name
from taskaction_operator.model.times import parse_rfc3339
from taskaction_operator.repo import (
    Action,
    ActionEvent,
    ActionRepo,
    NotFoundError,
    PhaseUpdate,
    TemporaryRepoError,
    upgrade_async,
)

log = logging.getLogger(__name__)
LEASE_NAME = "taskaction-operator-sweep"


class KubeDeleter:
    """Finds an action's TaskAction (this process's index first, then by labels) and deletes it."""

    def __init__(self, kube: KubeOps, reconciler: ActionReconciler, namespaces: tuple[str, ...]) -> None:
        self._kube = kube
        self._reconciler = reconciler
        self._namespaces = namespaces

    async def locate(self, action_id: ActionId) -> list[tuple[str, str]] | None:
        """Where the action's TaskAction is; ``[]`` when it is gone; None when it is not ours.

        A cluster-wide operator sees everything, so not found means gone (upstream's rule). A
        namespace-scoped one only answers for actions it has seen or finds in its namespaces; the
        others belong to another operator sharing the database, and their requests are left alone.
        """
        seen = self._reconciler.locate(action_id)
        if seen is not None:
            return [seen] if await self.exists(*seen) else []
        selector = ",".join(
            [
                f"flyte.org/project={action_id.project}",
                f"flyte.org/domain={action_id.domain}",
                f"flyte.org/run={action_id.run_name}",
                f"flyte.org/action={action_id.name}",
            ]
        )
        places: list[tuple[str, str]] = []
        for ns in self._namespaces or (None,):
            for item in await self._kube.list_taskactions(ns, selector):
                places.append((item["metadata"]["namespace"], item["metadata"]["name"]))
        if not self._namespaces:
            return places
        name = cr_name(action_id)
        for ns in self._namespaces:
            if (ns, name) not in places and await self._kube.get_taskaction(ns, name) is not None:
                places.append((ns, name))
        return places or None

    async def delete(self, namespace: str, name: str) -> None:
        await self._kube.delete_taskaction(namespace, name)

    async def exists(self, namespace: str, name: str) -> bool:
        return await self._kube.get_taskaction(namespace, name) is not None

    async def warn(self, namespace: str, name: str, reason: str, message: str) -> None:
        body = await self._kube.get_taskaction(namespace, name)
        if body is not None:
            await self._kube.post_event(body, type_="Warning", reason=reason, message=message)


@dataclass
class Runtime:
    settings: Settings
    repo: ActionRepo
    kube: KubeOps
    recorder: Recorder[Action, ActionEvent, PhaseUpdate]
    reconciler: ActionReconciler
    sweeper: AbortSweeper
    elector: LeaseElector
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        if settings.migrate:
            await upgrade_async(settings.database_url)
        repo = await ActionRepo.connect(settings.database_url)
        kube = KubeOps.from_kubeconfig()

        def on_batch(items: int, rows: int, seconds: float) -> None:
            metrics.BATCHES.observe(rows)

        def is_temporary(exc: BaseException) -> bool:
            temporary = isinstance(exc, TemporaryRepoError)
            metrics.DB_ERRORS.labels("temporary" if temporary else "permanent").inc()
            return temporary

        recorder: Recorder[Action, ActionEvent, PhaseUpdate] = Recorder(
            repo.record_batch, batch_max=settings.batch_max, is_temporary=is_temporary, on_batch=on_batch
        )
        recorder.start()
        reconciler = ActionReconciler(
            recorder, kube, guard=settings.record_guard, parent_wait=settings.parent_wait
        )
        sweeper = AbortSweeper(
            repo,
            KubeDeleter(kube, reconciler, settings.namespaces),
            interval=settings.sweep_interval,
            max_attempts=settings.abort_max_attempts,
            initial_delay=settings.abort_initial_delay,
            max_delay=settings.abort_max_delay,
            is_temporary=lambda exc: isinstance(exc, TemporaryRepoError),
            is_not_found=lambda exc: isinstance(exc, NotFoundError),
            on_attempt=lambda outcome: metrics.ABORT_ATTEMPTS.labels(outcome).inc(),
        )
        elector = LeaseElector(
            kube,
            namespace=settings.effective_lease_namespace,
            name=LEASE_NAME,
            identity=settings.identity,
            duration=settings.lease_duration,
        )
        rt = cls(settings, repo, kube, recorder, reconciler, sweeper, elector)
        rt.tasks.append(asyncio.create_task(elector.run(), name="sweep-lease"))
        rt.tasks.append(
            asyncio.create_task(sweeper.run(lambda: elector.is_leader, rt._leadership), name="abort-sweep")
        )
        rt.tasks.append(asyncio.create_task(rt._wake_on_abort_requests(), name="abort-wakeups"))
        return rt

    async def _leadership(self) -> None:
        metrics.SWEEP_LEADER.set(1 if self.elector.is_leader else 0)
        metrics.QUEUE_DEPTH.set(self.recorder.depth)
        metrics.TRACKED.set(self.reconciler.tracked)

    async def _wake_on_abort_requests(self) -> None:
        """Wake the sweep at once when an abort is requested (a NOTIFY), not at the next tick."""
        while True:
            try:
                async with self.repo.watch_abort_requests() as requests:
                    async for _ in requests:
                        self.sweeper.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("abort-request listener failed (%s); retrying", exc)
                metrics.WATCH_RESTARTS.inc()
                await asyncio.sleep(1)

    def observe_lag(self, body: Any) -> None:
        """Lag from the object's last write (its newest managedFields time, 1 s precision) to now."""
        times = [parse_rfc3339(m.get("time")) for m in (body.get("metadata", {}).get("managedFields") or [])]
        newest = max((t for t in times if t is not None), default=None)
        if newest is not None:
            metrics.RECORDING_LAG.observe(max(0.0, (datetime.now(UTC) - newest).total_seconds()))

    @staticmethod
    def count_patch(plan: PatchPlan) -> None:
        kind = "+".join(
            k
            for k, on in (
                ("owner", plan.owner_reference is not None),
                ("guard", plan.add_guard),
                ("release", plan.remove_guard),
                ("label", plan.label_recorded),
            )
            if on
        )
        metrics.API_WRITES.labels(kind).inc()

    async def stop(self) -> None:
        """Finish in-flight writes, give up the sweep Lease, close connections."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.recorder.stop()
        await self.reconciler.close()
        with contextlib.suppress(Exception):
            await self.elector.release()
        await self.repo.close()
        self.kube.close()
