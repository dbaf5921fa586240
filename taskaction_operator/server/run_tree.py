"""The tree one WatchActions stream keeps of its run: upstream's runStateManager
(runs/service/run_state_manager.go), which decides what each batch of changed rows sends.

Each node counts the phases of its descendants (``children_phase_counts``); a filter (PHASE
VALUE_IN, NAME CONTAINS_CASE_INSENSITIVE, as upstream's validateAndTransformFilters) makes a node
visible when it matches or leads to a matching descendant, and a node that stops being visible is
sent once more with ``meets_filter`` false.

DELIBERATE DIFFERENCE: upstream fails the stream when an action arrives before its parent (the
snapshot is ordered by ``created_at``, and a CR's creation time has one-second granularity, so a child
created in its parent's second may sort first by name); here it waits, unsent, until its parent
arrives and is then attached and sent with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from flyteidl2.common import list_pb2

from taskaction_operator.repo import Action
from taskaction_operator.server.convert import filter_name

__all__ = ["NodeUpdate", "RunTree"]

_FUNCTIONS = {"PHASE": list_pb2.Filter.VALUE_IN, "NAME": list_pb2.Filter.CONTAINS_CASE_INSENSITIVE}
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(eq=False)
class _Node:
    action: Action
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)
    #: Phases of every descendant (upstream keeps a count that drops to 0 rather than removing it).
    child_phase_counts: dict[int, int] = field(default_factory=dict)
    matching_descendants: int = 0

    @property
    def name(self) -> str:
        return self.action.name

    def ancestors(self) -> Iterable[_Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


@dataclass(frozen=True, slots=True)
class NodeUpdate:
    """One action to send: its row, whether it is shown, and its descendants' phase counts."""

    action: Action
    meets_filter: bool
    child_phase_counts: dict[int, int]


def _parse_filters(filters: Sequence[list_pb2.Filter]) -> tuple[frozenset[int], str]:
    phases: set[int] = set()
    name = ""
    for f in filters:
        if _FUNCTIONS.get(f.field) != f.function:
            function = list_pb2.Filter.Function.Name(f.function)
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"function {function} is not supported for filter {f.field!r} "
                "(supported: PHASE with VALUE_IN, NAME with CONTAINS_CASE_INSENSITIVE)",
            )
        if f.field == "PHASE":
            for value in f.values:
                try:
                    phases.add(int(value))
                except ValueError:
                    raise ConnectError(Code.INVALID_ARGUMENT, f"invalid phase value: {value!r}") from None
        elif f.values:
            name = f.values[0].lower()
    return frozenset(phases), name


class RunTree:
    """The run's actions as a tree, and what changes of it a stream must send."""

    def __init__(self, filters: Sequence[list_pb2.Filter] = ()) -> None:
        self._phases, self._name = _parse_filters(filters)
        self._nodes: dict[str, _Node] = {}
        self._visible: set[str] = set()
        self._matching: set[str] = set()
        #: Actions whose parent has not arrived yet, by parent name.
        self._orphans: dict[str, list[Action]] = {}

    def _matches(self, node: _Node) -> bool:
        if not self._phases and not self._name:
            return True
        phase_ok = not self._phases or int(node.action.phase) in self._phases
        return phase_ok and (not self._name or self._name in filter_name(node.action).lower())

    def _count(self, start: _Node | None, to_phase: int, from_phase: int, changed: set[str]) -> None:
        """upstream's modifyPhaseCounters: every ancestor from ``start`` up counts the move."""
        node = start
        while node is not None:
            counts = node.child_phase_counts
            if to_phase:
                counts[to_phase] = counts.get(to_phase, 0) + 1
            if from_phase:
                counts[from_phase] = max(counts.get(from_phase, 0) - 1, 0)
            changed.add(node.name)
            node = node.parent

    def _insert(self, action: Action, changed: set[str]) -> None:
        parent_name = action.parent_action_name
        parent = self._nodes.get(parent_name) if parent_name else None
        if parent_name and parent is None:
            self._orphans.setdefault(parent_name, []).append(action.clone())
            return
        node = _Node(action.clone(), parent=parent)
        self._nodes[node.name] = node
        changed.add(node.name)
        if parent is not None:
            parent.children.append(node)
            self._count(parent, int(action.phase), 0, changed)
        for child in self._orphans.pop(node.name, []):
            self._insert(child, changed)

    def _upsert(self, action: Action, changed: set[str]) -> None:
        current = self._nodes.get(action.name)
        if current is None:
            # A newer state of an action still waiting for its parent replaces the one waiting.
            waiting = self._orphans.get(action.parent_action_name or "")
            if waiting:
                waiting[:] = [o for o in waiting if o.name != action.name]
            self._insert(action, changed)
            return
        old = int(current.action.phase)
        current.action = action.clone()
        self._count(current.parent, int(action.phase), old, changed)
        changed.add(current.name)

    def upsert(self, actions: Iterable[Action]) -> list[NodeUpdate]:
        """Take in changed rows; what to send, oldest first (upstream's upsertActions)."""
        changed: set[str] = set()
        for action in actions:
            self._upsert(action, changed)
        for name in changed:
            node = self._nodes[name]
            matches = self._matches(node)
            if matches and name not in self._matching:
                self._matching.add(name)
                self._shift_matching(node.parent, +1)
            elif not matches and name in self._matching:
                self._matching.discard(name)
                self._shift_matching(node.parent, -1)
        shown: dict[str, bool] = {}
        for name in changed:
            if name in shown:
                continue
            node = self._nodes[name]
            if name in self._matching:
                self._visible.add(name)
                for ancestor in node.ancestors():
                    if ancestor.name not in self._visible:
                        self._visible.add(ancestor.name)
                        shown[ancestor.name] = True
                shown[name] = True
            elif name in self._visible:
                if node.matching_descendants > 0:
                    shown[name] = True
                else:
                    self._visible.discard(name)
                    shown[name] = False
                    self._prune(node.parent, shown)
        nodes = [self._nodes[name] for name in shown]
        nodes.sort(key=lambda n: (n.action.created_at or _NEVER, n.name))
        return [NodeUpdate(n.action, shown[n.name], dict(n.child_phase_counts)) for n in nodes]

    @staticmethod
    def _shift_matching(start: _Node | None, delta: int) -> None:
        node = start
        while node is not None:
            node.matching_descendants += delta
            node = node.parent

    def _prune(self, start: _Node | None, shown: dict[str, bool]) -> None:
        """Hide the ancestors that no longer lead to a match (pruneAncestorsWithoutMatchingDescendants)."""
        node = start
        while node is not None and node.name in self._visible:
            if node.matching_descendants > 0 or node.name in self._matching:
                return
            self._visible.discard(node.name)
            shown.setdefault(node.name, False)
            node = node.parent
