"""Shared subscriptions (:mod:`taskaction_operator.server.fanout`) over a fake the test feeds."""

from __future__ import annotations

import asyncio

import pytest

from taskaction_operator.server.fanout import Fanout


class FakeSubscription:
    """Yields what the test feeds; counts its closes."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, int] | Exception] = asyncio.Queue()
        self.closed = 0

    def __aiter__(self) -> FakeSubscription:
        return self

    async def __anext__(self) -> tuple[str, int]:
        item = await self.queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def aclose(self) -> None:
        self.closed += 1


async def next_of(receiver: object) -> tuple[str, int]:
    return await asyncio.wait_for(anext(receiver), 5)  # type: ignore[call-overload, no-any-return]


Item = tuple[str, int]


@pytest.fixture
def opened() -> list[FakeSubscription]:
    """Every subscription the fanout opened, in order."""
    return []


@pytest.fixture
def fanout(opened: list[FakeSubscription]) -> Fanout[str, Item]:
    async def subscribe(key: str) -> FakeSubscription:
        opened.append(FakeSubscription())
        return opened[-1]

    return Fanout(subscribe, lambda item: item[0])  # type: ignore[arg-type]


async def test_one_subscription_per_key_shared_and_closed_with_its_last_receiver(
    fanout: Fanout[str, Item], opened: list[FakeSubscription]
) -> None:
    async with fanout.receive("run") as first, fanout.receive("run") as second:
        assert len(opened) == 1 and fanout.subscriptions == 1
        opened[0].queue.put_nowait(("a1", 1))
        assert await next_of(first) == ("a1", 1) and await next_of(second) == ("a1", 1)
    assert opened[0].closed == 1 and fanout.subscriptions == 0


async def test_a_slow_receiver_keeps_the_latest_item_per_key_in_its_first_slot(
    fanout: Fanout[str, Item], opened: list[FakeSubscription]
) -> None:
    async with fanout.receive("run") as receiver:
        for item in [("a1", 1), ("a2", 1), ("a1", 2)]:
            opened[0].queue.put_nowait(item)
        await asyncio.sleep(0.05)  # let the pump hand them over before reading
        assert [await next_of(receiver), await next_of(receiver)] == [("a1", 2), ("a2", 1)]


async def test_a_failed_subscription_fails_its_receivers_and_the_next_one_starts_afresh(
    fanout: Fanout[str, Item], opened: list[FakeSubscription]
) -> None:
    async with fanout.receive("run") as receiver:
        opened[0].queue.put_nowait(RuntimeError("database gone"))
        with pytest.raises(RuntimeError, match="database gone"):
            await next_of(receiver)
        async with fanout.receive("run") as again:
            assert len(opened) == 2
            opened[1].queue.put_nowait(("a1", 3))
            assert await next_of(again) == ("a1", 3)
