"""Connections to SQLite or PostgreSQL, tuned for a write-heavy service.

SQLite: WAL (readers never block the writer), ``synchronous=FULL`` (a commit survives power loss, the
promise behind every acknowledgement), a busy timeout, and ``BEGIN IMMEDIATE`` for writes so a write
transaction takes the lock up front instead of failing half-way. PostgreSQL: psycopg 3.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = ["Database", "DatabaseError", "describe_url", "to_sqlalchemy_url"]

BUSY_TIMEOUT_MS = 10_000


class DatabaseError(Exception):
    """The database cannot be used; the message is one line meant for the operator."""


def to_sqlalchemy_url(url: str) -> URL:
    """``postgresql://`` (the form operators write) means psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def describe_url(url: str | URL) -> str:
    """The URL with any password hidden, fit for logs and error messages."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Take transaction control from the sqlite3 module so BEGIN is ours to emit.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # Checkpoints run in openline's own thread (db/checkpoint.py), never inside a commit.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """One database: a write engine and a read engine (the same engine on PostgreSQL)."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = to_sqlalchemy_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.write_engine = self._sqlite_engine("BEGIN IMMEDIATE")
            self.read_engine = self._sqlite_engine("BEGIN")
        else:
            self.write_engine = sa.create_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            self.read_engine = self.write_engine

    def _sqlite_engine(self, begin: str) -> sa.Engine:
        engine = sa.create_engine(
            self.url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine

    def __repr__(self) -> str:
        return f"Database({self.describe()!r})"

    def describe(self) -> str:
        return describe_url(self.url)

    def check_reachable(self) -> None:
        """Raise :class:`DatabaseError` with a one-line reason if the database cannot be reached."""
        try:
            with self.read_engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except sa.exc.DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise DatabaseError(f"cannot reach the database at {self.describe()}: {reason}") from None

    def reachable(self) -> bool:
        try:
            self.check_reachable()
        except DatabaseError:
            return False
        return True

    def dispose(self) -> None:
        self.write_engine.dispose()
        self.read_engine.dispose()
