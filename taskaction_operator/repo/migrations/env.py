"""Alembic's environment for the taskaction schema: online only, on the connection we are handed.

:func:`taskaction_operator.repo.migrate.upgrade` opens the connection, takes the advisory lock on it
and passes it in ``config.attributes["connection"]``; this script never connects by itself.
"""

from __future__ import annotations

from alembic import context

from taskaction_operator.repo.schema import Base

_config = context.config
_connection = _config.attributes.get("connection")
if _connection is None or context.is_offline_mode():
    raise RuntimeError("run these migrations through taskaction_operator.repo.upgrade(dsn)")

context.configure(
    connection=_connection,
    target_metadata=Base.metadata,
    version_table=_config.get_main_option("version_table") or "taskaction_schema_version",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
