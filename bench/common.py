"""What every benchmark shares: its options, its result table and headline figures, and fresh databases."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psycopg
from sqlalchemy.engine import make_url

__all__ = [
    "PG_VARIABLES",
    "Better",
    "Headline",
    "Options",
    "Table",
    "default_pg_url",
    "each_database",
    "fresh_postgres",
    "fresh_sqlite",
    "libpq_url",
    "no_postgres_note",
    "percentile",
    "server_version",
]

# The benchmark's own variable first, then the test suite's, so one setting serves both.
PG_VARIABLES = ("OPENLINE_BENCH_DATABASE_URL", "OPENLINE_TEST_DATABASE_URL")


@dataclass(frozen=True)
class Options:
    """What the command line chose; every benchmark gets the same options."""

    smoke: bool = False
    # A PostgreSQL server URL whose user may create databases; None skips PostgreSQL.
    pg_url: str | None = None
    # Where SQLite files go; None is the system temp dir.
    tmp_dir: Path | None = None


# Whether a larger value of a figure is the better one (rates) or the worse one (seconds, milliseconds).
Better = Literal["higher", "lower"]


@dataclass
class Headline:
    """One figure that matters, as a number, with what it is compared against.

    ``ceiling`` is a reference measured in the same run (same machine, same database), in the same unit;
    ``ratio`` is ``value / ceiling``. For a rate (``better="higher"``) the ratio is the share of the
    ceiling reached: 1.00 is as fast as the ceiling. For a time (``better="lower"``) it is how many times
    the ceiling's time the figure took: 1.00 is as fast, 3.00 three times as long.
    """

    figure: str  # in words, e.g. "inbound texts stored/s through the writer"
    database: str  # "sqlite", "postgresql", or "-" when no database is involved
    value: float
    unit: str
    ceiling: float | None = None
    ratio: float | None = field(init=False)
    target: str = ""  # e.g. "≥ 2,000/s", "≤ 200 ms"; empty when the issues set none
    met: bool | None = None  # None when there is no target
    better: Better = "higher"

    def __post_init__(self) -> None:
        self.ratio = self.value / self.ceiling if self.ceiling else None


@dataclass
class Table:
    """A benchmark's result: rows of column -> text (columns in first-seen order), notes, and the headline
    figures among them as numbers (for the runner's summary and its JSON)."""

    rows: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headlines: list[Headline] = field(default_factory=list)

    def columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)


def default_pg_url() -> str | None:
    for name in PG_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    return None


def no_postgres_note() -> str:
    return f"PostgreSQL skipped: no server given (pass --pg-url or set {' or '.join(PG_VARIABLES)})"


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://`` (SQLAlchemy's form) as the plain ``postgresql://`` libpq accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def server_version(server_url: str) -> str:
    """The PostgreSQL server's version, e.g. ``16.4``."""
    with psycopg.connect(libpq_url(server_url), connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    return str(row[0]).split()[0]


@contextmanager
def fresh_postgres(server_url: str) -> Iterator[str]:
    """A new, empty database on the server at ``server_url``, dropped afterwards; yields its URL."""
    name = f"openline_bench_{secrets.token_hex(6)}"
    admin_url = libpq_url(server_url)
    # CREATE/DROP DATABASE cannot run inside a transaction.
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_sqlite(tmp_dir: Path | None) -> Iterator[Path]:
    """A path for a new SQLite file in a temp dir that is removed afterwards (with -wal and -shm)."""
    with tempfile.TemporaryDirectory(prefix="openline-bench-", dir=tmp_dir) as directory:
        yield Path(directory) / "bench.db"


def each_database(options: Options, table: Table) -> Iterator[tuple[str, str]]:
    """(label, URL) of a fresh SQLite file, then of a fresh PostgreSQL database when a server was given
    (else a note in ``table`` says PostgreSQL was skipped); each is removed after its turn."""
    with fresh_sqlite(options.tmp_dir) as path:
        yield "sqlite", f"sqlite:///{path}"
    if options.pg_url is None:
        table.notes.append(no_postgres_note())
    else:
        with fresh_postgres(options.pg_url) as url:
            yield "postgresql", url


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; ``values`` need not be sorted."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]
