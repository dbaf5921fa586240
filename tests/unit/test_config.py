"""Settings from TASKACTION_* variables, validated with a readable error."""

from __future__ import annotations

import pytest

from taskaction_operator.config import ConfigurationError, Settings

DSN = {"TASKACTION_DATABASE_URL": "postgresql://u@h:5432/db"}


def test_defaults_and_namespaces() -> None:
    s = Settings.from_env({**DSN, "TASKACTION_NAMESPACES": "a, b", "TASKACTION_RECORD_GUARD": "off"})
    assert s.namespaces == ("a", "b") and not s.record_guard
    assert s.abort_max_attempts == 10 and s.effective_lease_namespace == "a"
    assert Settings.from_env({**DSN, "TASKACTION_NAMESPACES": "*"}).namespaces == ()
    assert s.delete_recorded_after == 0  # recorded TaskActions are kept unless asked
    assert (
        Settings.from_env({**DSN, "TASKACTION_DELETE_RECORDED_AFTER": "3600"}).delete_recorded_after == 3600
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "TASKACTION_DATABASE_URL is required"),
        ({"TASKACTION_DATABASE_URL": "mysql://x"}, "must be a postgresql:// DSN"),
        ({**DSN, "TASKACTION_SWEEP_INTERVAL": "soon"}, "TASKACTION_SWEEP_INTERVAL='soon'"),
        ({**DSN, "TASKACTION_ABORT_MAX_ATTEMPTS": "0"}, "TASKACTION_ABORT_MAX_ATTEMPTS: must be >= 1"),
        ({**DSN, "TASKACTION_RECORD_GUARD": "maybe"}, "expected true or false"),
        ({**DSN, "TASKACTION_LOG_FORMAT": "xml"}, "TASKACTION_LOG_FORMAT"),
        ({**DSN, "TASKACTION_API_CONNECTIONS": "0"}, "TASKACTION_API_CONNECTIONS: must be >= 1"),
        ({**DSN, "TASKACTION_API_CONNECTIONS": "many"}, "TASKACTION_API_CONNECTIONS='many'"),
        ({**DSN, "TASKACTION_DELETE_RECORDED_AFTER": "-1"}, "TASKACTION_DELETE_RECORDED_AFTER: must be >= 0"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace("*", r"\*")):
        Settings.from_env(env)


def test_connections_for_kopf_leave_one_per_watch_stream() -> None:
    from taskaction_operator.controller.lifecycle import connection_limit

    assert Settings.from_env(DSN).api_connections == 64
    clusterwide = Settings.from_env({**DSN, "TASKACTION_API_CONNECTIONS": "8"})
    assert connection_limit(clusterwide) == 9  # one stream
    both = Settings.from_env({**DSN, "TASKACTION_API_CONNECTIONS": "8", "TASKACTION_NAMESPACES": "a,b"})
    assert connection_limit(both) == 10  # a stream per namespace
