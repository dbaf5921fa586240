"""Output for the command line: rows as dicts, then as a table, JSON or YAML; colour only on a terminal.

Every format is built from the same plain dicts, so ``-o json`` and ``-o yaml`` carry exactly what the
table shows plus the fields too wide for it. Colour is used when stdout is a terminal, ``NO_COLOR``
is unset (https://no-color.org) and ``TERM`` is not ``dumb``, or when ``--color always`` is given.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

import yaml
from google.protobuf import json_format

from taskaction_operator.cli.tables import Style, columns_table, timestamp
from taskaction_operator.model import ActionPhase, ActionType, CatalogCacheStatus
from taskaction_operator.repo import Action, ActionEvent

_PHASE_COLOURS = {
    ActionPhase.SUCCEEDED: "32",  # green
    ActionPhase.RECOVERED: "32",
    ActionPhase.FAILED: "31",  # red
    ActionPhase.TIMED_OUT: "31",
    ActionPhase.ABORTED: "35",  # magenta
    ActionPhase.RUNNING: "36",  # cyan
    ActionPhase.INITIALIZING: "36",
    ActionPhase.QUEUED: "33",  # yellow
    ActionPhase.WAITING_FOR_RESOURCES: "33",
    ActionPhase.PAUSED: "34",  # blue
}
DIM = "2"


def use_colour(mode: str, stream: IO[str] | None = None, env: Mapping[str, str] | None = None) -> bool:
    """``always``/``never``, or ``auto``: a terminal, no ``NO_COLOR``, not ``TERM=dumb``."""
    env = os.environ if env is None else env
    if mode == "always":
        return True
    if mode == "never" or env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def phase_name(phase: ActionPhase | int) -> str:
    return ActionPhase(int(phase)).name


def phase_colour(name: str) -> str | None:
    try:
        return _PHASE_COLOURS.get(ActionPhase[name])
    except KeyError:
        return None


# --- values --------------------------------------------------------------------------------------
def human_duration(ms: float | None) -> str:
    """``850ms``, ``12.3s``, ``4m05s``, ``2h03m``; ``-`` for none."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{int(ms)}ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def elapsed_ms(action: Action, now: datetime | None = None) -> float | None:
    """How long the action ran: ``duration_ms`` once ended, else the time since it was created."""
    if action.duration_ms is not None:
        return float(action.duration_ms)
    if action.created_at is None:
        return None
    return max(0.0, ((now or datetime.now(UTC)) - action.created_at).total_seconds() * 1000)


def duration_cell(action: Action, now: datetime | None = None) -> str:
    """The duration of an ended action; for one still going, its time so far followed by ``+``."""
    text = human_duration(elapsed_ms(action, now))
    return text if action.ended_at is not None or text == "-" else text + "+"


def action_dict(a: Action) -> dict[str, Any]:
    """An ``actions`` row for output: identities, enum names, ISO times; protobuf blobs summarised."""
    spec = _safe(a.get_action_spec)
    out: dict[str, Any] = {
        "project": a.project,
        "domain": a.domain,
        "run": a.run_name,
        "name": a.name,
        "parent": a.parent_action_name,
        "phase": phase_name(a.phase),
        "actionType": ActionType(int(a.action_type)).name,
        "runSource": a.run_source or None,
        "taskType": a.task_type or None,
        "taskName": a.task_name,
        "taskVersion": a.task_version,
        "shortName": a.task_short_name,
        "functionName": a.function_name or None,
        "group": a.action_group,
        "attempts": a.attempts,
        "cacheStatus": CatalogCacheStatus(int(a.cache_status)).name,
        "createdAt": timestamp(a.created_at),
        "updatedAt": timestamp(a.updated_at),
        "endedAt": timestamp(a.ended_at),
        "durationMs": a.duration_ms,
        "inputUri": (spec.input_uri or None) if spec is not None else None,
        "runOutputBase": (spec.run_output_base or None) if spec is not None else None,
        "abortRequestedAt": timestamp(a.abort_requested_at),
        "abortAttemptCount": a.abort_attempt_count,
        "abortReason": a.abort_reason,
    }
    return out


def event_dict(e: ActionEvent) -> dict[str, Any]:
    info = _safe(e.get_info)
    out: dict[str, Any] = {
        "run": e.run_name,
        "action": e.name,
        "attempt": e.attempt,
        "phase": phase_name(e.phase),
        "version": e.version,
        "errorKind": e.error_kind,
        "createdAt": timestamp(e.created_at),
        "updatedAt": timestamp(e.updated_at),
        "errorMessage": error_message(e),
        "info": json_format.MessageToDict(info) if info is not None else None,
    }
    return out


def error_message(e: ActionEvent) -> str | None:
    """The event's ``ErrorInfo.message``, when it has one."""
    info = _safe(e.get_info)
    return (info.error_info.message or None) if info is not None and info.HasField("error_info") else None


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:  # a blob that does not parse is shown as absent, not a crash
        return None


# --- formats -------------------------------------------------------------------------------------
def dump(value: Any, fmt: str, out: IO[str] | None = None) -> None:
    """``value`` as JSON (indented) or YAML, to ``out`` (stdout)."""
    out = out or sys.stdout
    if fmt == "json":
        out.write(json.dumps(value, indent=2, default=str) + "\n")
    else:
        out.write(yaml.safe_dump(value, sort_keys=False, default_flow_style=False, width=1 << 16))


# --- the action tree -----------------------------------------------------------------------------
def tree_order(actions: Sequence[Action]) -> list[tuple[Action, str, str]]:
    """Actions depth-first from the root, children by creation then name: (action, prefix, guide).

    ``prefix`` is the box-drawing lead-in of the action's own line. Actions whose parent is not in the
    list (not recorded yet) are appended at the top level.
    """
    by_name = {a.name: a for a in actions}
    children: dict[str | None, list[Action]] = {}
    for a in actions:
        parent = a.parent_action_name if a.parent_action_name in by_name else None
        children.setdefault(parent, []).append(a)
    for kids in children.values():
        kids.sort(key=lambda a: (a.created_at or datetime.min.replace(tzinfo=UTC), a.name))
    out: list[tuple[Action, str, str]] = []

    def walk(node: Action, prefix: str, guide: str, depth: int) -> None:
        out.append((node, prefix, guide))
        kids = children.get(node.name, [])
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            walk(kid, guide + ("└─ " if last else "├─ "), guide + ("   " if last else "│  "), depth + 1)

    roots = children.get(None, [])
    for root in roots:
        walk(root, "", "", 0)
    return out


def tree_dict(actions: Sequence[Action]) -> list[dict[str, Any]]:
    """The tree as nested dicts (``children`` lists), for ``-o json|yaml``."""
    nodes = {a.name: {**action_dict(a), "children": []} for a in actions}
    top: list[dict[str, Any]] = []
    for a, _prefix, _guide in tree_order(actions):
        parent = nodes.get(a.parent_action_name or "")
        (parent["children"] if parent is not None and a.parent_action_name else top).append(nodes[a.name])
    return top


def tree_table(
    actions: Sequence[Action],
    *,
    style: Style | None = None,
    colour: bool = False,
    now: datetime | None = None,
) -> str:
    """The tree as a table (``runs tree``, the live ``runs watch``)."""
    from taskaction_operator.cli.columns import tree_columns

    rows = tree_order(actions)
    return columns_table(rows, tree_columns(now), style or Style(colour=colour))
