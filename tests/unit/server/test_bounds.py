"""The unary deadline and the stream slots of :mod:`taskaction_operator.server.bounds`."""

from __future__ import annotations

import asyncio

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from taskaction_operator.server.bounds import StreamLimits, UnaryDeadline
from tests.unit.server.test_auth import ctx


async def test_a_unary_call_past_its_deadline_answers_deadline_exceeded() -> None:
    async def slow(request: object, _ctx: object) -> str:
        await asyncio.sleep(5)
        return "late"

    async def quick(request: object, _ctx: object) -> str:
        return "on time"

    deadline = UnaryDeadline(max_seconds=0.05)
    with pytest.raises(ConnectError) as info:
        await deadline.intercept_unary(slow, None, ctx("ListRuns", None))
    assert info.value.code is Code.DEADLINE_EXCEEDED
    assert await deadline.intercept_unary(quick, None, ctx("ListRuns", None)) == "on time"


async def test_stream_slots_are_taken_and_given_back() -> None:
    limits = StreamLimits(max_streams=2)
    async with limits.stream(ctx("WatchRuns", None)), limits.stream(ctx("WatchRuns", None)):
        assert limits.open == 2
        with pytest.raises(ConnectError) as info:
            async with limits.stream(ctx("WatchRuns", None)):
                pass
        assert info.value.code is Code.RESOURCE_EXHAUSTED
    assert limits.open == 0
    with pytest.raises(ValueError, match="max_streams"):
        StreamLimits(max_streams=0)
