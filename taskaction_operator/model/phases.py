"""The enums the schema stores, each backed by its flyteidl2 protobuf enum.

Values are the protobuf integers, so a row written here reads the same in Flyte and back.
"""

from __future__ import annotations

import enum
from typing import Any

from flyteidl2.common import phase_pb2
from flyteidl2.core import catalog_pb2
from flyteidl2.workflow import run_definition_pb2


class _ProtoEnum(enum.IntEnum):
    """An IntEnum whose members mirror a protobuf enum that carries a name prefix."""

    @classmethod
    def _proto(cls) -> Any:
        return _PROTOS[cls.__name__][0]

    @classmethod
    def _prefix(cls) -> str:
        return str(_PROTOS[cls.__name__][1])

    def to_protobuf_name(self) -> str:
        """The protobuf enum value's name, e.g. ``ACTION_PHASE_QUEUED``."""
        return str(self._proto().Name(int(self)))

    def to_protobuf_value(self) -> int:
        """The protobuf enum's integer."""
        return int(self)

    @classmethod
    def from_protobuf(cls, value: int | str) -> Any:
        """The member for a protobuf integer or name (with or without the prefix).

        Raises ValueError for a value the protobuf enum does not define.
        """
        if isinstance(value, str):
            name = value if value.startswith(cls._prefix()) else cls._prefix() + value
            try:
                value = int(cls._proto().Value(name))
            except ValueError:
                raise ValueError(f"{value!r} is not a valid {cls.__name__}") from None
        return cls(int(value))


class ActionPhase(_ProtoEnum):
    """``flyteidl2.common.ActionPhase``."""

    UNSPECIFIED = 0
    QUEUED = 1
    WAITING_FOR_RESOURCES = 2
    INITIALIZING = 3
    RUNNING = 4
    SUCCEEDED = 5
    FAILED = 6
    ABORTED = 7
    TIMED_OUT = 8
    PAUSED = 9
    RECOVERED = 10

    def is_terminal(self) -> bool:
        """SUCCEEDED, FAILED, ABORTED, TIMED_OUT and RECOVERED, as in every upstream implementation."""
        return self in TERMINAL_PHASES


TERMINAL_PHASES: frozenset[ActionPhase] = frozenset(
    {
        ActionPhase.SUCCEEDED,
        ActionPhase.FAILED,
        ActionPhase.ABORTED,
        ActionPhase.TIMED_OUT,
        ActionPhase.RECOVERED,
    }
)
#: Phases the database guard lets move anywhere (the retry path): FAILED and TIMED_OUT.
RETRYABLE_PHASES: frozenset[ActionPhase] = frozenset({ActionPhase.FAILED, ActionPhase.TIMED_OUT})


class ActionType(_ProtoEnum):
    """``flyteidl2.workflow.ActionType``; stored as an integer in ``actions.action_type``."""

    UNSPECIFIED = 0
    TASK = 1
    TRACE = 2
    CONDITION = 3


class RunSource(_ProtoEnum):
    """``flyteidl2.workflow.RunSource``; stored as its *name* in ``actions.run_source``."""

    UNSPECIFIED = 0
    WEB = 1
    CLI = 2
    SCHEDULE_TRIGGER = 3
    TRACKED = 4
    ARTIFACT_TRIGGER = 5


class CatalogCacheStatus(_ProtoEnum):
    """``flyteidl2.core.CatalogCacheStatus``; an integer in the database and in ``status.cacheStatus``."""

    CACHE_DISABLED = 0
    CACHE_MISS = 1
    CACHE_HIT = 2
    CACHE_POPULATED = 3
    CACHE_LOOKUP_FAILURE = 4
    CACHE_PUT_FAILURE = 5
    CACHE_SKIPPED = 6
    CACHE_EVICTED = 7


#: Each enum's protobuf enum and the prefix its value names carry.
_PROTOS: dict[str, tuple[Any, str]] = {
    "ActionPhase": (phase_pb2.ActionPhase, "ACTION_PHASE_"),
    "ActionType": (run_definition_pb2.ActionType, "ACTION_TYPE_"),
    "RunSource": (run_definition_pb2.RunSource, "RUN_SOURCE_"),
    "CatalogCacheStatus": (catalog_pb2.CatalogCacheStatus, ""),
}
