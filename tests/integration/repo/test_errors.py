"""The error classifier, over real psycopg and SQLAlchemy exception classes, and the classified
errors repository methods raise against the real database."""

from __future__ import annotations

import psycopg
import psycopg.errors as pg
import pytest
from sqlalchemy import exc as sa_exc

from taskaction_operator.model import ActionId, ActionPhase
from taskaction_operator.repo import (
    ActionRepo,
    NotFoundError,
    PermanentRepoError,
    RepoError,
    TemporaryRepoError,
    classify_db_error,
)
from tests.integration.repo.helpers import action, event, run

T, P = TemporaryRepoError, PermanentRepoError


@pytest.mark.parametrize(
    ("exc", "expected", "sqlstate"),
    [
        # temporary: connection, serialization, deadlock, locks, timeouts, shutdown, resources
        (pg.ConnectionException("x"), T, "08000"),
        (pg.ConnectionFailure("x"), T, "08006"),
        (pg.ProtocolViolation("x"), T, "08P01"),
        (pg.SerializationFailure("x"), T, "40001"),
        (pg.DeadlockDetected("x"), T, "40P01"),
        (pg.TransactionRollback("x"), T, "40000"),
        (pg.LockNotAvailable("x"), T, "55P03"),
        (pg.QueryCanceled("x"), T, "57014"),
        (pg.AdminShutdown("x"), T, "57P01"),
        (pg.CrashShutdown("x"), T, "57P02"),
        (pg.CannotConnectNow("x"), T, "57P03"),
        (pg.IdleSessionTimeout("x"), T, "57P05"),
        (pg.IdleInTransactionSessionTimeout("x"), T, "25P03"),
        (pg.TooManyConnections("x"), T, "53300"),
        (pg.OutOfMemory("x"), T, "53200"),
        (pg.DiskFull("x"), T, "53100"),
        (psycopg.OperationalError("connection refused"), T, None),
        (psycopg.InterfaceError("the connection is closed"), T, None),
        (pg.ConnectionTimeout("timeout expired"), T, None),
        (ConnectionResetError("reset by peer"), T, None),
        (TimeoutError(), T, None),
        (sa_exc.TimeoutError("QueuePool limit reached"), T, None),
        # permanent: constraints, bad data, programming errors
        (pg.UniqueViolation("x"), P, "23505"),
        (pg.NotNullViolation("x"), P, "23502"),
        (pg.CheckViolation("x"), P, "23514"),
        (pg.InvalidTextRepresentation("x"), P, "22P02"),
        (pg.NumericValueOutOfRange("x"), P, "22003"),
        (pg.StringDataRightTruncation("x"), P, "22001"),
        (pg.UndefinedTable("x"), P, "42P01"),
        (pg.UndefinedColumn("x"), P, "42703"),
        (pg.SyntaxError("x"), P, "42601"),
        (pg.InsufficientPrivilege("x"), P, "42501"),
        (pg.InFailedSqlTransaction("x"), P, "25P02"),
        (pg.InternalError_("x"), P, "XX000"),
        (psycopg.ProgrammingError("cannot adapt type"), P, None),
        (psycopg.DataError("cannot dump"), P, None),
        (ValueError("bug"), P, None),
        (sa_exc.ArgumentError("bad"), P, None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_classifier(exc: BaseException, expected: type[RepoError], sqlstate: str | None) -> None:
    got = classify_db_error(exc)
    assert type(got) is expected
    assert got.sqlstate == sqlstate


@pytest.mark.parametrize(
    ("orig", "expected"),
    [(pg.DeadlockDetected("x"), T), (pg.UniqueViolation("x"), P), (psycopg.OperationalError("gone"), T)],
)
def test_sqlalchemy_wrappers_are_unwrapped(orig: Exception, expected: type[RepoError]) -> None:
    wrapped = sa_exc.DBAPIError.instance("SELECT 1", {}, orig, psycopg.Error)
    got = classify_db_error(wrapped)
    assert type(got) is expected
    assert got.sqlstate == getattr(orig, "sqlstate", None)


def test_invalidated_connection_is_temporary_whatever_the_cause() -> None:
    wrapped = sa_exc.DBAPIError("SELECT 1", {}, psycopg.ProgrammingError("?"), connection_invalidated=True)
    assert type(classify_db_error(wrapped)) is TemporaryRepoError


def test_repo_errors_pass_through() -> None:
    err = NotFoundError("nope")
    assert classify_db_error(err) is err
    assert issubclass(NotFoundError, RepoError) and not issubclass(NotFoundError, TemporaryRepoError)


@pytest.mark.db
async def test_bad_data_is_permanent_and_chained(repo: ActionRepo, project: str) -> None:
    """An attempt number beyond INTEGER: PostgreSQL's 22003, raised as permanent, from the original."""
    aid = run(project).root
    with pytest.raises(PermanentRepoError) as info:
        await repo.insert_events([event(aid, 2**40, ActionPhase.RUNNING)])
    assert info.value.sqlstate == "22003"
    assert isinstance(info.value.__cause__, pg.NumericValueOutOfRange)


@pytest.mark.db
async def test_not_found_is_typed(repo: ActionRepo, project: str) -> None:
    with pytest.raises(NotFoundError):
        await repo.get_action(ActionId.of(project, "d", "r", "a0"))
    with pytest.raises(NotFoundError):
        await repo.get_run(run(project))


@pytest.mark.db
async def test_unreachable_database_is_temporary(repo_dsn: str, project: str) -> None:
    host_port = repo_dsn.split("@", 1)[1].split("/", 1)[0]
    dead = repo_dsn.replace(host_port, "127.0.0.1:1")  # nothing listens on port 1
    bad = await ActionRepo.connect(dead)
    try:
        with pytest.raises(TemporaryRepoError) as info:
            await bad.create_action(action(run(project).root))
        assert info.value.__cause__ is not None
    finally:
        await bad.close()
