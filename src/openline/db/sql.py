"""Statement shapes that differ between SQLite and PostgreSQL, written once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from openline.db.schema import UTCDateTime

__all__ = ["claim", "day_after", "insert_ignoring_duplicates"]


class day_after(FunctionElement[datetime]):
    """A stored timestamp plus 24 hours: a broadcast's reply and opt-out window."""

    type = UTCDateTime()
    inherit_cache = True
    name = "day_after"


@compiles(day_after)
def _day_after_sqlite(element: day_after, compiler: SQLCompiler, **kw: Any) -> str:
    # strftime keeps the fraction of a second that datetime() would drop.
    return f"strftime('%Y-%m-%d %H:%M:%f', {compiler.process(element.clauses, **kw)}, '+24 hours')"


@compiles(day_after, "postgresql")
def _day_after_postgresql(element: day_after, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} + interval '24 hours')"


def insert_ignoring_duplicates(dialect_name: str, table: sa.Table, conflict_columns: Sequence[str]) -> sa.Insert:
    """``INSERT ... ON CONFLICT (columns) DO NOTHING``: a replay of the same key stores nothing new."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))


def claim(
    table: sa.Table,
    *,
    where: sa.ColumnElement[bool],
    order_by: Sequence[sa.ColumnElement[object]],
    limit: int | sa.BindParameter[int],
    values: dict[str, object],
    returning: Sequence[sa.ColumnElement[object]],
) -> sa.Update:
    """Claim up to ``limit`` rows of work and mark them taken, in one statement.

    On PostgreSQL the inner ``SELECT ... FOR UPDATE SKIP LOCKED`` lets any number of workers claim
    concurrently: each skips rows another has locked, so no two workers take the same row and none
    waits on another. SQLite ignores the locking clause; there one writer (``BEGIN IMMEDIATE``)
    serialises claims.
    """
    pk = table.primary_key.columns.values()[0]
    chosen = (
        sa.select(pk).where(where).order_by(*order_by).limit(limit).with_for_update(skip_locked=True)
    ).scalar_subquery()
    return sa.update(table).where(pk.in_(chosen)).values(**values).returning(*returning)
