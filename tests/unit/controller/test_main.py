"""run_operator: what the process hands kopf."""

from __future__ import annotations

import getpass
from typing import Any

import pytest

from taskaction_operator.config import Settings
from taskaction_operator.controller import main


def test_kopf_gets_our_identity_so_a_uid_without_passwd_entry_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image runs as 65532, which has no /etc/passwd entry: kopf's own identity guess
    (getpass.getuser()) raises KeyError there, and the Pod crash-looped. Our identity (the Pod's
    name, TASKACTION_IDENTITY) is kopf's too."""

    def no_passwd_entry() -> str:
        raise KeyError("getpwuid(): uid not found: 65532")

    seen: dict[str, Any] = {}

    async def operator(**kwargs: Any) -> None:
        seen.update(kwargs)
        # What kopf does with it (kopf/_core/reactor/running.py spawn_tasks): guess only when absent.
        if kwargs.get("identity") is None:
            getpass.getuser()

    monkeypatch.setattr(getpass, "getuser", no_passwd_entry)
    monkeypatch.setattr(main.kopf, "operator", operator)
    dsn = "postgresql://u:p@127.0.0.1:1/db"
    settings = Settings(database_url=dsn, identity="taskaction-operator-7d9f-abcde")
    main.run_operator(settings)
    assert seen["identity"] == "taskaction-operator-7d9f-abcde"


@pytest.mark.parametrize(("verbose", "logged"), [(0, False), (1, True), (2, True)])
def test_the_http_access_log_of_probes_and_webhook_calls_is_kept_for_verbose_runs(
    monkeypatch: pytest.MonkeyPatch, verbose: int, logged: bool
) -> None:
    """aiohttp logs one INFO line per request to kopf's servers: every liveness probe and, with the
    webhook, every TaskAction created; that is noise (and CPU under load) unless asked for."""
    import logging

    async def operator(**_: Any) -> None:
        return None

    monkeypatch.setattr(main.kopf, "operator", operator)
    access = logging.getLogger("aiohttp.access")
    monkeypatch.setattr(access, "level", access.level)  # restored after the test
    main.run_operator(Settings(database_url="postgresql://u:p@127.0.0.1:1/db"), verbose=verbose)
    assert access.isEnabledFor(logging.INFO) is logged
