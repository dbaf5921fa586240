"""Upstream's ``20260408110000_init_schema.sql``, reduced to the two tables this operator uses.

Same DDL as upstream for ``actions`` and ``action_events`` (``IF NOT EXISTS`` everywhere, so a
database Flyte already migrated is adopted as is). Upstream's projects, tasks, task_specs, triggers
and trigger_revisions tables are deliberately not created.

Revision ID: m0001
Revises:
"""

from __future__ import annotations

from alembic import op

revision: str = "m0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS actions (
            project             TEXT NOT NULL,
            domain              TEXT NOT NULL,
            run_name            TEXT NOT NULL DEFAULT '',
            name                TEXT NOT NULL,
            parent_action_name  TEXT,
            phase               INTEGER NOT NULL DEFAULT 1,
            run_source          TEXT NOT NULL DEFAULT '',
            action_type         INTEGER NOT NULL DEFAULT 0,
            action_group        TEXT,
            task_project        TEXT,
            task_domain         TEXT,
            task_name           TEXT,
            task_version        TEXT,
            task_type           TEXT NOT NULL DEFAULT '',
            task_short_name     TEXT,
            function_name       TEXT NOT NULL DEFAULT '',
            environment_name    TEXT,
            action_spec         BYTEA,
            action_details      BYTEA,
            detailed_info       BYTEA,
            run_spec            BYTEA,
            abort_requested_at  TIMESTAMPTZ,
            abort_attempt_count INTEGER NOT NULL DEFAULT 0,
            abort_reason        TEXT,
            created_at          TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            updated_at          TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            ended_at            TIMESTAMPTZ,
            duration_ms         BIGINT,
            attempts            INTEGER NOT NULL DEFAULT 0,
            cache_status        INTEGER NOT NULL DEFAULT 0,
            trigger_name        TEXT,
            trigger_task_name   TEXT,
            trigger_revision    BIGINT,
            PRIMARY KEY (project, domain, run_name, name)
        )
        """
    )
    op.execute("CREATE INDEX IF NOT EXISTS idx_actions_run_lookup ON actions (project, domain, run_name)")
    op.execute("CREATE INDEX IF NOT EXISTS idx_actions_parent ON actions (parent_action_name)")
    op.execute("CREATE INDEX IF NOT EXISTS idx_actions_phase ON actions (phase)")
    op.execute("CREATE INDEX IF NOT EXISTS idx_actions_created ON actions (created_at)")
    op.execute("CREATE INDEX IF NOT EXISTS idx_actions_abort_pending ON actions (abort_requested_at)")
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS action_events (
            project     TEXT NOT NULL,
            domain      TEXT NOT NULL,
            run_name    TEXT NOT NULL,
            name        TEXT NOT NULL,
            attempt     INTEGER NOT NULL,
            phase       INTEGER NOT NULL,
            version     INTEGER NOT NULL,
            info        BYTEA,
            error_kind  TEXT,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            updated_at  TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            PRIMARY KEY (project, domain, run_name, name, attempt, phase, version)
        )
        """
    )
    op.execute("CREATE INDEX IF NOT EXISTS idx_action_events_error_kind ON action_events (error_kind)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS action_events")
    op.execute("DROP TABLE IF EXISTS actions")
