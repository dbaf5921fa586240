"""The operator's composition root: everything built at start-up, kept in kopf's memo, closed at exit."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taskaction_operator.config import Settings
from taskaction_operator.controller import instruments
from taskaction_operator.controller.aborts.deleter import KubeDeleter
from taskaction_operator.controller.aborts.sweeper import AbortSweeper, wake_on_abort_requests
from taskaction_operator.controller.recording.adopter import OrphanAdopter
from taskaction_operator.controller.recording.expiry import delete_expired, on_leader_every
from taskaction_operator.controller.recording.guards import sweep_recorded_guards
from taskaction_operator.controller.recording.index import ActionIndex
from taskaction_operator.controller.recording.reconciler import ActionReconciler
from taskaction_operator.controller.recording.recorder import Recorder
from taskaction_operator.controller.recording.vanished import sweep_vanished
from taskaction_operator.controller.shards.ownership import ShardOwnership, scope_of
from taskaction_operator.k8s import KubeOps
from taskaction_operator.k8s.lease import LeaseElector
from taskaction_operator.k8s.lease_table import LeaseTable
from taskaction_operator.repo import (
    Action,
    ActionEvent,
    ActionRepo,
    NotFoundError,
    PhaseUpdate,
    TemporaryRepoError,
    upgrade_async,
)

LEASE_NAME = "taskaction-operator-sweep"


def _is_temporary_repo_error(exc: BaseException) -> bool:
    return isinstance(exc, TemporaryRepoError)


def _is_repo_not_found(exc: BaseException) -> bool:
    return isinstance(exc, NotFoundError)


@dataclass
class Runtime:
    settings: Settings
    repo: ActionRepo
    kube: KubeOps
    recorder: Recorder[Action, ActionEvent, PhaseUpdate]
    index: ActionIndex
    adopter: OrphanAdopter
    reconciler: ActionReconciler
    sweeper: AbortSweeper
    #: The Leases of the sweep's leadership and of the shards (one set of threads for both).
    leases: LeaseTable
    elector: LeaseElector
    #: With ``TASKACTION_SHARDS`` > 1: the shards this replica records (None: it records everything).
    ownership: ShardOwnership | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    #: Called first on stop (e.g. the shard watch's restarter).
    stoppers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def owns(self, body: Mapping[str, Any]) -> bool:
        """Whether this replica records the TaskAction ``body``: always, unsharded; else when its
        run's shard is owned (an object naming no run goes to shard 0, whose owner reports it)."""
        return self.ownership is None or self.ownership.owns_body(body)

    def forget_unowned(self) -> int:
        """Drop the per-object memory of runs whose shard this replica no longer owns."""
        return 0 if self.ownership is None else self.reconciler.forget(self.ownership.owns_run)

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        if settings.migrate:
            await upgrade_async(settings.database_url)
        repo = await ActionRepo.connect(settings.database_url)
        kube = KubeOps.from_kubeconfig()
        recorder: Recorder[Action, ActionEvent, PhaseUpdate] = Recorder(
            # Its events are derived from TaskAction status: never a second row of a transition
            # the executor reported itself (with its own version).
            functools.partial(repo.record_batch, derived=True),
            batch_max=settings.batch_max,
            is_temporary=_is_temporary_repo_error,
            on_batch=instruments.record_batch,
            on_error=instruments.record_db_error,
        )
        recorder.start()
        index = ActionIndex(kube)
        adopter = OrphanAdopter(index, kube, parent_wait=settings.parent_wait)
        reconciler = ActionReconciler(
            recorder, index, adopter, guard=settings.record_guard, shard_label=settings.shards > 1
        )
        sweeper = AbortSweeper(
            repo,
            KubeDeleter(kube, index, settings.namespaces),
            interval=settings.sweep_interval,
            max_attempts=settings.abort_max_attempts,
            initial_delay=settings.abort_initial_delay,
            max_delay=settings.abort_max_delay,
            is_not_found=_is_repo_not_found,
            on_attempt=instruments.record_abort_attempt,
        )
        leases = LeaseTable(
            kube, settings.effective_lease_namespace, timeout=max(1.0, settings.lease_duration / 3)
        )
        elector = LeaseElector(
            leases, name=LEASE_NAME, identity=settings.identity, duration=settings.lease_duration
        )
        ownership = None
        if settings.shards > 1:
            ownership = ShardOwnership(
                leases,
                identity=settings.identity,
                shards=settings.shards,
                duration=settings.lease_duration,
                scope=scope_of(settings.namespaces),
            )
        rt = cls(
            settings, repo, kube, recorder, index, adopter, reconciler, sweeper, leases, elector, ownership
        )
        instruments.follow_sweep_leadership(lambda: elector.is_leader)
        if ownership is not None:
            instruments.follow_shards(lambda: ownership.owned)
        rt.tasks.append(asyncio.create_task(elector.run(), name="sweep-lease"))
        rt.tasks.append(
            asyncio.create_task(
                sweeper.run(lambda: elector.is_leader, on_tick=rt.publish_gauges), name="abort-sweep"
            )
        )
        rt.tasks.append(
            asyncio.create_task(
                wake_on_abort_requests(
                    repo.watch_abort_requests, sweeper, on_restart=instruments.count_watch_restart
                ),
                name="abort-wakeups",
            )
        )
        rt.tasks.append(
            asyncio.create_task(
                sweep_recorded_guards(
                    kube, settings.namespaces, settings.guard_sweep_interval, lambda: elector.is_leader
                ),
                name="recorded-guards",
            )
        )
        rt.tasks.append(
            asyncio.create_task(
                # Sharded, each replica tracks only its own shards' objects: each sweeps for its own.
                sweep_vanished(
                    kube,
                    reconciler,
                    settings.vanished_sweep_interval,
                    (lambda: True) if ownership is not None else (lambda: elector.is_leader),
                ),
                name="vanished",
            )
        )
        if settings.delete_recorded_after > 0:
            rt.tasks.append(
                asyncio.create_task(
                    on_leader_every(
                        settings.guard_sweep_interval,
                        lambda: elector.is_leader,
                        lambda: delete_expired(kube, settings.namespaces, settings.delete_recorded_after),
                        "delete expired recorded TaskActions",
                    ),
                    name="recorded-expiry",
                )
            )
        return rt

    def publish_gauges(self) -> None:
        instruments.publish_gauges(
            queue_depth=self.recorder.depth,
            tracked=self.reconciler.tracked,
        )

    async def stop(self) -> None:
        """Finish in-flight writes, give up the sweep Lease, close connections."""
        for stopper in self.stoppers:
            with contextlib.suppress(Exception):
                await stopper()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.recorder.stop()
        await self.adopter.close()
        if self.ownership is not None:
            await self.ownership.release_all()
        with contextlib.suppress(Exception):
            await self.elector.release()
        self.leases.close()
        await self.repo.close()
        self.kube.close()
