"""Member CSV import: rows per second and memory, against the raw insert of the same rows.

A generated file of 1,000,000 members (3,000 with ``--smoke``) in the shapes people export from other
tools: national and international numbers, names, e-mail, city, tags, half with consent columns; 1% of
the rows are bad (numbers that are not numbers, bad e-mail addresses, bad dates) and 1% repeat an
earlier number. ``openline.members_io.import_members`` imports it into a fresh database, as
``openline members import`` does (a process pool checks rows when the machine has a spare core).

ceiling: the same members, consent events and tags, already parsed and converted, inserted in
transactions of the same size into another fresh database with the driver's fastest bulk insert
(``executemany`` on SQLite, binary ``COPY`` on PostgreSQL): what storing costs without reading, checking,
merging and looking up existing members.

Peak RSS growth is the most the importing process's resident memory rose above where it started
(sampled as the import reports progress; the pool's workers are not included). It includes what is
loaded once: libraries' tables, and the city index openline.timezones builds (about 70 MiB) the first
time an existing member's city changes. "After first 10%" is the growth from there on: flat memory
shows as about zero.
"""

from __future__ import annotations

import csv
import json
import os
import random
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import Headline, Options, Table, fresh_postgres, fresh_sqlite, no_postgres_note
from openline.communities import bootstrap
from openline.db import Database, upgrade
from openline.members_io import CHUNK_ROWS, import_members
from openline.members_rows import MEMBER_COLUMNS, stored_time
from openline.regions import nanp_region

__all__ = ["run"]

FULL_ROWS = 1_000_000
SMOKE_ROWS = 3_000
TARGET_SECONDS = 60.0
KEY = b"bench-suppression-key"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONSENT_AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

_AREAS = ("212", "312", "415", "617", "646", "718", "917", "202", "305", "512")
_FIRST = ("Ann", "Bob", "Carla", "Dev", "Eve", "Femi", "Giulia", "Hao", "Ines", "José")
_LAST = ("Smith", "Rossi", "García", "Okafor", "Chen", "Müller", "Singh", "Kowalski")
_CITIES = ("New York", "Chicago", "San Francisco", "Boston", "Austin", "Miami", "")
_TAGS = ("vip", "milan", "tour-2025", "merch", "")


def _number(i: int) -> str:
    """The i-th distinct valid US number, E.164."""
    area = _AREAS[i % len(_AREAS)]
    rest = i // len(_AREAS)
    return f"+1{area}{200 + rest % 800}{rest // 800 % 10_000:04d}"


def _written(e164: str, i: int) -> str:
    """How a person might have typed it."""
    national = e164[2:]
    match i % 4:
        case 0:
            return f"({national[:3]}) {national[3:6]}-{national[6:]}"
        case 1:
            return e164
        case 2:
            return f"+1 {national[:3]} {national[3:6]} {national[6:]}"
        case _:
            return f"{national[:3]}.{national[3:6]}.{national[6:]}"


def _rows(count: int) -> Iterator[tuple[int, list[str], bool]]:
    """(number index, CSV fields, whether the row is good); 1% bad, 1% repeat an earlier number."""
    rnd = random.Random(7)
    for i in range(count):
        index = rnd.randrange(i) if i and rnd.random() < 0.01 else i
        first, last = _FIRST[i % len(_FIRST)], _LAST[i % len(_LAST)]
        consent = ["fan club sign-up", CONSENT_AT.isoformat()] if i % 2 else ["", ""]
        row = [_written(_number(index), i), first, last, f"{first.lower()}.{i}@example.org", _CITIES[i % 7]]
        row += [",".join(sorted({t for t in (_TAGS[i % 5], _TAGS[(i // 5) % 5]) if t})), *consent]
        good = True
        if rnd.random() < 0.01:
            good = False
            broken = i % 3
            if broken == 0:
                row[0] = "12345"
            elif broken == 1:
                row[3] = "not-an-email"
            else:
                row[6], row[7] = "web", "last tuesday"
        yield index, row, good


def _write_csv(path: Path, count: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        out = csv.writer(file, lineterminator="\n")
        out.writerow(["phone", "first_name", "last_name", "email", "city", "tags", "consent_source", "consent_at"])
        out.writerows(row for _, row, _ in _rows(count))


def _rss() -> int:
    """Resident memory now, in bytes (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextmanager
def _database(url: str) -> Iterator[Database]:
    db = Database(url)
    try:
        upgrade(db)
        with db.write_engine.begin() as conn:
            bootstrap(conn, "Bench")
        yield db
    finally:
        db.dispose()


def _transact(db: Database) -> Callable[[Callable[[sa.Connection], Any]], Any]:
    def transact(work: Callable[[sa.Connection], Any]) -> Any:
        with db.write_engine.begin() as conn:
            return work(conn)

    return transact


def _import(db: Database, path: Path) -> tuple[float, int, int, Any]:
    """Import the file; returns (seconds, peak RSS growth, growth after the first tenth, summary)."""
    size = path.stat().st_size
    start = peak = _rss()
    warm: int | None = None

    def progress(done: int) -> None:
        nonlocal peak, warm
        now = _rss()
        peak = max(peak, now)
        if warm is None and done >= size // 10:
            warm = now

    started = time.perf_counter()
    summary = import_members(
        path,
        community_id=1,
        key=KEY,
        transact=_transact(db),
        dialect=db.write_engine.dialect.name,
        now=NOW,
        default_country="US",
        progress=progress,
    )
    return time.perf_counter() - started, peak - start, peak - (warm or start), summary


def _ceiling(db: Database, count: int) -> tuple[float, int]:
    """Insert the import's end result, prepared beforehand a chunk at a time (untimed), with executemany."""
    sqlite = db.is_sqlite
    now = stored_time(NOW, sqlite)
    consent_at = stored_time(CONSENT_AT, sqlite)
    seen: set[int] = set()
    chunks: list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]] = []
    members: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    tags: list[tuple[Any, ...]] = []
    for index, row, good in _rows(count):
        if not good or index in seen:
            continue
        seen.add(index)
        member_id = len(seen)
        subscribed = bool(row[6])
        state = "subscribed" if subscribed else "pending"
        profile = (row[1], row[2], row[3], row[4] or None, None, "US", None, None)
        place = (nanp_region(_number(index)), "America/New_York", '["America/New_York"]')  # region, zones
        members.append(
            (member_id, 1, _number(index), state, *profile, *place, "{}", consent_at if subscribed else None, now, now)
        )
        evidence = {"file": "members.csv", "line": index + 2, "consent_source": row[6], "consent_at": row[7]}
        events.append((1, member_id, None, state, "import_file", json.dumps(evidence), now))
        tags += [(member_id, tag) for tag in row[5].split(",") if tag]
        if len(members) == CHUNK_ROWS:
            chunks.append((members, events, tags))
            members, events, tags = [], [], []
    if members:
        chunks.append((members, events, tags))
    tables = (
        ("members", ("id", *MEMBER_COLUMNS)),
        (
            "consent_events",
            ("community_id", "member_id", "previous_state", "new_state", "source", "evidence", "occurred_at"),
        ),
        ("member_tags", ("member_id", "tag")),
    )
    started = time.perf_counter()
    for chunk in chunks:
        with db.write_engine.begin() as conn:
            for (table, names), rows in zip(tables, chunk, strict=True):
                _insert(conn, table, names, rows)
    seconds = time.perf_counter() - started
    if not sqlite:  # explicit ids leave the identity behind; not needed afterwards, but keep it sane
        with db.write_engine.begin() as conn:
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('members', 'id'), (SELECT max(id) FROM members))"
            )
    return seconds, len(seen)


def _insert(conn: sa.Connection, table: str, names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """The fastest a driver takes rows: executemany on SQLite, binary COPY on PostgreSQL."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})", rows)
        return
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    query = "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = %s::regclass"
    declared = dict(cursor.execute(query, (table,)).fetchall())
    # JSON values are already JSON text: sent as text, which is what the server reads for JSON anyway.
    types = ["text" if declared[name] in ("json", "character varying") else declared[name] for name in names]
    with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


@contextmanager
def _fresh(kind: str, options: Options) -> Iterator[str]:
    if kind == "sqlite":
        with fresh_sqlite(options.tmp_dir) as path:
            yield f"sqlite:///{path}"
    else:
        assert options.pg_url is not None
        with fresh_postgres(options.pg_url) as url:
            yield url


def run(options: Options) -> Table:
    """member CSV import rows/s (1M rows, 1% bad) on SQLite and PostgreSQL vs a raw bulk insert, and memory"""
    count = SMOKE_ROWS if options.smoke else FULL_ROWS
    table = Table()
    kinds = ["sqlite"] + (["postgresql"] if options.pg_url else [])
    with tempfile.TemporaryDirectory(prefix="openline-bench-import-", dir=options.tmp_dir) as directory:
        path = Path(directory) / "members.csv"
        _write_csv(path, count)
        size = path.stat().st_size
        for kind in kinds:
            with _fresh(kind, options) as url, _database(url) as db:
                seconds, rss_growth, late_growth, summary = _import(db, path)
            with _fresh(kind, options) as url, _database(url) as db:
                ceiling_seconds, stored = _ceiling(db, count)
            if summary.created != stored:
                raise AssertionError(f"{kind}: the import created {summary.created} members, the ceiling {stored}")
            rate, ceiling_rate = count / seconds, stored / ceiling_seconds
            table.rows.append(
                {
                    "database": kind,
                    "rows": f"{count:,}",
                    "created": f"{summary.created:,}",
                    "merged": f"{summary.merged:,}",
                    "errors": f"{summary.errors:,}",
                    "seconds": f"{seconds:.1f}",
                    "rows/s": f"{rate:,.0f}",
                    "ceiling rows/s": f"{ceiling_rate:,.0f}",
                    "import/ceiling": f"{rate / ceiling_rate:.2f}",
                    "peak RSS growth MiB": f"{rss_growth / 2**20:.0f}",
                    "after first 10% MiB": f"{late_growth / 2**20:.0f}",
                }
            )
            table.headlines += [
                Headline("CSV import rows/s vs raw bulk insert", kind, rate, "rows/s", ceiling=ceiling_rate),
                Headline(
                    f"seconds to import {count:,} CSV rows",
                    kind,
                    seconds,
                    "s",
                    target=f"≤ {TARGET_SECONDS:g} s for {FULL_ROWS:,} rows",
                    # The target is for the full file; a smoke-sized one says nothing about it.
                    met=seconds <= TARGET_SECONDS if count == FULL_ROWS else None,
                    better="lower",
                ),
            ]
            if not options.smoke and seconds > TARGET_SECONDS:
                table.notes.append(f"{kind}: {seconds:.0f} s is over the {TARGET_SECONDS:.0f} s target for 1M rows")
    if not options.pg_url:
        table.notes.append(no_postgres_note())
    table.notes.append(
        f"file {size / 2**20:.0f} MiB; {os.cpu_count()} CPUs (the import checks rows in "
        f"{max(0, (os.cpu_count() or 1) - 1)} worker process(es) for files of 4 MB and more); "
        f"ceiling = the same rows pre-parsed, inserted by executemany (SQLite) or binary COPY (PostgreSQL), "
        f"{CHUNK_ROWS:,} per transaction"
    )
    return table
