"""An action's attempts, merged from its recorded events as upstream does (runs/service/run_service.go:
getAttempts and mergeEvents): events grouped by attempt, each group ordered by reported time (by
updated time when either lacks one), the latest terminal event giving the attempt's phase, outputs
and error, logs merged by name (the latest wins), and one phase transition per phase first seen.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from flyteidl2.core import execution_pb2
from flyteidl2.workflow import run_definition_pb2 as wf
from google.protobuf import timestamp_pb2

from taskaction_operator.model import ActionPhase
from taskaction_operator.repo import ActionEvent

__all__ = [
    "attempts_from_events",
    "event_message",
    "is_terminal_phase",
    "last_attempt_is_terminal",
    "merge_events",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_message(row: ActionEvent) -> wf.ActionEvent:
    """The stored event (``info``, upstream's ToActionEvent).

    DELIBERATE DIFFERENCE: a row stored without ``info`` is read from its key columns (upstream
    unmarshals the empty bytes into an event of attempt 0 and phase UNSPECIFIED)."""
    message = row.get_info()
    if message is None:
        message = wf.ActionEvent(
            id=row.action_id.to_proto(), attempt=row.attempt, phase=int(row.phase), version=row.version
        )
        if row.updated_at is not None:
            message.updated_time.FromDatetime(row.updated_at)
    return message


def is_terminal_phase(phase: int) -> bool:
    """Whether an event's phase number is terminal (upstream's IsTerminalPhase; unknown numbers are not)."""
    return phase in ActionPhase._value2member_map_ and ActionPhase(phase).is_terminal()


def _time(ts: timestamp_pb2.Timestamp) -> datetime:
    when: datetime = ts.ToDatetime(tzinfo=UTC)
    return when


def _earlier(a: wf.ActionEvent, b: wf.ActionEvent) -> int:
    """mergeEvents' order: reported time when both have one, else updated time (unset is the epoch)."""
    if a.HasField("reported_time") and b.HasField("reported_time"):
        x, y = _time(a.reported_time), _time(b.reported_time)
    else:
        x = _time(a.updated_time) if a.HasField("updated_time") else _EPOCH
        y = _time(b.updated_time) if b.HasField("updated_time") else _EPOCH
    return -1 if x < y else (1 if x > y else 0)


def _transitions(events: Sequence[wf.ActionEvent]) -> list[wf.PhaseTransition]:
    out: list[wf.PhaseTransition] = []
    seen: set[int] = set()
    for event in events:
        if event.phase in seen:
            continue
        if out:
            out[-1].end_time.CopyFrom(event.updated_time)
        out.append(wf.PhaseTransition(phase=event.phase, start_time=event.updated_time))
        if is_terminal_phase(event.phase):
            out[-1].end_time.CopyFrom(event.updated_time)
            break
        seen.add(event.phase)
    return out


def merge_events(attempt: int, events: Iterable[wf.ActionEvent]) -> wf.ActionAttempt:
    """One attempt from its events (upstream's mergeEvents)."""
    ordered = sorted(events, key=functools.cmp_to_key(_earlier))
    if not ordered:
        return wf.ActionAttempt(attempt=attempt)
    logs: dict[str, execution_pb2.TaskLog] = {}
    log_context = None
    report_uri = ""
    last = ordered[-1]
    for event in reversed(ordered):
        if log_context is None and event.HasField("log_context"):
            log_context = event.log_context
        for log in event.log_info:
            logs.setdefault(log.name, log)
        if not report_uri and event.outputs.report_uri:
            report_uri = event.outputs.report_uri
        if is_terminal_phase(event.phase):
            last = event  # walking backwards: the earliest terminal event wins, as upstream
    start = ordered[0].updated_time
    result = wf.ActionAttempt(
        attempt=attempt,
        phase=last.phase,
        start_time=start,
        logs_available=log_context is not None,
        log_info=[logs[name] for name in sorted(logs)],
        cache_status=last.cache_status,
        cluster_events=[ce for event in ordered for ce in event.cluster_events],
        cluster=last.cluster,
        phase_transitions=_transitions(ordered),
    )
    if last.HasField("outputs") or report_uri:
        result.outputs.CopyFrom(last.outputs)
        if report_uri:
            result.outputs.report_uri = report_uri
    if last.HasField("error_info"):
        result.error_info.CopyFrom(last.error_info)
    if log_context is not None:
        result.log_context.CopyFrom(log_context)
    if is_terminal_phase(last.phase):
        # Never before the start (timestamp granularity, as upstream).
        end = last.updated_time if _time(last.updated_time) >= _time(start) else start
        result.end_time.CopyFrom(end)
    return result


def attempts_from_events(rows: Iterable[ActionEvent]) -> list[wf.ActionAttempt]:
    """Every attempt of the action, ascending (upstream's getAttempts)."""
    by_attempt: dict[int, list[wf.ActionEvent]] = {}
    for row in rows:
        message = event_message(row)
        by_attempt.setdefault(message.attempt, []).append(message)
    return [merge_events(n, by_attempt[n]) for n in sorted(by_attempt)]


def last_attempt_is_terminal(attempts: Sequence[wf.ActionAttempt]) -> bool:
    """Whether the highest-numbered attempt reached a terminal phase (upstream's lastAttemptIsTerminal:
    WatchActionDetails ends only once the events, not just the actions row, show the end)."""
    if not attempts:
        return False
    return is_terminal_phase(max(attempts, key=lambda a: a.attempt).phase)
