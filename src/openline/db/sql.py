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

__all__ = ["INBOUND", "OUTBOUND", "REPLY_HOURS", "claim", "day_after", "insert_ignoring_duplicates", "unindexed"]

# A text counts as answered when its recipient texts back within this many hours of it being sent
# (a broadcast's stats, the analytics page's reply rate); opt-outs are counted in the same window.
REPLY_HOURS = 24

# messages.direction written into the statement, not bound: SQLite uses a partial index (WHERE direction
# = 'inbound') only for a query that names the same constant, and a bound parameter is not one.
INBOUND: sa.ColumnClause[str] = sa.literal_column("'inbound'", sa.String())
OUTBOUND: sa.ColumnClause[str] = sa.literal_column("'outbound'", sa.String())


class day_after(FunctionElement[datetime]):
    """A stored timestamp plus REPLY_HOURS: a broadcast's reply and opt-out window."""

    type = UTCDateTime()
    inherit_cache = True
    name = "day_after"


@compiles(day_after)
def _day_after_sqlite(element: day_after, compiler: SQLCompiler, **kw: Any) -> str:
    # strftime keeps the fraction of a second that datetime() would drop.
    return f"strftime('%Y-%m-%d %H:%M:%f', {compiler.process(element.clauses, **kw)}, '+{REPLY_HOURS} hours')"


@compiles(day_after, "postgresql")
def _day_after_postgresql(element: day_after, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} + interval '{REPLY_HOURS} hours')"


class unindexed(FunctionElement[Any]):
    """A column that SQLite must not look up through an index: ``+created_at``.

    A correlated look-up (a number's reply, a member's opt-out) must go through the index on its own key
    (ix_messages_phone, ix_consent_events_member). Without statistics (openline never runs ANALYZE)
    SQLite may instead take a time range for the better test and walk a by-day index, reading a whole
    day of a community's rows per look-up (55 s instead of 0.3 s at a million texts). The unary plus is
    SQLite's documented way to rule an index out for one term; PostgreSQL has statistics and plans well
    without it. tests/test_query_plans.py checks the plans.
    """

    inherit_cache = True
    name = "unindexed"

    def __init__(self, column: sa.ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type  # so compared values are bound as the column's own type


@compiles(unindexed)
def _unindexed_sqlite(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


@compiles(unindexed, "postgresql")
def _unindexed_postgresql(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


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
