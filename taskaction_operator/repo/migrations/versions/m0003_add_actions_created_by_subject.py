"""Upstream's ``20260618140000_add_actions_created_by_subject.sql``: the creator's OIDC subject.

Revision ID: m0003
Revises: m0002
"""

from __future__ import annotations

from alembic import op

revision: str = "m0003"
down_revision: str | None = "m0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE actions ADD COLUMN IF NOT EXISTS created_by_subject TEXT")
    op.execute("CREATE INDEX IF NOT EXISTS idx_actions_created_by_subject ON actions (created_by_subject)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS idx_actions_created_by_subject")
    op.execute("ALTER TABLE actions DROP COLUMN IF EXISTS created_by_subject")
