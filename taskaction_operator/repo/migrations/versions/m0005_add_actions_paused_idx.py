"""Upstream's ``20260722100000_add_actions_paused_idx.sql``: the partial index behind has-paused.

Revision ID: m0005
Revises: m0004
"""

from __future__ import annotations

from alembic import op

revision: str = "m0005"
down_revision: str | None = "m0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS idx_actions_paused ON actions (project, domain, run_name) WHERE phase = 9"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS idx_actions_paused")
