"""Segment counts: ``count_members`` with a three-condition filter against a bare ``count(*)``.

1,000,000 members (5,000 with ``--smoke``) of one community, plus 10 % as many in a second community
the count must leave out, are bulk-loaded into a fresh database (``executemany`` in one transaction on
SQLite, ``COPY`` on PostgreSQL) with realistic spreads: 80 % subscribed, a third Italian, join dates
over three years weighted to recent ones, a third tagged. Then, after ``ANALYZE`` (PostgreSQL's
autovacuum does that by itself after a load like this; SQLite only when asked):

- filter: ``count_members`` for ``state = subscribed and country = IT and joined after <180 days ago>``,
  through SQLAlchemy as the CLI and API run it, parse excluded; the result is checked against the count
  known from generating the rows;
- ceiling: ``SELECT count(*) FROM members WHERE community_id = ?`` on the same connection: the least any
  count of the community's members can cost.

Each figure is the median of five runs after one warm-up run (one run with ``--smoke``). The target is
1 s for the filter on each database.
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa

from bench.common import Headline, Options, Table, each_database, libpq_url
from openline.communities import bootstrap
from openline.db import Database, schema, upgrade
from openline.segments import Filter, count_members, member_filter, parse_text

__all__ = ["run"]

FULL, SMOKE = 1_000_000, 5_000
TARGET_SECONDS = 1.0
CHUNK = 50_000
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
SINCE = (NOW - timedelta(days=180)).date()
FILTER = f"state = subscribed and country = IT and joined after {SINCE.isoformat()}"

STATES = (("subscribed", 80), ("unsubscribed", 10), ("pending", 5), ("new", 4), ("blocked", 1))
COUNTRIES = (("IT", 34), ("US", 20), ("IN", 15), ("ES", 10), ("GB", 5), ("DE", 5), ("FR", 4), ("BR", 3), (None, 4))
CITIES = ("Milano", "Roma", "Napoli", "Torino", "New York", "Mumbai", "Madrid", "London", None, None)
NAMES = ("Giulia", "Marco", "Sofia", "Luca", "Aarav", "Emma", "Liam", "Priya", "Mateo", None)
TAGS = ("milan", "rome", "vip", "tour2026", "newsletter", "merch", "presale", "naples", "turin", "fanclub")
COLUMNS = (
    "id",
    "community_id",
    "phone",
    "state",
    "first_name",
    "city",
    "country",
    "language",
    "birthday",
    "custom",
    "time_zones",
    "joined_at",
    "created_at",
    "updated_at",
)


@dataclass
class Generated:
    rows: list[tuple[Any, ...]]
    tags: list[tuple[int, str]]


def _weighted(choices: tuple[tuple[Any, int], ...]) -> tuple[list[Any], list[int]]:
    return [c for c, _ in choices], [w for _, w in choices]


def _generate(size: int, community_id: int, other_id: int, expected: list[int]) -> Iterator[Generated]:
    """Members in chunks; ``expected[0]`` counts those of ``community_id`` the filter must match."""
    rng = random.Random(2026)
    states, state_weights = _weighted(STATES)
    countries, country_weights = _weighted(COUNTRIES)
    total = size + size // 10
    start = NOW - timedelta(days=3 * 365)
    for first in range(1, total + 1, CHUNK):
        count = min(CHUNK, total + 1 - first)
        chunk_states = rng.choices(states, state_weights, k=count)
        chunk_countries = rng.choices(countries, country_weights, k=count)
        rows: list[tuple[Any, ...]] = []
        tags: list[tuple[int, str]] = []
        for offset in range(count):
            member_id = first + offset
            community = community_id if member_id <= size else other_id
            state, country = chunk_states[offset], chunk_countries[offset]
            # Growth: more members joined recently (the square root leans towards 1, i.e. now).
            created = start + (NOW - start) * rng.random() ** 0.5
            joined = (
                created + timedelta(minutes=rng.randint(1, 600)) if state in ("subscribed", "unsubscribed") else None
            )
            if community == community_id and state == "subscribed" and country == "IT" and joined is not None:
                expected[0] += joined.date() > SINCE
            birthday = (
                date(rng.randint(1950, 2010), rng.randint(1, 12), rng.randint(1, 28)) if rng.random() < 0.4 else None
            )
            custom = {"tier": rng.choice(("gold", "silver", "bronze"))} if rng.random() < 0.2 else {}
            rows.append(
                (
                    member_id,
                    community,
                    f"+{10_000_000_000 + member_id}",
                    state,
                    rng.choice(NAMES),
                    rng.choice(CITIES),
                    country,
                    rng.choice(("en", "it", "es", "hi", None)),
                    birthday,
                    json.dumps(custom),
                    "[]",
                    joined,
                    created,
                    joined or created,
                )
            )
            draw = rng.random()
            if draw < 0.3:
                tags.extend((member_id, tag) for tag in rng.sample(TAGS, 2 if draw < 0.1 else 1))
        yield Generated(rows, tags)


def _naive(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


def _sqlite_value(value: Any) -> Any:
    """As SQLAlchemy stores it in SQLite: datetimes naive UTC with microseconds, dates ISO."""
    if isinstance(value, datetime):
        return _naive(value).isoformat(" ", "microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _load_sqlite(path: str, chunks: Iterator[Generated]) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # Loading is not what is measured: no fsync per page while filling the file.
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        members_sql = f"INSERT INTO members ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        for chunk in chunks:
            connection.executemany(members_sql, [tuple(map(_sqlite_value, row)) for row in chunk.rows])
            connection.executemany("INSERT INTO member_tags (member_id, tag) VALUES (?, ?)", chunk.tags)
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def _load_postgres(url: str, chunks: Iterator[Generated]) -> None:
    with psycopg.connect(libpq_url(url)) as connection:
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY members ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                tags: list[tuple[int, str]] = []
                for chunk in chunks:
                    for row in chunk.rows:
                        copy.write_row(tuple(map(_naive, row)))
                    tags.extend(chunk.tags)
            with cursor.copy("COPY member_tags (member_id, tag) FROM STDIN") as copy:
                for tag in tags:
                    copy.write_row(tag)
        connection.commit()
        connection.autocommit = True
        connection.execute("ANALYZE members")
        connection.execute("ANALYZE member_tags")


def _median_seconds(function: Callable[[], object], repetitions: int) -> float:
    function()  # warm-up: the page cache and SQLAlchemy's statement cache, as in a running service
    timings = []
    for _ in range(repetitions):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def _plan(engine: sa.Engine, community_id: int, node: Filter) -> str:
    """The database's plan for the filter's count, its first lines joined."""
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "

    def explain(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> tuple[str, Any]:
        return (prefix + statement if statement.startswith("SELECT") else statement), parameters

    query = (
        sa.select(sa.func.count())
        .select_from(schema.members)
        .where(schema.members.c.community_id == community_id, member_filter(node, now=NOW))
    )
    sa.event.listen(engine, "before_cursor_execute", explain, retval=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    finally:
        sa.event.remove(engine, "before_cursor_execute", explain)
    return "; ".join(str(row[-1]).strip() for row in rows[:4])


def run(options: Options) -> Table:
    """segment count of a 1M-member community vs a bare count(*) of its members"""
    size = SMOKE if options.smoke else FULL
    repetitions = 1 if options.smoke else 5
    table = Table()
    for label, url in each_database(options, table):
        db = Database(url)
        try:
            _measure(label, db, url, size, repetitions, table)
        finally:
            db.dispose()
    table.notes.append(f"filter: {FILTER} (now {NOW:%Y-%m-%d %H:%M} UTC)")
    table.notes.append(f"median of {repetitions} run(s) after a warm-up; both counted on the same connection")
    return table


def _measure(label: str, db: Database, url: str, size: int, repetitions: int, table: Table) -> None:
    """Load the members into the fresh database, check both counts, time them; one row in ``table``."""
    upgrade(db)
    with db.write_engine.begin() as conn:
        community = bootstrap(conn, "Benchmark")
        assert community is not None, "the benchmark database is not fresh"
        other_id = conn.execute(
            sa.insert(schema.communities)
            .values(slug="other", name="Other", settings={})
            .returning(schema.communities.c.id)
        ).scalar_one()
    expected = [0]
    chunks = _generate(size, community.id, other_id, expected)
    started = time.perf_counter()
    if db.is_sqlite:
        _load_sqlite(url.removeprefix("sqlite:///"), chunks)
    else:
        _load_postgres(url, chunks)
    load_seconds = time.perf_counter() - started

    node = parse_text(FILTER)
    ceiling_query = sa.text("SELECT count(*) FROM members WHERE community_id = :c").bindparams(c=community.id)
    with db.read_engine.connect() as conn:
        found = count_members(conn, community.id, node, NOW)
        if found != expected[0]:
            raise RuntimeError(f"{label}: count_members found {found:,}, expected {expected[0]:,}")
        everyone = conn.execute(ceiling_query).scalar_one()
        if everyone != size:
            raise RuntimeError(f"{label}: count(*) found {everyone:,}, expected {size:,}")
        filtered = _median_seconds(lambda: count_members(conn, community.id, node, NOW), repetitions)
        ceiling = _median_seconds(lambda: conn.execute(ceiling_query).scalar_one(), repetitions)
    plan = _plan(db.read_engine, community.id, node)
    table.rows.append(
        {
            "database": label,
            "members": f"{size:,}",
            "matching": f"{found:,}",
            "filter s": f"{filtered:.3f}",
            "count(*) s": f"{ceiling:.3f}",
            "filter/count(*)": f"{filtered / ceiling:.1f}x",
            "target s": f"{TARGET_SECONDS:g}",
        }
    )
    table.headlines.append(
        Headline(
            f"segment count of {size:,} members vs count(*)",
            label,
            filtered,
            "s",
            ceiling=ceiling,
            target=f"≤ {TARGET_SECONDS:g} s",
            met=filtered <= TARGET_SECONDS,
            better="lower",
        )
    )
    table.notes.append(f"{label}: loaded {size + size // 10:,} members in {load_seconds:.1f} s; plan: {plan}")
