"""CI reports of a finished run: a JUnit XML file (one testcase per action) and GitHub Actions
annotations (``::error``/``::warning`` workflow commands), built from the recorded rows. Pure: the
caller reads the rows and each failed action's last error, this module only formats them.

A testcase's ``time`` is the action's duration in seconds. FAILED and TIMED_OUT actions carry a
``<failure>`` whose ``type`` is the error kind (``USER``, ``SYSTEM``; the phase when none was
reported) and whose ``message`` is the error's; ABORTED and unfinished actions are ``<skipped>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from taskaction_operator.cli.render import elapsed_ms, phase_name, tree_order
from taskaction_operator.cli.tables import timestamp
from taskaction_operator.model import ActionPhase, RunId
from taskaction_operator.repo import Action

FAILED = frozenset({ActionPhase.FAILED, ActionPhase.TIMED_OUT})


@dataclass(frozen=True)
class ActionError:
    """The last reported error of an action: its kind (``USER``, ``SYSTEM``…) and message."""

    kind: str | None
    message: str | None


def _seconds(a: Action) -> str:
    ms = elapsed_ms(a)
    return f"{(ms or 0) / 1000:.3f}"


def _failure_text(a: Action, error: ActionError | None) -> tuple[str, str]:
    phase = phase_name(a.phase)
    kind = (error.kind if error else None) or phase
    message = (error.message if error else None) or f"action {a.name} {phase}"
    return kind, message


def junit_xml(run_id: RunId, actions: Sequence[Action], errors: Mapping[str, ActionError]) -> bytes:
    """The run as one ``<testsuite>`` in ``<testsuites>``, actions in tree order."""
    ordered = [a for a, _prefix, _guide in tree_order(actions)]
    root = next((a for a in ordered if a.parent_action_name is None), None)
    failures = sum(ActionPhase(a.phase) in FAILED for a in ordered)
    skipped = sum(not ActionPhase(a.phase).is_terminal() or a.phase == ActionPhase.ABORTED for a in ordered)
    total = _seconds(root) if root is not None else "0.000"
    counts = {"tests": str(len(ordered)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
    suites = ET.Element("testsuites", {"name": f"run {run_id}", **counts, "time": total})
    suite = ET.SubElement(suites, "testsuite", {"name": str(run_id), **counts, "time": total})
    if root is not None and root.created_at is not None:
        suite.set("timestamp", timestamp(root.created_at) or "")
    classname = f"{run_id.project}.{run_id.domain}.{run_id.name}"
    for a in ordered:
        task = a.task_short_name or a.function_name or a.task_type
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": classname, "name": f"{a.name} ({task})" if task else a.name, "time": _seconds(a)},
        )
        phase = ActionPhase(a.phase)
        if phase in FAILED:
            kind, message = _failure_text(a, errors.get(a.name))
            ET.SubElement(
                case, "failure", {"type": kind, "message": message}
            ).text = f"{phase.name} after {a.attempts} attempt(s): {message}"
        elif phase is ActionPhase.ABORTED:
            ET.SubElement(case, "skipped", {"message": f"aborted: {a.abort_reason or 'no reason recorded'}"})
        elif not phase.is_terminal():
            ET.SubElement(case, "skipped", {"message": f"not finished ({phase.name})"})
    ET.indent(suites)
    text: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(
    run_id: RunId, actions: Sequence[Action], errors: Mapping[str, ActionError]
) -> list[str]:
    """One workflow command per action that did not succeed: ``::error`` for FAILED and TIMED_OUT,
    ``::warning`` for ABORTED (https://docs.github.com/actions/reference/workflow-commands)."""
    lines = []
    for a in sorted(actions, key=lambda a: a.name):
        phase = ActionPhase(a.phase)
        title = _escape_property(f"run {run_id.name} action {a.name} {phase.name}")
        if phase in FAILED:
            kind, message = _failure_text(a, errors.get(a.name))
            lines.append(f"::error title={title}::{_escape_data(f'{kind}: {message}')}")
        elif phase is ActionPhase.ABORTED:
            lines.append(f"::warning title={title}::{_escape_data(a.abort_reason or 'aborted')}")
    return lines
