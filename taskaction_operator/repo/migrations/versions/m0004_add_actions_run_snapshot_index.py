"""Upstream's ``20260714180000_add_actions_run_snapshot_index.sql``: keyset paging of a run's actions.

Revision ID: m0004
Revises: m0003
"""

from __future__ import annotations

from alembic import op

revision: str = "m0004"
down_revision: str | None = "m0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS idx_actions_run_created_name "
        "ON actions (project, domain, run_name, created_at, name)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS idx_actions_run_created_name")
