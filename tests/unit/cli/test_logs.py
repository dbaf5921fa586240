"""``-v`` shows this program's INFO lines, not the libraries' (Alembic printed two per migration
plugin); ``-vv`` shows everything."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from taskaction_operator.cli.logs import CHATTY, configure


@pytest.fixture(autouse=True)
def restore_levels() -> Iterator[None]:
    names = ("", "taskaction_operator", *CHATTY, "alembic.runtime.migration")
    saved = {n: logging.getLogger(n).level for n in names}
    yield
    for n, level in saved.items():
        logging.getLogger(n).setLevel(level)


def test_one_v_keeps_alembics_migration_lines_out() -> None:
    configure(1)
    logging.getLogger().setLevel(logging.INFO)  # basicConfig sets it only once per process
    assert logging.getLogger("taskaction_operator.repo").isEnabledFor(logging.INFO)
    assert not logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.INFO)
    assert logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.WARNING)


def test_two_vs_show_everything() -> None:
    configure(2)
    logging.getLogger().setLevel(logging.DEBUG)
    assert logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.INFO)
    assert logging.getLogger("kopf.objects").isEnabledFor(logging.DEBUG)
