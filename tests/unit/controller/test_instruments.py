"""The metric recording functions: each records what its name says, on the operator's registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskaction_operator import metrics
from taskaction_operator.controller import instruments
from taskaction_operator.controller.recording.patch_plan import PatchPlan


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_gauges_are_published_together() -> None:
    instruments.publish_gauges(queue_depth=3, tracked=7)
    assert (value("taskaction_recorder_queue_depth"), value("taskaction_tracked_objects")) == (3, 7)
    instruments.publish_gauges(queue_depth=0, tracked=0)
    assert value("taskaction_recorder_queue_depth") == 0


def test_the_sweep_leader_gauge_says_what_holds_at_the_scrape_not_at_the_last_sweep() -> None:
    """Leadership lapses on its own (a renewal hung): the gauge must say so at once, not at the next
    sweep tick, or a replica that stepped down and its successor both report leading meanwhile."""
    leading = True
    instruments.follow_sweep_leadership(lambda: leading)
    assert value("taskaction_sweep_leader") == 1
    leading = False  # no publish, no tick in between
    assert value("taskaction_sweep_leader") == 0
    leading = True
    assert value("taskaction_sweep_leader") == 1
    instruments.follow_sweep_leadership(lambda: False)


def test_database_errors_are_counted_by_class() -> None:
    temporary, permanent = (
        value("taskaction_db_errors_total", kind="temporary"),
        value("taskaction_db_errors_total", kind="permanent"),
    )
    instruments.record_db_error(OSError("down"), True)
    instruments.record_db_error(ValueError("bad"), False)
    instruments.record_db_error(ValueError("bad"), False)
    assert value("taskaction_db_errors_total", kind="temporary") == temporary + 1
    assert value("taskaction_db_errors_total", kind="permanent") == permanent + 2


def test_a_patch_is_counted_by_what_it_changes() -> None:
    before = value("taskaction_api_writes_total", kind="guard+release+label")
    instruments.count_patch(PatchPlan(add_guard=True, remove_guard=True, label_recorded=True))
    assert value("taskaction_api_writes_total", kind="guard+release+label") == before + 1


def test_lag_is_taken_from_the_newest_managed_fields_time() -> None:
    count = value("taskaction_recording_lag_seconds_count")
    total = value("taskaction_recording_lag_seconds_sum")
    now = datetime.now(UTC)
    fields = [
        {"time": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        {"time": (now - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        {},
    ]
    instruments.record_lag({"metadata": {"managedFields": fields}})
    instruments.record_lag({"metadata": {}})  # nothing to measure
    assert value("taskaction_recording_lag_seconds_count") == count + 1
    assert 1.0 <= value("taskaction_recording_lag_seconds_sum") - total < 60.0
