"""Broadcast fan-out: texts written per second against the raw insert of the same rows, and the estimate.

100,000 members (2,000 with ``--smoke``) of one community are bulk-loaded into a fresh database
(``executemany`` in one transaction on SQLite, ``COPY`` on PostgreSQL): 90 % subscribed, 40 % Italian,
30 % in the US (New York, Miami, Chicago, Denver, Los Angeles and Seattle numbers and zones), 10 %
Indian, the rest Spanish and British; first names (some missing, a few with letters GSM-7 lacks),
cities, each member's language and time zone. The community has five senders, so texts spread over
them. One broadcast to everyone, with an Italian translation, a personalised name and city and a link
rewritten per member, is started at 14:30 UTC on a Wednesday: inside the US legal window in the
Eastern and Central zones, before it in the Mountain and Pacific ones (those texts are deferred).

- estimate: ``estimate`` over the whole segment on a read connection, as the API runs it (its links
  registered first); members planned per second;
- fan-out: ``fan_out_batch`` with ``FANOUT_BATCH`` members, each call in its own write transaction as
  the worker runs it, until fan-out is complete; texts written per second. Checked: the texts written
  and their segments are exactly the estimate's;
- ceiling: the same rows, read back and deleted (then ``VACUUM`` on PostgreSQL), inserted again with
  the statement fan-out uses (``INSERT ... ON CONFLICT (broadcast_id, member_id) DO NOTHING``,
  ``executemany``), ``FANOUT_BATCH`` rows per transaction: storing the texts with nothing decided.

The three run in turn, three times (the texts deleted and the broadcast reset to where ``start`` left it
in between), and each figure is the median (one run with ``--smoke``). The ratio fan-out/ceiling is
what to compare.
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa

from bench.common import Headline, Options, Table, each_database, libpq_url
from openline.broadcasts import Estimate, create_broadcast, estimate, fan_out_batch, get_broadcast, start
from openline.broadcasts.fanout import FANOUT_BATCH
from openline.broadcasts.plan import register_links
from openline.communities import bootstrap
from openline.db import Database, schema, upgrade
from openline.db.sql import insert_ignoring_duplicates
from openline.senders import add_sender
from openline.states import BroadcastState

__all__ = ["run"]

FULL, SMOKE = 100_000, 2_000
REPETITIONS = 3
CHUNK = 20_000
# A Wednesday: 15:30 in Rome, 20:00 in Mumbai, 09:30 in New York, 08:30 in Chicago, 07:30 in Denver,
# 06:30 in Los Angeles (the last two before the US window opens at 08:00).
NOW = datetime(2026, 12, 2, 14, 30, tzinfo=UTC)
BASE_URL = "https://sms.example.org"
LINK_KEY = b"openline-bench-fanout-link-key32"
BODY = 'Hi {{ first_name | default("friend") }}, see you in {{ city | default("town") }}! Tickets: https://example.org/tickets'
ITALIAN = (
    'Ciao {{ first_name | default("amico") }}, ci vediamo a {{ city | default("città") }}! '
    "Biglietti: https://example.org/tickets"
)
MESSAGE = {"variants": [{"body": BODY, "translations": {"it": ITALIAN}}]}
EXTRA_SENDERS = ("+12025550101", "+12025550102", "+12025550103", "+12025550104")

STATES = (("subscribed", 90), ("unsubscribed", 6), ("pending", 3), ("blocked", 1))
COUNTRIES = (("IT", 40), ("US", 30), ("IN", 10), ("ES", 10), ("GB", 10))
LANGUAGES = {"IT": "it", "US": "en", "IN": "en", "ES": "es", "GB": "en"}
ZONES = {"IT": "Europe/Rome", "IN": "Asia/Kolkata", "ES": "Europe/Madrid", "GB": "Europe/London"}
# US: (zone, area codes of numbers there, cities, weight). Miami is Florida: its own law applies too.
US_PLACES: tuple[tuple[str, tuple[str, ...], tuple[str, ...], int], ...] = (
    ("America/New_York", ("212", "646", "718", "917"), ("New York", "Brooklyn"), 38),
    ("America/New_York", ("305",), ("Miami",), 7),
    ("America/Chicago", ("312", "773"), ("Chicago",), 25),
    ("America/Denver", ("303", "720"), ("Denver",), 8),
    ("America/Los_Angeles", ("213", "310", "415"), ("Los Angeles", "San Francisco"), 17),
    ("America/Los_Angeles", ("206",), ("Seattle",), 5),
)
NAMES = {
    "IT": ("Giulia", "Marco", "Sofia", "Luca", "Francesca", "Alessandro", "Chiara", "Niccolò"),
    "US": ("Emma", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Zoë", "Mia"),
    "IN": ("Aarav", "Priya", "Vivaan", "Ananya", "Arjun", "Diya"),
    "ES": ("Lucía", "Hugo", "Martina", "Mateo", "Paula", "Álvaro"),
    "GB": ("Oliver", "Amelia", "Harry", "Isla", "George", "Chloë"),
}
CITIES: dict[str, tuple[str, ...]] = {
    "IT": ("Milano", "Roma", "Napoli", "Torino", "Bologna", "Forlì"),
    "IN": ("Mumbai", "Delhi", "Bengaluru", "Chennai"),
    "ES": ("Madrid", "Barcelona", "Valencia", "Málaga"),
    "GB": ("London", "Manchester", "Bristol"),
}
MISSING_NAME, MISSING_CITY = 0.08, 0.12
COLUMNS = (
    "id",
    "community_id",
    "phone",
    "state",
    "first_name",
    "city",
    "country",
    "language",
    "time_zone",
    "time_zones",
    "custom",
    "joined_at",
    "created_at",
    "updated_at",
)
# The columns fan-out writes (the ceiling reads them back and inserts them again).
MESSAGE_COLUMNS = (
    "community_id",
    "direction",
    "kind",
    "state",
    "sender_id",
    "phone",
    "member_id",
    "conversation_id",
    "broadcast_id",
    "variant",
    "body",
    "encoding",
    "segments",
    "media",
    "provider",
    "attempts",
    "next_attempt_at",
    "error_reason",
    "expires_at",
    "created_at",
    "updated_at",
)


def _phone(country: str, member_id: int, area: str) -> str:
    """A distinct mobile number of the country for each member id."""
    if country == "US":
        return f"+1{area}{200 + member_id // 10_000}{member_id % 10_000:04d}"
    prefix = {"IT": "+393", "IN": "+919", "ES": "+346", "GB": "+447"}[country]
    return f"{prefix}{member_id:08d}" if country == "ES" else f"{prefix}{member_id:09d}"


def _generate(size: int, community_id: int) -> Iterator[list[tuple[Any, ...]]]:
    """The members, in chunks of rows in ``COLUMNS`` order."""
    rng = random.Random(2026)
    states, state_weights = [s for s, _ in STATES], [w for _, w in STATES]
    countries, country_weights = [c for c, _ in COUNTRIES], [w for _, w in COUNTRIES]
    us_weights = [place[3] for place in US_PLACES]
    for first in range(1, size + 1, CHUNK):
        count = min(CHUNK, size + 1 - first)
        chunk_states = rng.choices(states, state_weights, k=count)
        chunk_countries = rng.choices(countries, country_weights, k=count)
        rows: list[tuple[Any, ...]] = []
        for offset in range(count):
            member_id, state, country = first + offset, chunk_states[offset], chunk_countries[offset]
            area, cities = "", CITIES.get(country, ())
            if country == "US":
                zone, areas, cities, _ = rng.choices(US_PLACES, us_weights)[0]
                area = rng.choice(areas)
            else:
                zone = ZONES[country]
            name = None if rng.random() < MISSING_NAME else rng.choice(NAMES[country])
            city = None if rng.random() < MISSING_CITY else rng.choice(cities)
            created = NOW - timedelta(days=3 * 365) * rng.random()
            joined = created + timedelta(minutes=5) if state in ("subscribed", "unsubscribed") else None
            rows.append(
                (
                    member_id,
                    community_id,
                    _phone(country, member_id, area),
                    state,
                    name,
                    city,
                    country,
                    LANGUAGES[country],
                    zone,
                    json.dumps([zone]),
                    "{}",
                    joined,
                    created,
                    joined or created,
                )
            )
        yield rows


def _naive(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


def _sqlite_value(value: Any) -> Any:
    """As SQLAlchemy stores it in SQLite: datetimes as naive UTC text with microseconds."""
    return _naive(value).isoformat(" ", "microseconds") if isinstance(value, datetime) else value


def _load_sqlite(path: str, chunks: Iterator[list[tuple[Any, ...]]]) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # Loading is not what is measured: no fsync per page while filling the file.
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        sql = f"INSERT INTO members ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        for rows in chunks:
            connection.executemany(sql, [tuple(map(_sqlite_value, row)) for row in rows])
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def _load_postgres(url: str, chunks: Iterator[list[tuple[Any, ...]]]) -> None:
    with psycopg.connect(libpq_url(url)) as connection:
        with connection.cursor() as cursor, cursor.copy(f"COPY members ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for rows in chunks:
                for row in rows:
                    copy.write_row(tuple(map(_naive, row)))
        connection.commit()
        connection.autocommit = True
        connection.execute("ANALYZE members")


def _vacuum(db: Database, table: str) -> None:
    """PostgreSQL: clear the dead rows a delete left, outside any transaction (SQLite reuses the pages)."""
    if db.is_sqlite:
        return
    with db.write_engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(f"VACUUM {table}")


def run(options: Options) -> Table:
    """broadcast fan-out texts/s to 100k members vs the raw batched insert of the same rows; the estimate"""
    size = SMOKE if options.smoke else FULL
    repetitions = 1 if options.smoke else REPETITIONS
    table = Table()
    for label, url in each_database(options, table):
        db = Database(url)
        try:
            _measure(label, db, url, size, repetitions, table)
        finally:
            db.dispose()
    table.notes.append(f"body: {BODY}; Italian: {ITALIAN}")
    table.notes.append(
        f"now {NOW:%Y-%m-%d %H:%M} UTC; {FANOUT_BATCH:,} members per fan-out batch and {FANOUT_BATCH:,} rows "
        f"per ceiling transaction; {1 + len(EXTRA_SENDERS)} senders; median of {repetitions} run(s), estimate, fan-out "
        "and ceiling in turn"
    )
    return table


def _measure(label: str, db: Database, url: str, size: int, repetitions: int, table: Table) -> None:
    """Load the members, then estimate, fan out, check and insert the ceiling ``repetitions`` times (the
    broadcast reset in between); one row in ``table``."""
    upgrade(db)
    with db.write_engine.begin() as conn:
        community = bootstrap(conn, "Benchmark")
        assert community is not None, "the benchmark database is not fresh"
        for address in EXTRA_SENDERS:
            add_sender(conn, community.id, address, provider="sandbox", mps=10.0)
    chunks = _generate(size, community.id)
    started = time.perf_counter()
    if db.is_sqlite:
        _load_sqlite(url.removeprefix("sqlite:///"), chunks)
    else:
        _load_postgres(url, chunks)
    load_seconds = time.perf_counter() - started

    with db.write_engine.begin() as conn:
        draft = create_broadcast(conn, community.id, "bench", MESSAGE, segment={"and": []})
        broadcast = start(conn, draft, NOW)
        register_links(conn, broadcast, BASE_URL, LINK_KEY)

    timings: dict[str, list[float]] = {"estimate": [], "fan-out": [], "ceiling": []}
    batches = 0
    planned: Estimate | None = None
    for repetition in range(repetitions):
        if repetition:
            _reset(db, broadcast.id)
        started = time.perf_counter()
        with db.read_engine.connect() as conn:
            planned = estimate(conn, broadcast, now=NOW, base_url=BASE_URL, link_key=LINK_KEY)
        timings["estimate"].append(time.perf_counter() - started)

        seconds, batches = _fan_out(db, broadcast.id)
        timings["fan-out"].append(seconds)
        written = _check(label, db, broadcast.id, planned)

        rows = _take_rows(db, broadcast.id)
        _vacuum(db, "messages")
        timings["ceiling"].append(_ceiling(db, rows))
        stored = _stored(db, broadcast.id)
        if stored != (written, planned.segments):
            raise RuntimeError(f"{label}: the ceiling stored (texts, segments) {stored}, not what fan-out wrote")
    assert planned is not None

    estimate_s, fanout_s, ceiling_s = (statistics.median(timings[name]) for name in ("estimate", "fan-out", "ceiling"))
    written = planned.recipients
    fanout_rate, ceiling_rate = written / fanout_s, written / ceiling_s
    table.rows.append(
        {
            "database": label,
            "members": f"{size:,}",
            "recipients": f"{written:,}",
            "estimate members/s": f"{size / estimate_s:,.0f}",
            "fan-out texts/s": f"{fanout_rate:,.0f}",
            "ceiling rows/s": f"{ceiling_rate:,.0f}",
            "fan-out/ceiling": f"{fanout_rate / ceiling_rate:.2f}",
        }
    )
    table.headlines += [
        Headline(
            "broadcast fan-out texts/s vs raw batched insert", label, fanout_rate, "texts/s", ceiling=ceiling_rate
        ),
        Headline(f"estimate members/s over {size:,} members", label, size / estimate_s, "members/s"),
    ]
    waits = ", ".join(f"{n:,} for {reason}" for reason, n in planned.waits.most_common())
    skipped = ", ".join(f"{n:,} {reason}" for reason, n in planned.skipped.most_common())
    encodings = ", ".join(f"{n:,} {name}" for name, n in sorted(planned.by_encoding.items()))
    table.notes.append(
        f"{label}: loaded {size:,} members in {load_seconds:.1f} s; median estimate {estimate_s:.1f} s, fan-out "
        f"{fanout_s:.1f} s in {batches} batches, ceiling {ceiling_s:.1f} s; {planned.segments:,} segments "
        f"({encodings}); deferred: {waits or 'none'}; skipped: {skipped or 'none'}"
    )


def _fan_out(db: Database, broadcast_id: int) -> tuple[float, int]:
    """Fan the broadcast out a batch per write transaction, as the worker does; (seconds, batches)."""
    started = time.perf_counter()
    batches = 0
    while True:
        with db.write_engine.begin() as conn:
            looked_at = fan_out_batch(
                conn, broadcast_id, now=NOW, base_url=BASE_URL, link_key=LINK_KEY, limit=FANOUT_BATCH
            )
        batches += 1
        if looked_at < FANOUT_BATCH:
            return time.perf_counter() - started, batches


def _ceiling(db: Database, rows: Sequence[dict[str, Any]]) -> float:
    """Insert ``rows`` with fan-out's statement, ``FANOUT_BATCH`` per write transaction; seconds."""
    insert = insert_ignoring_duplicates(db.write_engine.dialect.name, schema.messages, ("broadcast_id", "member_id"))
    started = time.perf_counter()
    for first in range(0, len(rows), FANOUT_BATCH):
        with db.write_engine.begin() as conn:
            conn.execute(insert, rows[first : first + FANOUT_BATCH])
    return time.perf_counter() - started


def _reset(db: Database, broadcast_id: int) -> None:
    """The broadcast as ``start`` left it: no texts, cursor at the start, fanning out."""
    with db.write_engine.begin() as conn:
        conn.execute(sa.delete(schema.messages).where(schema.messages.c.broadcast_id == broadcast_id))
        conn.execute(
            sa.update(schema.broadcasts)
            .where(schema.broadcasts.c.id == broadcast_id)
            .values(
                state=BroadcastState.fanning_out,
                fanout_cursor=None,
                tally={"recipients": 0, "deferred": {}, "skipped": {}},
            )
        )
    _vacuum(db, "messages")


def _stored(db: Database, broadcast_id: int) -> tuple[int, int]:
    """(texts, segments) stored for the broadcast."""
    m = schema.messages.c
    with db.read_engine.connect() as conn:
        count, segments = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(m.segments), 0)).where(
                m.broadcast_id == broadcast_id
            )
        ).one()
    return int(count), int(segments)


def _check(label: str, db: Database, broadcast_id: int, planned: Estimate) -> int:
    """Fan-out wrote exactly what the estimate said and is complete; returns the texts written."""
    count, segments = _stored(db, broadcast_id)
    if (count, segments) != (planned.recipients, planned.segments):
        raise RuntimeError(
            f"{label}: fan-out wrote {count:,} texts of {segments:,} segments; the estimate said "
            f"{planned.recipients:,} texts of {planned.segments:,} segments"
        )
    with db.read_engine.connect() as conn:
        done = get_broadcast(conn, broadcast_id)
    if done.state is not BroadcastState.sending or done.tally.get("recipients") != count:
        raise RuntimeError(f"{label}: after fan-out the broadcast is {done.state.value}, tally {done.tally}")
    return count


def _take_rows(db: Database, broadcast_id: int) -> Sequence[dict[str, Any]]:
    """The broadcast's texts as fan-out passed them to the insert, deleted from the table."""
    m = schema.messages.c
    with db.write_engine.begin() as conn:
        rows = [
            dict(row._mapping)
            for row in conn.execute(
                sa.select(*(m[name] for name in MESSAGE_COLUMNS)).where(m.broadcast_id == broadcast_id).order_by(m.id)
            )
        ]
        conn.execute(sa.delete(schema.messages).where(m.broadcast_id == broadcast_id))
    return rows
