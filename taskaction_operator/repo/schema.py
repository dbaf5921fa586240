"""The ``actions`` and ``action_events`` tables, declared once as typed SQLAlchemy models.

This is the single source of the schema's shape: the SQL builders read their columns from
:data:`actions` and :data:`action_events`, and a test compares this metadata with what the Alembic
migrations (hand-written DDL mirroring upstream's files) produce in a real database, so the two cannot
drift apart.

Column names, SQL types, nullability, server defaults, primary keys and indexes are Flyte's
(upstream ``runs/migrations/sql/*.sql``; models in ``runs/repository/models/action.go`` and
``action_event.go``), including the later migrations' ``created_by``/``created_by_subject`` and the
``idx_actions_run_created_name`` and partial ``idx_actions_paused`` indexes. Upstream's other tables
(projects, tasks, task_specs, triggers, trigger_revisions, settings) are left out: this operator does
not use them.

Upstream's two tables are upstream's exactly (its services read them with sqlx ``SELECT *`` into
structs, which refuses any column the struct lacks). What is ours lives in tables of our own, prefixed
``taskaction_``: ``taskaction_action_states`` holds the state string of ``UpdateActionState``
(DELIBERATE DIFFERENCE: upstream writes the state's ``phase`` string into the INTEGER ``phase``
column, a latent bug, upstream runs/repository/impl/action.go: UpdateActionState).

These ORM classes are not the domain model handed to callers (that is :mod:`.models`, plain
dataclasses with no session state); they exist to declare the schema.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ActionEventRecord",
    "ActionRecord",
    "ActionStateRecord",
    "Base",
    "action_events",
    "action_states",
    "actions",
]

_TZ = DateTime(timezone=True)
_NOW = text("CURRENT_TIMESTAMP")


class Base(DeclarativeBase):
    metadata = MetaData()


class ActionRecord(Base):
    """A run (its root action, ``a0``, with no parent) or one of its actions."""

    __tablename__ = "actions"

    project: Mapped[str] = mapped_column(Text, primary_key=True)
    domain: Mapped[str] = mapped_column(Text, primary_key=True)
    run_name: Mapped[str] = mapped_column(Text, primary_key=True, server_default=text("''"))
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    parent_action_name: Mapped[str | None] = mapped_column(Text)
    phase: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    run_source: Mapped[str] = mapped_column(Text, server_default=text("''"))
    action_type: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    action_group: Mapped[str | None] = mapped_column(Text)
    task_project: Mapped[str | None] = mapped_column(Text)
    task_domain: Mapped[str | None] = mapped_column(Text)
    task_name: Mapped[str | None] = mapped_column(Text)
    task_version: Mapped[str | None] = mapped_column(Text)
    task_type: Mapped[str] = mapped_column(Text, server_default=text("''"))
    task_short_name: Mapped[str | None] = mapped_column(Text)
    function_name: Mapped[str] = mapped_column(Text, server_default=text("''"))
    environment_name: Mapped[str | None] = mapped_column(Text)
    action_spec: Mapped[bytes | None] = mapped_column(LargeBinary)
    action_details: Mapped[bytes | None] = mapped_column(LargeBinary)
    detailed_info: Mapped[bytes | None] = mapped_column(LargeBinary)
    run_spec: Mapped[bytes | None] = mapped_column(LargeBinary)
    abort_requested_at: Mapped[datetime | None] = mapped_column(_TZ)
    abort_attempt_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    abort_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(_TZ, server_default=_NOW)
    updated_at: Mapped[datetime] = mapped_column(_TZ, server_default=_NOW)
    ended_at: Mapped[datetime | None] = mapped_column(_TZ)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    cache_status: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    trigger_name: Mapped[str | None] = mapped_column(Text)
    trigger_task_name: Mapped[str | None] = mapped_column(Text)
    trigger_revision: Mapped[int | None] = mapped_column(BigInteger)
    # Migration 2 (upstream): the creator's EnrichedIdentity proto.
    created_by: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Migration 3 (upstream): the creator's OIDC subject.
    created_by_subject: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("idx_actions_run_lookup", "project", "domain", "run_name"),
        Index("idx_actions_parent", "parent_action_name"),
        Index("idx_actions_phase", "phase"),
        Index("idx_actions_created", "created_at"),
        Index("idx_actions_abort_pending", "abort_requested_at"),
        Index("idx_actions_created_by_subject", "created_by_subject"),
        Index("idx_actions_run_created_name", "project", "domain", "run_name", "created_at", "name"),
        Index(
            "idx_actions_paused",
            "project",
            "domain",
            "run_name",
            postgresql_where=text("phase = 9"),
        ),
    )


class ActionEventRecord(Base):
    """One reported event of an action attempt; first write per key wins."""

    __tablename__ = "action_events"

    project: Mapped[str] = mapped_column(Text, primary_key=True)
    domain: Mapped[str] = mapped_column(Text, primary_key=True)
    run_name: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    phase: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    info: Mapped[bytes | None] = mapped_column(LargeBinary)
    error_kind: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(_TZ, server_default=_NOW)
    updated_at: Mapped[datetime] = mapped_column(_TZ, server_default=_NOW)

    __table_args__ = (Index("idx_action_events_error_kind", "error_kind"),)


class ActionStateRecord(Base):
    """Ours: the state string an action's controller stores (``update_action_state``), one per action,
    gone with its action."""

    __tablename__ = "taskaction_action_states"

    project: Mapped[str] = mapped_column(Text, primary_key=True)
    domain: Mapped[str] = mapped_column(Text, primary_key=True)
    run_name: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(_TZ, server_default=_NOW)

    __table_args__ = (
        ForeignKeyConstraint(
            ["project", "domain", "run_name", "name"],
            ["actions.project", "actions.domain", "actions.run_name", "actions.name"],
            ondelete="CASCADE",
            name="taskaction_action_states_action_fkey",
        ),
    )


actions: Table = ActionRecord.__table__  # type: ignore[assignment]
action_states: Table = ActionStateRecord.__table__  # type: ignore[assignment]
action_events: Table = ActionEventRecord.__table__  # type: ignore[assignment]
