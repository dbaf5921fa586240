"""Ours, not upstream's: ``actions.action_state``, where UpdateActionState keeps the state string.

DELIBERATE DIFFERENCE from upstream, whose UpdateActionState writes the state's phase string into the
INTEGER ``phase`` column (upstream runs/repository/impl/action.go: UpdateActionState). Upstream's
settings migration (20260812100000) is skipped: we have no settings table.

Revision ID: m0006
Revises: m0005
"""

from __future__ import annotations

from alembic import op

revision: str = "m0006"
down_revision: str | None = "m0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE actions ADD COLUMN IF NOT EXISTS action_state TEXT")


def downgrade() -> None:
    op.execute("ALTER TABLE actions DROP COLUMN IF EXISTS action_state")
