"""The operator's process-wide start-up: its heap settled once started."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from taskaction_operator.controller.lifecycle import GC_THRESHOLDS, settle_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settling_freezes_what_start_up_left_and_collects_the_young_generation_less_often(
    restored_gc: None,
) -> None:
    started = Node()  # an object of start-up, still referenced
    settle_heap()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 0
    assert not any(o is started for o in gc.get_objects()), "start-up's objects are never walked again"


def test_cyclic_garbage_made_after_start_up_is_still_collected(restored_gc: None) -> None:
    settle_heap()
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None, "a cycle outlives its last reference until a collection"
    gc.collect()
    assert gone() is None


def test_cyclic_garbage_of_start_up_is_collected_before_the_freeze(restored_gc: None) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    settle_heap()
    assert gone() is None, "frozen garbage would never be freed"
