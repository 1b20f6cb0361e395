"""Group-commit writer: durable inserts per second vs the raw driver's batched-insert ceiling.

Both are measured in the same run on the same fresh database, so their ratio holds across machines
while absolute rates drift with disks and CPUs.

ceiling: the bare driver (sqlite3 / psycopg, no SQLAlchemy) inserting 1000 rows per transaction
with one ``executemany`` of the same ``INSERT ... ON CONFLICT DO NOTHING``, repeated. That is the
fastest a single connection can durably store these rows, and so what group commit aims at.

writer: ``Writer.execute_sql`` called from many concurrent asyncio tasks, each awaiting one insert at
a time the way webhook requests do, with the statement and row values ``openline.ingest`` uses.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg
import sqlalchemy as sa

from bench.common import Headline, Options, Table, fresh_postgres, fresh_sqlite, libpq_url, no_postgres_note, percentile
from openline.communities import bootstrap
from openline.db import Database, Writer, schema, upgrade
from openline.db.engine import BUSY_TIMEOUT_MS
from openline.ingest import INBOUND_COLUMNS, inbound_insert_sql
from openline.settings import Settings
from openline.states import Direction, MessageKind, MessageState

__all__ = ["run"]

CONCURRENCY = 256
CEILING_BATCH = 1000

# The ceiling runs the very statement ingest hands the writer.
SQLITE_INSERT = inbound_insert_sql("sqlite")
POSTGRES_INSERT = inbound_insert_sql("postgresql")


@dataclass(frozen=True)
class Sizes:
    writer_rows: int
    ceiling_rows: int


@dataclass(frozen=True)
class Plan:
    sqlite: Sizes
    postgres: Sizes
    repetitions: int
    concurrency: int


FULL = Plan(Sizes(50_000, 100_000), Sizes(20_000, 50_000), repetitions=3, concurrency=CONCURRENCY)
SMOKE = Plan(Sizes(2_000, 5_000), Sizes(1_000, 2_000), repetitions=1, concurrency=CONCURRENCY)


@dataclass(frozen=True)
class Measurement:
    rows: int
    seconds: float
    commits: int
    latencies: Sequence[float] = ()

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


class RawTarget(Protocol):
    """The bare driver on the benchmark database: the ceiling, and the checks around every run."""

    def insert(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert ``rows`` ``CEILING_BATCH`` at a time, one transaction each; returns the commits."""
        ...

    def count(self) -> int: ...

    def clean(self) -> None: ...

    def close(self) -> None: ...


class SqliteRaw:
    def __init__(self, path: Path) -> None:
        # isolation_level=None: no implicit transactions, so BEGIN and COMMIT are exactly ours.
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        # The pragmas openline's engine sets on every connection.
        for pragma in ("journal_mode=WAL", "synchronous=FULL", f"busy_timeout={BUSY_TIMEOUT_MS}", "foreign_keys=ON"):
            self._conn.execute(f"PRAGMA {pragma}")

    def insert(self, rows: Sequence[tuple[Any, ...]]) -> int:
        commits = 0
        for start in range(0, len(rows), CEILING_BATCH):
            self._conn.execute("BEGIN IMMEDIATE")  # as openline's write engine begins
            self._conn.executemany(SQLITE_INSERT, rows[start : start + CEILING_BATCH])
            self._conn.execute("COMMIT")
            commits += 1
        return commits

    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM messages").fetchone()[0])

    def clean(self) -> None:
        self._conn.execute("DELETE FROM messages")
        # Start every run with an empty WAL, so no run pays for another's checkpoint.
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._conn.close()


class PostgresRaw:
    def __init__(self, url: str) -> None:
        # autocommit: transactions only where insert() opens them, none left idle after a count.
        self._conn = psycopg.connect(libpq_url(url), autocommit=True)

    def insert(self, rows: Sequence[tuple[Any, ...]]) -> int:
        commits = 0
        with self._conn.cursor() as cursor:
            for start in range(0, len(rows), CEILING_BATCH):
                with self._conn.transaction():
                    cursor.executemany(POSTGRES_INSERT, rows[start : start + CEILING_BATCH])
                commits += 1
        return commits

    def count(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM messages").fetchone()
        assert row is not None
        return int(row[0])

    def clean(self) -> None:
        self._conn.execute("TRUNCATE messages RESTART IDENTITY")

    def server_version(self) -> str:
        row = self._conn.execute("SHOW server_version").fetchone()
        assert row is not None
        return str(row[0]).split()[0]

    def close(self) -> None:
        self._conn.close()


@dataclass(frozen=True)
class Target:
    label: str
    db: Database
    raw: RawTarget
    community_id: int
    sender_id: int
    provider: str
    # Turns a writer row (dict of Python values) into the tuple the bare driver binds.
    to_raw: Callable[[dict[str, Any]], tuple[Any, ...]]


def run(options: Options) -> Table:
    """group-commit writer durable inserts/s vs the raw driver's batched-insert ceiling"""
    plan = SMOKE if options.smoke else FULL
    table = Table()
    with fresh_sqlite(options.tmp_dir) as path:
        with _target("sqlite", f"sqlite:///{path}", SqliteRaw(path), _sqlite_tuple) as target:
            _measure(target, plan.sqlite, plan, table)
        table.notes.append(f"sqlite {sqlite3.sqlite_version}: WAL, synchronous=FULL, file under {path.parent.parent}")
    if options.pg_url is None:
        table.notes.append(no_postgres_note())
    else:
        with fresh_postgres(options.pg_url) as url:
            raw = PostgresRaw(url)
            with _target("postgresql", url, raw, _postgres_tuple) as target:
                version = raw.server_version()
                _measure(target, plan.postgres, plan, table)
        table.notes.append(f"postgresql {version}: fresh database, dropped afterwards")
    table.notes.append(
        f"ceiling: bare driver, {CEILING_BATCH} rows per executemany and transaction; "
        f"writer: {plan.concurrency} asyncio tasks each awaiting one Writer.execute_sql at a time"
    )
    table.notes.append(
        f"median of {plan.repetitions} run(s) by rows/s; latency per write and commits from the median run; "
        "every run checked for its exact row count"
    )
    return table


@contextmanager
def _target(
    label: str, url: str, raw: RawTarget, to_raw: Callable[[dict[str, Any]], tuple[Any, ...]]
) -> Iterator[Target]:
    """Migrate the fresh database and create a community with its sender; close everything afterwards."""
    db: Database | None = None
    try:
        db = Database(url)
        upgrade(db)
        with db.write_engine.begin() as conn:
            community = bootstrap(conn, "Benchmark")
            assert community is not None, "the benchmark database is not fresh"
            sender = conn.execute(
                sa.select(schema.senders.c.id, schema.senders.c.provider).where(
                    schema.senders.c.community_id == community.id
                )
            ).one()
        yield Target(label, db, raw, community.id, sender.id, sender.provider, to_raw)
    finally:
        raw.close()
        if db is not None:
            db.dispose()


def _measure(target: Target, sizes: Sizes, plan: Plan, table: Table) -> None:
    ceilings: list[Measurement] = []
    writers: list[Measurement] = []
    # Alternate the two so slow drift of the machine (page cache, thermals) affects both alike.
    for repetition in range(plan.repetitions):
        ceilings.append(_checked(target, sizes.ceiling_rows, lambda tag: _run_ceiling(target, sizes, tag), repetition))
        writers.append(
            _checked(target, sizes.writer_rows, lambda tag: _run_writer(target, sizes, plan, tag), repetition)
        )
    ceiling, writer = _median(ceilings), _median(writers)
    table.rows.append(_row(target.label, "raw driver ceiling", ceiling))
    table.rows.append(_row(target.label, f"writer x{plan.concurrency}", writer, ceiling))
    table.headlines.append(
        Headline(
            f"inbound texts stored/s, writer x{plan.concurrency} vs raw driver",
            target.label,
            writer.rate,
            "rows/s",
            ceiling=ceiling.rate,
        )
    )


def _checked(target: Target, expected: int, measure: Callable[[str], Measurement], repetition: int) -> Measurement:
    target.raw.clean()
    gc.collect()
    result = measure(f"r{repetition}")
    stored = target.raw.count()
    if stored != expected:
        raise RuntimeError(f"{target.label}: {stored} rows stored, expected {expected}")
    target.raw.clean()
    return result


def _run_ceiling(target: Target, sizes: Sizes, tag: str) -> Measurement:
    rows = [target.to_raw(row) for row in _messages(target, sizes.ceiling_rows, f"c{tag}")]
    started = time.perf_counter()
    commits = target.raw.insert(rows)
    return Measurement(len(rows), time.perf_counter() - started, commits)


def _run_writer(target: Target, sizes: Sizes, plan: Plan, tag: str) -> Measurement:
    rows = [target.to_raw(row) for row in _messages(target, sizes.writer_rows, f"w{tag}")]
    statement = inbound_insert_sql(target.db.write_engine.dialect.name)
    commits = 0

    def on_commit(_conn: sa.Connection) -> None:
        nonlocal commits
        commits += 1

    writer = Writer(target.db.write_engine, max_batch=Settings.model_fields["writer_max_batch"].default)
    try:
        # Open the writer's connection before the clock starts: a running service has it open.
        asyncio.run(writer.run(lambda conn: None))
        sa.event.listen(target.db.write_engine, "commit", on_commit)
        try:
            seconds, latencies = asyncio.run(_drive(writer, statement, rows, plan.concurrency))
        finally:
            sa.event.remove(target.db.write_engine, "commit", on_commit)
    finally:
        writer.close()
    return Measurement(len(rows), seconds, commits, latencies)


async def _drive(
    writer: Writer, statement: str, rows: Sequence[tuple[Any, ...]], concurrency: int
) -> tuple[float, list[float]]:
    """Insert every row through the writer from ``concurrency`` tasks; wall time and per-write latency."""
    latencies = [0.0] * len(rows)
    next_row = 0

    async def request_loop() -> None:
        nonlocal next_row
        while next_row < len(rows):
            i = next_row
            next_row += 1
            submitted = time.perf_counter()
            await writer.execute_sql(statement, rows[i])
            latencies[i] = time.perf_counter() - submitted

    started = time.perf_counter()
    await asyncio.gather(*(request_loop() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def _messages(target: Target, count: int, tag: str) -> list[dict[str, Any]]:
    """Inbound texts as ``openline.ingest`` stores them, each with its own provider message id."""
    now = schema.utcnow()
    return [
        {
            "community_id": target.community_id,
            "direction": Direction.inbound,
            "kind": MessageKind.text,
            "state": MessageState.received,
            "sender_id": target.sender_id,
            "phone": f"+1202555{i % 10_000:04d}",
            "body": f"Is the meeting still on for Thursday at 7? Bringing two friends. ({i})",
            "media": None,
            "provider": target.provider,
            "provider_message_id": f"SM{tag}x{i:09d}",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]


def _driver_values(row: dict[str, Any], stamp: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """What ingest binds for ``row``: enums as their words, no media as NULL, datetimes naive UTC."""
    values = {**row, "media": None}
    for key in ("direction", "kind", "state"):
        values[key] = str(row[key])
    for key in ("created_at", "updated_at"):
        values[key] = stamp(row[key].replace(tzinfo=None))  # schema.utcnow() is already UTC
    return tuple(values[c] for c in INBOUND_COLUMNS)


def _sqlite_tuple(row: dict[str, Any]) -> tuple[Any, ...]:
    return _driver_values(row, lambda naive: naive.isoformat(" ", "microseconds"))  # SQLAlchemy's text form


def _postgres_tuple(row: dict[str, Any]) -> tuple[Any, ...]:
    return _driver_values(row, lambda naive: naive)


def _median(measurements: Sequence[Measurement]) -> Measurement:
    ordered = sorted(measurements, key=lambda m: m.rate)
    return ordered[(len(ordered) - 1) // 2]


def _row(database: str, method: str, result: Measurement, ceiling: Measurement | None = None) -> dict[str, str]:
    latencies = result.latencies
    return {
        "database": database,
        "method": method,
        "rows": f"{result.rows:,}",
        "rows/s": f"{result.rate:,.0f}",
        "writer/ceiling": f"{result.rate / ceiling.rate:.2f}" if ceiling else "-",
        "rows/commit": f"{result.rows / result.commits:,.0f}",
        "p50 ms": f"{percentile(latencies, 0.50) * 1000:.1f}" if latencies else "-",
        "p99 ms": f"{percentile(latencies, 0.99) * 1000:.1f}" if latencies else "-",
    }
