"""The abort retry schedule: full jitter, 1 s doubling to a 5 min cap."""

from __future__ import annotations

import pytest

from taskaction_operator.controller.aborts.sweeper import full_jitter


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (9, 256.0), (10, 300.0), (30, 300.0)],
)
def test_ceiling_doubles_from_initial_to_cap(attempt: int, ceiling: float) -> None:
    assert full_jitter(attempt, 1.0, 300.0, rand=lambda: 0.999999) == pytest.approx(ceiling * 0.999999)
    assert full_jitter(attempt, 1.0, 300.0, rand=lambda: 0.0) == 0.0


def test_jitter_spreads_over_the_whole_interval() -> None:
    samples = [full_jitter(4, 1.0, 300.0) for _ in range(2000)]
    assert all(0.0 <= s < 8.0 for s in samples)
    assert min(samples) < 1.0 and max(samples) > 7.0
