"""Compiling a statement once, at import, to psycopg SQL; and the pieces the write statements share.

The write path runs on psycopg directly (pipeline mode), so it keeps only the SQL text of each
statement: ``%(name)s`` placeholders with typed casts, constants rendered as SQL literals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, bindparam, func, literal_column
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql.psycopg import dialect as _psycopg_dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import TypeEngine

__all__ = ["lit", "phases_array", "to_sql", "unnest"]

_DIALECT = _psycopg_dialect()  # type: ignore[no-untyped-call]
_ARRAY_PARAM = re.compile(r"%\((\w+)\)s(::[A-Z ]+\[\])")


def to_sql(statement: ClauseElement) -> str:
    """The statement as psycopg SQL (``%(name)s`` placeholders with ``::type`` casts).

    Refuses a statement that captured a Python value as a bind parameter: the compiled text is all
    that is kept, so constants must be SQL literals (:func:`lit`).
    """
    compiled = statement.compile(dialect=_DIALECT)
    captured = {k: v for k, v in compiled.params.items() if v is not None}
    if captured:
        raise AssertionError(f"statement captured bind values {captured}; use SQL literals")
    # Array parameters go in binary (``%(name)b``): the server then skips parsing array literals,
    # which for 1,000-row batches of bytea is most of the statement's cost.
    return _ARRAY_PARAM.sub(r"%(\1)b\2", str(compiled))


def lit(value: int) -> ColumnElement[Any]:
    """An integer constant rendered into the SQL text rather than bound."""
    return literal_column(str(int(value)), type_=Integer())


def unnest(columns: Sequence[tuple[str, TypeEngine[Any]]], alias: str = "u") -> Any:
    """``unnest(%(c1)s::T1[], …) AS u(c1, …)``: one array parameter per column, one row per index."""
    binds = [bindparam(name, type_=ARRAY(type_)) for name, type_ in columns]
    return func.unnest(*binds).table_valued(*(name for name, _ in columns)).render_derived(name=alias)


def phases_array(phases: Iterable[int]) -> ColumnElement[Any]:
    """``ARRAY[…]`` of phase integers, rendered into the SQL text (for ``= ANY(…)``)."""
    return literal_column("ARRAY[" + ", ".join(str(int(p)) for p in sorted(phases)) + "]")
