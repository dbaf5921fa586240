"""Upstream's ``20260618130000_add_actions_created_by.sql``: the creator's EnrichedIdentity (BYTEA).

Revision ID: m0002
Revises: m0001
"""

from __future__ import annotations

from alembic import op

revision: str = "m0002"
down_revision: str | None = "m0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE actions ADD COLUMN IF NOT EXISTS created_by BYTEA")


def downgrade() -> None:
    op.execute("ALTER TABLE actions DROP COLUMN IF EXISTS created_by")
