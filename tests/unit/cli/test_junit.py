"""The CI reports of a run, read back with a real JUnit parser (junitparser): one testcase per action
with its time, FAILED/TIMED_OUT as failures typed by error kind, ABORTED and unfinished as skipped;
and GitHub workflow annotations, escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from junitparser import Failure, JUnitXml, Skipped

from taskaction_operator.cli.junit import ActionError, github_annotations, junit_xml
from taskaction_operator.model import ActionId, ActionPhase, ActionType, RunId
from taskaction_operator.repo import Action

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RUN = RunId("p", "d", "r1")


def row(name: str, parent: str | None, phase: ActionPhase, seconds: float | None) -> Action:
    a = Action.new(ActionId(RUN, name), parent_action_name=parent, phase=phase, action_type=ActionType.TASK,
                   created_at=T0, task_short_name=f"fn_{name}")  # fmt: skip
    if seconds is not None:
        a.ended_at = T0 + timedelta(seconds=seconds)
        a.duration_ms = int(seconds * 1000)
    return a


ACTIONS = [
    row("a0", None, ActionPhase.FAILED, 12.5),
    row("a1", "a0", ActionPhase.SUCCEEDED, 2.25),
    row("a2", "a0", ActionPhase.FAILED, 4),
    row("a3", "a0", ActionPhase.TIMED_OUT, 9),
    row("a4", "a0", ActionPhase.ABORTED, 1),
    row("a5", "a0", ActionPhase.RUNNING, None),
]
ERRORS = {"a2": ActionError("USER", "ValueError: bad shard\nline two, with: colon")}


def test_the_report_parses_as_junit_with_one_testcase_per_action(tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    path.write_bytes(junit_xml(RUN, ACTIONS, ERRORS))
    (suite,) = list(JUnitXml.fromfile(str(path)))
    assert (suite.name, suite.tests, suite.failures, suite.skipped, suite.time) == ("p/d/r1", 6, 3, 2, 12.5)
    cases = {case.name: case for case in suite}
    assert list(cases) == ["a0 (fn_a0)", "a1 (fn_a1)", "a2 (fn_a2)", "a3 (fn_a3)", "a4 (fn_a4)", "a5 (fn_a5)"]
    assert cases["a1 (fn_a1)"].time == 2.25 and cases["a1 (fn_a1)"].is_passed
    assert {c.classname for c in cases.values()} == {"p.d.r1"}
    (failure,) = cases["a2 (fn_a2)"].result
    assert isinstance(failure, Failure)
    assert (failure.type, failure.message) == ("USER", "ValueError: bad shard\nline two, with: colon")
    (timed_out,) = cases["a3 (fn_a3)"].result
    assert isinstance(timed_out, Failure) and timed_out.type == "TIMED_OUT"
    (aborted,) = cases["a4 (fn_a4)"].result
    assert isinstance(aborted, Skipped) and aborted.message.startswith("aborted")
    (unfinished,) = cases["a5 (fn_a5)"].result
    assert isinstance(unfinished, Skipped) and unfinished.message == "not finished (RUNNING)"


def test_github_annotations_name_every_action_that_did_not_succeed_escaped() -> None:
    lines = github_annotations(RUN, ACTIONS, ERRORS)
    assert [line.split(" ", 1)[0] for line in lines] == ["::error", "::error", "::error", "::warning"]
    assert lines[1] == (
        "::error title=run r1 action a2 FAILED::USER: ValueError: bad shard%0Aline two, with: colon"
    )
    assert lines[0].startswith("::error title=run r1 action a0 FAILED::FAILED: action a0 FAILED")
