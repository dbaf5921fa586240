"""Subscribe fan-out: TaskAction watch events → ``ActionUpdate`` → per-(run, parent) subscribers.

Upstream (``actions/k8s/client.go``: ``Subscribe``, ``subscriberKey``, ``notifySubscribers``) keys
subscriptions by ``<run>/<parent>`` and gives each subscriber a channel of 1000; when a channel is
full, ``notifySubscribers`` *drops* the update with a log line. A slow subscriber then silently
misses, e.g., the terminal update of a child and waits for ever. Here, deliberately
unlike upstream, each subscriber has a bounded buffer that on overflow *coalesces by action*:
it keeps only the latest update of each action (in the slot of that action's oldest queued update),
so nothing is lost except intermediate states, the consumer is told how many states were folded
(``ActionUpdate.coalesced``, ``Subscription.coalesced``), and other subscribers are never slowed
down (publishing never waits). While coalescing, the buffer holds at most one update per distinct
action, so its size is bounded by ``max(maxsize, actions under that parent)``.

Everything here runs on the event loop thread; no locks, no I/O.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskaction_operator.client.taskaction_cr import output_uri
from taskaction_operator.crd.observe import InvalidTaskAction, observe
from taskaction_operator.model import ActionId, ActionPhase

log = logging.getLogger(__name__)

#: Upstream's default ``watchBufferSize``.
DEFAULT_BUFFER = 1000


@dataclass(frozen=True, slots=True)
class ActionError:
    """``status.errorState`` of a failed action (``core.ExecutionError`` upstream)."""

    code: str
    kind: str  # USER, SYSTEM or "" (UNKNOWN)
    message: str


@dataclass(frozen=True, slots=True)
class ActionUpdate:
    """One observed state of a TaskAction, as upstream's in-process ``ActionUpdate``.

    ``parent`` is ``""`` for a root. ``error`` is set only for FAILED (as upstream's
    WatchForUpdates). ``coalesced`` counts the earlier updates of this action that a slow
    subscriber's buffer folded into this one (0 when nothing was lost).
    """

    action_id: ActionId
    parent: str
    phase: ActionPhase
    output_uri: str = ""
    error: ActionError | None = None
    is_deleted: bool = False
    task_type: str = ""
    short_name: str = ""
    resource_version: str = ""
    coalesced: int = 0

    @property
    def key(self) -> str:
        """The subscription key this update is published under: ``<run>/<parent>``."""
        return subscription_key(self.action_id.run_name, self.parent)


def subscription_key(run_name: str, parent_action_name: str) -> str:
    """Upstream's ``subscriberKey`` (``actions/k8s/client.go``): run and parent, not project or domain."""
    return f"{run_name}/{parent_action_name}"


def update_from_taskaction(body: Mapping[str, Any], *, deleted: bool = False) -> ActionUpdate | None:
    """Upstream ``buildActionUpdate``; None for bodies that identify no action.

    A deleted non-terminal TaskAction reads ABORTED, a deleted terminal one keeps its phase.
    """
    try:
        obs = observe(body, deleted=deleted)
    except InvalidTaskAction:
        return None
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    error = None
    err = status.get("errorState") or {}
    if obs.phase is ActionPhase.FAILED and err:
        error = ActionError(
            str(err.get("code") or ""), str(err.get("kind") or ""), str(err.get("message") or "")
        )
    return ActionUpdate(
        action_id=obs.action_id,
        parent=obs.parent or "",
        phase=obs.phase,
        output_uri=output_uri(body),
        error=error,
        is_deleted=deleted,
        task_type=str(spec.get("taskType") or ""),
        short_name=str(spec.get("shortName") or ""),
        resource_version=str((body.get("metadata") or {}).get("resourceVersion") or ""),
    )


class _Slot:
    """A buffer entry; mutable so a coalescing push can replace its update in place."""

    __slots__ = ("update",)

    def __init__(self, update: ActionUpdate) -> None:
        self.update = update


class Subscription:
    """One subscriber's bounded, coalescing buffer; iterate it with ``async for``.

    Iteration ends after :meth:`close` once the buffered updates are drained (like reading a closed
    Go channel).
    """

    def __init__(self, run_name: str, parent_action_name: str, maxsize: int = DEFAULT_BUFFER) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.run_name = run_name
        self.parent_action_name = parent_action_name
        self.key = subscription_key(run_name, parent_action_name)
        self.maxsize = maxsize
        self._slots: collections.deque[_Slot] = collections.deque()
        self._by_action: dict[str, _Slot] = {}  # only while coalescing
        self._coalescing = False
        self._wakeup = asyncio.Event()
        self._closed = False
        #: Updates folded into later ones of the same action, over the subscription's life.
        self.coalesced = 0
        #: Times the buffer overflowed and switched to coalescing.
        self.overflows = 0
        #: Updates handed to the consumer.
        self.delivered = 0

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, update: ActionUpdate) -> None:
        """Buffer ``update``; never blocks, never drops (coalesces by action once full)."""
        if self._closed:
            return
        if not self._coalescing and len(self._slots) >= self.maxsize:
            self._start_coalescing()
        if self._coalescing:
            name = update.action_id.name
            slot = self._by_action.get(name)
            if slot is not None:
                folded = slot.update.coalesced + 1
                slot.update = dataclasses.replace(update, coalesced=folded)
                self.coalesced += 1
            else:
                slot = _Slot(update)
                self._by_action[name] = slot
                self._slots.append(slot)
        else:
            self._slots.append(_Slot(update))
        self._wakeup.set()

    def _start_coalescing(self) -> None:
        """Fold the buffer to one slot per action (the oldest slot, carrying the latest update)."""
        self.overflows += 1
        log.warning(
            "subscriber %s is slow: buffer of %d full, coalescing updates by action", self.key, self.maxsize
        )
        kept: collections.deque[_Slot] = collections.deque()
        by_action: dict[str, _Slot] = {}
        for slot in self._slots:
            name = slot.update.action_id.name
            first = by_action.get(name)
            if first is None:
                by_action[name] = slot
                kept.append(slot)
            else:
                folded = first.update.coalesced + slot.update.coalesced + 1
                first.update = dataclasses.replace(slot.update, coalesced=folded)
                self.coalesced += 1
        self._slots = kept
        self._by_action = by_action
        self._coalescing = True

    def get_nowait(self) -> ActionUpdate | None:
        """The next buffered update, or None."""
        if not self._slots:
            return None
        slot = self._slots.popleft()
        if self._coalescing:
            name = slot.update.action_id.name
            if self._by_action.get(name) is slot:
                del self._by_action[name]
            if not self._slots:  # caught up: back to keeping every update
                self._coalescing = False
                self._by_action.clear()
        if not self._slots:
            self._wakeup.clear()
        self.delivered += 1
        return slot.update

    async def get(self) -> ActionUpdate | None:
        """The next update; None once closed and drained."""
        while True:
            update = self.get_nowait()
            if update is not None:
                return update
            if self._closed:
                return None
            await self._wakeup.wait()

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ActionUpdate:
        update = await self.get()
        if update is None:
            raise StopAsyncIteration
        return update


class SubscriberRegistry:
    """Subscriptions by ``<run>/<parent>``; :meth:`publish` hands an update to each matching one."""

    def __init__(self, buffer_size: int = DEFAULT_BUFFER) -> None:
        self.buffer_size = buffer_size
        self._subs: dict[str, set[Subscription]] = {}

    def subscribe(self, run_name: str, parent_action_name: str, maxsize: int | None = None) -> Subscription:
        sub = Subscription(run_name, parent_action_name, maxsize or self.buffer_size)
        self._subs.setdefault(sub.key, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove and close ``sub``; an empty key is forgotten (upstream ``Unsubscribe``)."""
        subs = self._subs.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.key]
        sub.close()

    def publish(self, update: ActionUpdate) -> int:
        """Buffer ``update`` for every subscriber of its key; returns how many got it."""
        subs = self._subs.get(update.key)
        if not subs:
            return 0
        for sub in subs:
            sub.push(update)
        return len(subs)

    def close_all(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                self.unsubscribe(sub)

    def __len__(self) -> int:
        return sum(len(s) for s in self._subs.values())
