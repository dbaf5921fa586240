"""The repository's error hierarchy and the classifier that maps driver errors onto it.

Callers (the operator's handlers, the abort reconciler) need one decision from a failed database call:
retry it later (:class:`TemporaryRepoError`), give up on this input (:class:`PermanentRepoError`), or
treat a missing row as an answer (:class:`NotFoundError`). SQLAlchemy and psycopg raise dozens of
exception types; :func:`classify_db_error` reduces them to these by SQLSTATE class, so no caller ever
has to import a driver.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import psycopg
from sqlalchemy import exc as sa_exc

__all__ = [
    "AlreadyFinishedError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermanentRepoError",
    "RepoError",
    "TemporaryRepoError",
    "classified",
    "classify_db_error",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class RepoError(Exception):
    """Base of every error the repository raises.

    ``sqlstate`` is the PostgreSQL SQLSTATE code of the underlying error, when there was one.
    """

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class NotFoundError(RepoError):
    """The run or action (or event) asked for does not exist. Not a failure: an answer."""


class AlreadyFinishedError(RepoError):
    """An abort without ``force`` of a run or action that already ended: its terminal phase stays."""

    def __init__(self, what: str, phase_name: str) -> None:
        super().__init__(f"{what} already finished ({phase_name})")
        self.phase_name = phase_name


class TemporaryRepoError(RepoError):
    """A failure that can succeed when retried: lost connection, serialization failure, deadlock,
    lock or statement timeout, server shutdown, too many connections, exhausted pool."""


class PermanentRepoError(RepoError):
    """A failure that retrying will repeat: constraint violation, bad data, a programming error."""


class InvalidArgumentError(PermanentRepoError, ValueError):
    """A request the repository refuses before touching the database (bad filter, limit, token…)."""


# SQLSTATEs (or whole classes, by their two-letter prefix) worth retrying. Everything else with a
# SQLSTATE is permanent: class 22 (data exception), 23 (integrity), 42 (syntax or access rule), 0A, XX.
_TEMPORARY_CLASSES = frozenset(
    {
        "08",  # connection exception
        "53",  # insufficient resources: disk full, out of memory, too many connections
        "58",  # system error (I/O) outside PostgreSQL
    }
)
_TEMPORARY_CODES = frozenset(
    {
        "40000",  # transaction rollback
        "40001",  # serialization failure
        "40003",  # statement completion unknown
        "40P01",  # deadlock detected
        "55P03",  # lock not available (lock_timeout)
        "57014",  # query canceled (statement_timeout, pg_cancel_backend)
        "57P01",  # admin shutdown
        "57P02",  # crash shutdown
        "57P03",  # cannot connect now (starting up, shutting down)
        "57P05",  # idle session timeout
        "25P03",  # idle in transaction session timeout
    }
)


def is_temporary_sqlstate(sqlstate: str) -> bool:
    """Whether a SQLSTATE names a failure that may succeed on retry."""
    return sqlstate in _TEMPORARY_CODES or sqlstate[:2] in _TEMPORARY_CLASSES


def _sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None)
    return code if isinstance(code, str) and code else None


def classify_db_error(exc: BaseException) -> RepoError:
    """Map a SQLAlchemy, psycopg or OS exception to the repository's error hierarchy.

    The result is a new :class:`RepoError` (callers ``raise classify_db_error(e) from e``), or ``exc``
    itself when it already is one. The decision, in order:

    1. SQLAlchemy wrappers are unwrapped to the driver exception (``.orig``); an invalidated
       connection, a pool timeout or a disconnect is temporary.
    2. An error carrying a SQLSTATE is temporary for the codes and classes above, else permanent.
    3. psycopg errors without a SQLSTATE: ``OperationalError`` (connection refused or lost) and
       ``InterfaceError`` (the connection is closed) are temporary; the rest (client-side adaptation
       errors) are permanent.
    4. ``OSError`` (including ``ConnectionError``) and ``TimeoutError`` are temporary.
    5. Anything else is a programming error: permanent.
    """
    if isinstance(exc, RepoError):
        return exc
    message = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, sa_exc.DBAPIError):
        inner = classify_db_error(exc.orig) if exc.orig is not None else None
        if exc.connection_invalidated and not isinstance(inner, TemporaryRepoError):
            return TemporaryRepoError(message, sqlstate=inner.sqlstate if inner else None)
        if inner is not None:
            return type(inner)(message, sqlstate=inner.sqlstate)
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return TemporaryRepoError(message)
    code = _sqlstate(exc)
    if code is not None:
        cls = TemporaryRepoError if is_temporary_sqlstate(code) else PermanentRepoError
        return cls(message, sqlstate=code)
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return TemporaryRepoError(message)
    if isinstance(exc, OSError | TimeoutError):
        return TemporaryRepoError(message)
    return PermanentRepoError(message)


def classified(fn: Callable[_P, Coroutine[Any, Any, _R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Decorate a coroutine function so that any non-repository exception it raises is re-raised as
    its classified :class:`RepoError`, ``from`` the original."""

    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await fn(*args, **kwargs)
        except RepoError:
            raise
        except Exception as exc:
            raise classify_db_error(exc) from exc

    return wrapper
