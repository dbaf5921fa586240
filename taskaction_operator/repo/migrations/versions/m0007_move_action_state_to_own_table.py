"""Upstream's ``actions`` table exactly again: ``action_state`` moves to ``taskaction_action_states``.

Upstream's services read ``actions`` with sqlx ``SELECT *`` into a struct, which refuses a column the
struct lacks, so the column m0006 added made every read of Flyte's runs service fail. Existing states
are copied over; the downgrade copies them back.

Revision ID: m0007
Revises: m0006
"""

from __future__ import annotations

from alembic import op

revision: str = "m0007"
down_revision: str | None = "m0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS taskaction_action_states (
            project    TEXT NOT NULL,
            domain     TEXT NOT NULL,
            run_name   TEXT NOT NULL,
            name       TEXT NOT NULL,
            state      TEXT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            PRIMARY KEY (project, domain, run_name, name),
            CONSTRAINT taskaction_action_states_action_fkey FOREIGN KEY (project, domain, run_name, name)
                REFERENCES actions (project, domain, run_name, name) ON DELETE CASCADE
        )
        """
    )
    op.execute(
        """
        INSERT INTO taskaction_action_states (project, domain, run_name, name, state, updated_at)
        SELECT project, domain, run_name, name, action_state, updated_at FROM actions
        WHERE action_state IS NOT NULL
        ON CONFLICT DO NOTHING
        """
    )
    op.execute("ALTER TABLE actions DROP COLUMN IF EXISTS action_state")


def downgrade() -> None:
    op.execute("ALTER TABLE actions ADD COLUMN IF NOT EXISTS action_state TEXT")
    op.execute(
        """
        UPDATE actions a SET action_state = s.state FROM taskaction_action_states s
        WHERE (a.project, a.domain, a.run_name, a.name) = (s.project, s.domain, s.run_name, s.name)
        """
    )
    op.execute("DROP TABLE IF EXISTS taskaction_action_states")
