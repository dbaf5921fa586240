"""Run and action identifiers, and the TaskAction CR name derived from them.

``org`` is dropped everywhere, as upstream does: ``TaskActionSpec`` (``executor/api/v1/taskaction_types.go``)
has no org field, and ``buildTaskActionName`` (``actions/k8s/client.go``) leaves it out of the CR name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Imported where used: identifiers stay free of protobuf, so a command line's usage error (which
    # checks names) never loads it.
    from flyteidl2.common import identifier_pb2

#: The root action of every run.
ROOT_ACTION_NAME = "a0"


@dataclass(frozen=True, slots=True)
class RunId:
    """A run: ``project/domain/name``."""

    project: str
    domain: str
    name: str

    def __str__(self) -> str:
        return f"{self.project}/{self.domain}/{self.name}"

    @property
    def root(self) -> ActionId:
        """The run's root action, ``a0``."""
        return ActionId(self, ROOT_ACTION_NAME)

    @classmethod
    def from_proto(cls, msg: identifier_pb2.RunIdentifier) -> RunId:
        """From flyteidl2's RunIdentifier (``org`` dropped)."""
        return cls(msg.project, msg.domain, msg.name)

    def to_proto(self) -> identifier_pb2.RunIdentifier:
        from flyteidl2.common import identifier_pb2

        return identifier_pb2.RunIdentifier(project=self.project, domain=self.domain, name=self.name)


@dataclass(frozen=True, slots=True)
class ActionId:
    """An action inside a run."""

    run: RunId
    name: str

    @classmethod
    def of(cls, project: str, domain: str, run: str, name: str) -> ActionId:
        return cls(RunId(project, domain, run), name)

    @classmethod
    def from_proto(cls, msg: identifier_pb2.ActionIdentifier) -> ActionId:
        """From flyteidl2's ActionIdentifier (``org`` dropped)."""
        return cls(RunId.from_proto(msg.run), msg.name)

    def to_proto(self) -> identifier_pb2.ActionIdentifier:
        from flyteidl2.common import identifier_pb2

        return identifier_pb2.ActionIdentifier(run=self.run.to_proto(), name=self.name)

    @property
    def project(self) -> str:
        return self.run.project

    @property
    def domain(self) -> str:
        return self.run.domain

    @property
    def run_name(self) -> str:
        return self.run.name

    @property
    def is_root(self) -> bool:
        return self.name == ROOT_ACTION_NAME

    def __str__(self) -> str:
        return f"{self.run}/{self.name}"


def cr_name(action: ActionId) -> str:
    """The TaskAction CR name: ``<run>-<action>``; the root (``a0``, or legacy name == run) is ``<run>-a0``.

    No hashing, no truncation, no project or domain (upstream ``buildTaskActionName``).
    """
    if action.name == action.run.name:
        return f"{action.run.name}-{ROOT_ACTION_NAME}"
    return f"{action.run.name}-{action.name}"
