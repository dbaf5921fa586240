"""The client's informer: keeps one namespace's TaskActions current and feeds subscribers.

Upstream's ActionsClient takes its TaskAction informer from controller-runtime's shared cache and
fans each event out to subscribers (``actions/k8s/client.go``: ``StartWatching``, ``dispatchEvent``,
``handleWatchEvent``, ``notifySubscribers``). Here it is our own list+watch loop in one thread:

* it lists the namespace, then watches from the list's resourceVersion, and resumes from the last
  resourceVersion it saw when the server ends the stream (every ``watch_timeout`` seconds);
* when that resourceVersion has expired (410 Gone) it lists again and publishes what changed
  meanwhile, including deletions it missed, from the last state it saw (like client-go's
  ``DeletedFinalStateUnknown``);
* every event is handed to the event loop, where the cache is updated and the ``ActionUpdate`` is
  published to the subscribers of its ``<run>/<parent>`` (:mod:`.updates`), unless the TaskAction is
  labelled recorded (upstream's ``shouldSkipTaskAction``); slow subscribers coalesce instead of
  dropping.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from taskaction_operator.client.updates import (
    DEFAULT_BUFFER,
    SubscriberRegistry,
    Subscription,
    update_from_taskaction,
)
from taskaction_operator.crd.names import is_recorded
from taskaction_operator.k8s.errors import Gone, KubeError
from taskaction_operator.k8s.ops import KubeOps

log = logging.getLogger(__name__)

# Fields of a TaskAction the watch cache does not need (large, and not part of an ActionUpdate).
_SLIM_SPEC_DROP = ("taskTemplate", "conditionSpec")
_SLIM_STATUS_DROP = ("pluginState", "signalValue")


def _slim(body: Mapping[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in (body.get("spec") or {}).items() if k not in _SLIM_SPEC_DROP}
    status = {k: v for k, v in (body.get("status") or {}).items() if k not in _SLIM_STATUS_DROP}
    return {"metadata": body.get("metadata") or {}, "spec": spec, "status": status}


def resource_version(body: Mapping[str, Any]) -> str:
    """``metadata.resourceVersion``; ``""`` when absent."""
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


class TaskActionInformer:
    """List+watch of one namespace's TaskActions in a dedicated thread, published to subscribers."""

    def __init__(
        self, kube: KubeOps, namespace: str, *, buffer_size: int = DEFAULT_BUFFER, watch_timeout: int = 300
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.watch_timeout = watch_timeout
        self._registry = SubscriberRegistry(buffer_size)
        # Touched on the event loop only, except _watcher/_stopping (thread-safe use).
        self._cache: dict[str, dict[str, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._watcher: Any = None  # a kubernetes.watch.Watch
        #: Observability: events handled, watch restarts, relists.
        self.events = 0
        self.restarts = 0
        self.relists = 0

    # --- subscribers ---------------------------------------------------------------------------
    def subscribe(self, run_name: str, parent_action_name: str, maxsize: int | None = None) -> Subscription:
        return self._registry.subscribe(run_name, parent_action_name, maxsize)

    def unsubscribe(self, sub: Subscription) -> None:
        self._registry.unsubscribe(sub)

    # --- lifecycle -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None

    async def start(self) -> None:
        """List the namespace's TaskActions, then watch them from a dedicated thread. Idempotent.

        Returns once the initial list is in; objects it finds are published as additions.
        """
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        version = await self.resync()
        self._thread = threading.Thread(
            target=self._watch_thread, args=(version,), name=f"taskaction-watch-{self.namespace}", daemon=True
        )
        self._thread.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop the watch thread and close every subscription."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        deadline = asyncio.get_running_loop().time() + grace
        while thread.is_alive() and asyncio.get_running_loop().time() < deadline:
            watcher = self._watcher
            if watcher is not None:
                watcher.stop()  # shuts the socket down; repeated in case a new stream just opened
            await asyncio.to_thread(thread.join, 0.2)
        if thread.is_alive():
            log.warning("TaskAction watch thread did not stop within %.0fs", grace)
        self._thread = None
        self._registry.close_all()

    # --- the watch thread ----------------------------------------------------------------------
    def _watch_thread(self, version: str) -> None:
        """The blocking list+watch loop; every event is handed to the event loop."""
        backoff = 0.5
        while not self._stopping.is_set():
            watcher = self.kube.new_watcher()
            self._watcher = watcher
            if self._stopping.is_set():
                break
            relist = False
            try:
                for event in self.kube.watch_taskactions_blocking(
                    watcher, self.namespace, version, timeout_seconds=self.watch_timeout
                ):
                    kind, obj = str(event.get("type")), event.get("raw_object") or {}
                    if kind == "ERROR":
                        relist = int(obj.get("code") or 0) == 410
                        break
                    if resource_version(obj):
                        version = resource_version(obj)
                    if kind != "BOOKMARK":
                        self._call_soon(self._on_event, kind, obj)
                    backoff = 0.5
            except Gone:
                relist = True
            except KubeError as exc:
                log.warning("TaskAction watch failed (%s); retrying in %.1fs", exc.message, backoff)
            except Exception as exc:  # connection reset, timeouts, a stopped socket
                if self._stopping.is_set():
                    break
                log.warning("TaskAction watch broke (%s); retrying in %.1fs", exc, backoff)
            if self._stopping.is_set():
                break
            self.restarts += 1
            if relist:
                log.info("TaskAction watch expired at resourceVersion %s; relisting", version)
                version = self._relist_from_thread() or version
            else:
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        self._watcher = None

    def _call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _relist_from_thread(self) -> str | None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return None
        fut: Future[str] = asyncio.run_coroutine_threadsafe(self.resync(), loop)
        try:
            return fut.result(timeout=120)
        except Exception as exc:
            log.warning("TaskAction relist failed (%s); resuming the old watch", exc)
            self._stopping.wait(1.0)
            return None

    # --- on the event loop ---------------------------------------------------------------------
    async def resync(self) -> str:
        """List the namespace and publish the difference from what was seen last; returns the list's
        resourceVersion. Objects gone since are published as deleted, from the last state seen (like
        client-go's ``DeletedFinalStateUnknown``). The watch calls it at start and when its
        resourceVersion expired (410 Gone)."""
        items, version = await self.kube.list_taskactions_versioned(self.namespace)
        self.relists += 1
        seen: set[str] = set()
        for obj in items:
            name = str(obj["metadata"]["name"])
            seen.add(name)
            old = self._cache.get(name)
            if old is None or resource_version(old) != resource_version(obj):
                self._on_event("ADDED" if old is None else "MODIFIED", obj)
        for name in [n for n in self._cache if n not in seen]:
            self._on_event("DELETED", self._cache[name])  # missed deletion: last state we saw
        return version

    def _on_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        """Update the cache, then publish (unless labelled recorded, as upstream)."""
        self.events += 1
        name = str((obj.get("metadata") or {}).get("name") or "")
        deleted = kind == "DELETED"
        if deleted:
            self._cache.pop(name, None)
        else:
            self._cache[name] = _slim(obj)
        if is_recorded(obj):
            return
        update = update_from_taskaction(obj, deleted=deleted)
        if update is not None:
            self._registry.publish(update)
