"""The names a run, an action and their scope may have (upstream's limits), as pure string checks.

Apart from :mod:`~taskaction_operator.client.validate` so that the command line can refuse a bad name
without importing flyteidl2: only ``re`` here.
"""

from __future__ import annotations

import re

MAX_RUN_NAME = 30
MAX_ACTION_NAME = 30
MAX_PROJECT_DOMAIN = 63
MAX_CACHE_KEY = 256
MAX_TASK_TYPE = 63
MAX_SHORT_NAME = 63
MAX_GROUP = 256

DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = re.compile(rf"^{DNS1123_LABEL}(\.{DNS1123_LABEL})*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


class InvalidActionError(ValueError):
    """An action that must not reach the API server; the message says which field and why."""


def _name_length(what: str, value: str, limit: int) -> None:
    """1..``limit`` characters."""
    if not value:
        raise InvalidActionError(f"{what} is empty")
    if len(value) > limit:
        raise InvalidActionError(f"{what} {value!r} is {len(value)} characters; at most {limit}")


def validate_run_name(name: str) -> None:
    """1..30 characters and a DNS-1035 label (upstream ``validateRunName``)."""
    _name_length("run name", name, MAX_RUN_NAME)
    if not DNS1035_LABEL.match(name):
        raise InvalidActionError(
            f"run name {name!r} is not a DNS-1035 label: lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )


def validate_scope(what: str, value: str) -> None:
    """A project or domain: 1..63 characters, and a valid label value (it becomes one)."""
    _name_length(what, value, MAX_PROJECT_DOMAIN)
    if not LABEL_VALUE.match(value):
        raise InvalidActionError(
            f"{what} {value!r} is not a valid label value: letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )


def validate_action_name(run_name: str, name: str, what: str = "action name") -> None:
    """1..30 characters, and ``<run>-<name>`` must be a valid object name (DNS-1123 subdomain)."""
    _name_length(what, name, MAX_ACTION_NAME)
    if not DNS1123_SUBDOMAIN.match(f"{run_name}-{name}") or not LABEL_VALUE.match(name):
        raise InvalidActionError(
            f"{what} {name!r} cannot name a TaskAction ({run_name}-{name}): use lowercase letters, "
            "digits, '-' or '.', starting and ending with a letter or digit"
        )
