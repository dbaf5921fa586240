"""The recorder batches concurrent callers into few transactions, retries temporary failures until
the database answers, and isolates a permanent failure to the caller whose rows caused it.

The sink stands at the database boundary: it records each "transaction" it is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from taskaction_operator.controller.recording.recorder import Recorder, Work


class Unavailable(Exception):
    pass


class Sink:
    def __init__(self, *, fail_times: int = 0, poison: str | None = None, delay: float = 0.0) -> None:
        self.transactions: list[list[str]] = []
        self.fail_times = fail_times
        self.poison = poison
        self.delay = delay

    async def __call__(
        self, *, actions: Sequence[str], events: Sequence[str], updates: Sequence[str]
    ) -> None:
        await asyncio.sleep(self.delay)
        if self.fail_times:
            self.fail_times -= 1
            raise Unavailable("connection refused")
        rows = [*actions, *events, *updates]
        if self.poison in rows:
            raise ValueError(f"bad row {self.poison}")
        self.transactions.append(rows)


def recorder(sink: Sink, batch_max: int = 500) -> Recorder[str, str, str]:
    return Recorder(
        sink, batch_max=batch_max, is_temporary=lambda e: isinstance(e, Unavailable), max_backoff=0.01
    )


async def test_concurrent_callers_share_transactions_and_each_sees_its_commit() -> None:
    sink = Sink(delay=0.01)
    rec = recorder(sink)
    rec.start()
    await asyncio.gather(*(rec.submit(Work(actions=[f"a{i}"], updates=[f"u{i}"])) for i in range(50)))
    await rec.stop()
    committed = [row for tx in sink.transactions for row in tx]
    assert sorted(committed) == sorted([f"a{i}" for i in range(50)] + [f"u{i}" for i in range(50)])
    assert len(sink.transactions) < 10, "50 callers should need a handful of transactions"
    assert rec.batches == len(sink.transactions)


async def test_batches_stay_within_the_row_limit() -> None:
    sink = Sink(delay=0.005)
    rec = recorder(sink, batch_max=10)
    rec.start()
    await asyncio.gather(*(rec.submit(Work(events=[f"e{i}", f"f{i}"])) for i in range(40)))
    await rec.stop()
    assert max(len(tx) for tx in sink.transactions) <= 10


async def test_temporary_failures_are_retried_until_the_database_answers() -> None:
    sink = Sink(fail_times=5)
    rec = recorder(sink)
    rec.start()
    await rec.submit(Work(updates=["u1"]))
    await rec.stop()
    assert sink.transactions == [["u1"]]
    assert rec.temporary_failures == 5


async def test_a_permanent_failure_reaches_only_its_caller() -> None:
    sink = Sink(poison="bad", delay=0.01)
    rec = recorder(sink)
    rec.start()
    results = await asyncio.gather(
        *(rec.submit(Work(actions=[name])) for name in ("ok1", "bad", "ok2", "ok3")), return_exceptions=True
    )
    await rec.stop()
    assert [type(r).__name__ for r in results] == ["NoneType", "ValueError", "NoneType", "NoneType"]
    assert sorted(row for tx in sink.transactions for row in tx) == ["ok1", "ok2", "ok3"]


async def test_empty_work_needs_no_transaction_and_a_stopped_recorder_refuses() -> None:
    sink = Sink()
    rec = recorder(sink)
    await rec.submit(Work())
    with pytest.raises(RuntimeError, match="not running"):
        await rec.submit(Work(actions=["a"]))
    assert sink.transactions == []


async def test_every_database_error_is_reported_once_with_its_class() -> None:
    sink = Sink(fail_times=2, poison="bad")
    errors: list[tuple[str, bool]] = []
    rec: Recorder[str, str, str] = Recorder(
        sink,
        is_temporary=lambda e: isinstance(e, Unavailable),
        max_backoff=0.01,
        on_error=lambda exc, temporary: errors.append((type(exc).__name__, temporary)),
    )
    rec.start()
    await rec.submit(Work(updates=["u1"]))
    with pytest.raises(ValueError, match="bad row"):
        await rec.submit(Work(actions=["bad"]))
    await rec.stop()
    assert errors == [("Unavailable", True), ("Unavailable", True), ("ValueError", False)]
