"""The inbox at 100,000 conversations: list pages, filters, search and the rendered page.

100,000 members (2,000 with ``--smoke``), each with one conversation and one to five messages (three on
average, 300,000 in all), are bulk-loaded into a fresh database (``executemany`` in one transaction on
SQLite, ``COPY`` on PostgreSQL). Members: 80 % subscribed, 8 % unsubscribed, 7 % pending, 3 % new, 2 %
blocked; names, cities and languages for most; 30 % tagged. Conversations: 15 % marked done, 25 % unread,
40 % assigned to one of four teammates; the last text spread over two years, with 2 % of them sharing
one second (ties the cursor must break by id). Messages alternate member and team, bodies drawn from
everyday words; ids follow time across conversations, as they do in a running service, so one
conversation's messages are scattered through the table. About 15 % of messages say "concert", one
in 1,000 "refund", none "zyxwv". After ``ANALYZE``:

- ``list_conversations`` through SQLAlchemy as the pages call it: the first page of each view, page 500
  through its cursor (page 20 with ``--smoke``), filtered (unread; a tag; a language; unread and
  assigned to one teammate), and searched for a common, a rare and an absent word (the absent one reads
  every message: the worst case);
- ``newest``: what the live list's event stream asks every two seconds per open page;
- pages: ``GET /inbox``, ``GET /inbox?q=refund`` and ``GET /inbox/{id}`` through the app (httpx's ASGI
  transport, a signed-in session cookie), rendering included.

Each figure is the median (and the slowest) of seven runs after one warm-up run (one run with
``--smoke``). The target is 200 ms per page.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa

from bench.common import Headline, Options, Table, each_database, libpq_url
from openline.accounts import add_user, create_owner, sign_in
from openline.communities import bootstrap
from openline.db import Database, schema, upgrade
from openline.inbox import Cursor, Filters, View, list_conversations, newest
from openline.runtime import Runtime
from openline.settings import Settings
from openline.states import UserRole
from openline.web import create_app
from openline.web.dashboard.deps import COOKIE

__all__ = ["run"]

FULL, SMOKE = 100_000, 2_000
REPETITIONS = 7
TARGET_MS = 200.0
CHUNK = 20_000
PAGE = 50
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
PASSWORD = "bench-password-1234"
COMMON, RARE, ABSENT = "concert", "refund", "zyxwv"

STATES = (("subscribed", 80), ("unsubscribed", 8), ("pending", 7), ("new", 3), ("blocked", 2))
FIRST = ("Giulia", "Marco", "Sofia", "Luca", "Aarav", "Emma", "Liam", "Priya", "Mateo", None, None)
LAST = ("Rossi", "Bianchi", "Sharma", "Smith", "García", None, None, None)
CITIES = ("Milano", "Roma", "Napoli", "New York", "Mumbai", "Madrid", "London", None, None)
LANGUAGES = ("en", "en", "it", "it", "es", "hi", None)
TAGS = ("milan", "rome", "vip", "tour2026", "newsletter", "merch", "presale", "fanclub")
WORDS = [
    "hi",
    "hello",
    "thanks",
    "see",
    "you",
    "tonight",
    "tomorrow",
    "when",
    "is",
    "the",
    "next",
    "show",
    "tickets",
    "where",
    "can",
    "I",
    "buy",
    "love",
    "it",
    "great",
    "amazing",
    "wow",
    "please",
    "send",
    "more",
    "info",
    "about",
    "merch",
    "sizes",
    "bus",
    "parking",
    "doors",
    "open",
    "time",
    "ok",
    "cool",
    "yes",
    "no",
    "maybe",
    "what",
    "about",
    "friends",
    "family",
    "can",
    "we",
    "bring",
    "kids",
    "age",
    "limit",
    "price",
]
MEMBER_COLUMNS = (
    "id",
    "community_id",
    "phone",
    "state",
    "first_name",
    "last_name",
    "city",
    "language",
    "custom",
    "time_zones",
    "created_at",
    "updated_at",
)
CONVERSATION_COLUMNS = (
    "id",
    "community_id",
    "member_id",
    "sender_id",
    "assigned_user_id",
    "unread",
    "last_message_at",
    "archived",
)
MESSAGE_COLUMNS = (
    "id",
    "community_id",
    "direction",
    "kind",
    "state",
    "sender_id",
    "phone",
    "member_id",
    "conversation_id",
    "body",
    "provider",
    "attempts",
    "created_at",
    "updated_at",
)


@dataclass
class Generated:
    members: list[tuple[Any, ...]] = field(default_factory=list)
    tags: list[tuple[int, str]] = field(default_factory=list)
    conversations: list[tuple[Any, ...]] = field(default_factory=list)
    messages: list[tuple[Any, ...]] = field(default_factory=list)


def _body(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(3, 18))
    draw = rng.random()
    if draw < 0.15:
        words.insert(rng.randrange(len(words) + 1), COMMON)
    elif draw < 0.151:
        words.insert(rng.randrange(len(words) + 1), RARE)
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice(("", "!", "?", "."))


def _generate(size: int, community_id: int, sender_id: int, users: list[int]) -> Generated:
    rng = random.Random(2026)
    states, weights = [s for s, _ in STATES], [w for _, w in STATES]
    out = Generated()
    tie = NOW - timedelta(days=3, hours=2)  # one busy second many conversations share
    pending: list[tuple[datetime, int, str, bool]] = []  # (when, conversation, phone, inbound)
    for member_id in range(1, size + 1):
        phone = f"+{10_000_000_000 + member_id}"
        state = rng.choices(states, weights)[0]
        # Recent activity is denser: more conversations moved lately.
        last = tie if rng.random() < 0.02 else NOW - timedelta(seconds=2 * 365 * 86_400 * rng.random() ** 2)
        created = last - timedelta(days=rng.randint(0, 60), seconds=rng.randint(0, 86_400))
        out.members.append(
            (
                member_id,
                community_id,
                phone,
                state,
                rng.choice(FIRST),
                rng.choice(LAST),
                rng.choice(CITIES),
                rng.choice(LANGUAGES),
                "{}",
                "[]",
                created,
                last,
            )
        )
        draw = rng.random()
        if draw < 0.3:
            out.tags.extend((member_id, tag) for tag in rng.sample(TAGS, 2 if draw < 0.1 else 1))
        assignee = rng.choice(users) if rng.random() < 0.4 else None
        unread = rng.randint(1, 3) if rng.random() < 0.25 else 0
        out.conversations.append(
            (member_id, community_id, member_id, sender_id, assignee, unread, last, rng.random() < 0.15)
        )
        count = rng.randint(1, 5)
        for k in range(count):
            when = last - timedelta(minutes=(count - 1 - k) * rng.randint(1, 300))
            pending.append((when, member_id, phone, (count - 1 - k) % 2 == 0))
    # Ids follow time across the whole community, as a running service assigns them.
    pending.sort(key=lambda item: (item[0], item[1]))
    for message_id, (when, conversation_id, phone, inbound) in enumerate(pending, start=1):
        out.messages.append(
            (
                message_id,
                community_id,
                "inbound" if inbound else "outbound",
                "text" if inbound else "reply",
                "processed" if inbound else "delivered",
                sender_id,
                phone,
                conversation_id,
                conversation_id,
                _body(rng),
                "sandbox",
                0 if inbound else 1,
                when,
                when,
            )
        )
    return out


def _naive(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


def _sqlite_value(value: Any) -> Any:
    """As SQLAlchemy stores it in SQLite: datetimes naive UTC with microseconds."""
    if isinstance(value, datetime):
        return _naive(value).isoformat(" ", "microseconds")
    return value


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _chunks(rows: list[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


def _load_sqlite(path: str, data: Generated) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # Loading is not what is measured: no fsync per page while filling the file.
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        for table, columns, rows in (
            ("members", MEMBER_COLUMNS, data.members),
            ("conversations", CONVERSATION_COLUMNS, data.conversations),
            ("messages", MESSAGE_COLUMNS, data.messages),
        ):
            for chunk in _chunks(rows):
                connection.executemany(_insert_sql(table, columns), [tuple(map(_sqlite_value, r)) for r in chunk])
        connection.executemany("INSERT INTO member_tags (member_id, tag) VALUES (?, ?)", data.tags)
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def _load_postgres(url: str, data: Generated) -> None:
    with psycopg.connect(libpq_url(url)) as connection:
        with connection.cursor() as cursor:
            for table, columns, rows in (
                ("members", MEMBER_COLUMNS, data.members),
                ("member_tags", ("member_id", "tag"), data.tags),
                ("conversations", CONVERSATION_COLUMNS, data.conversations),
                ("messages", MESSAGE_COLUMNS, data.messages),
            ):
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(tuple(map(_naive, row)))
            # Later inserts (the users, sessions) must not collide with the copied ids.
            for table in ("members", "conversations", "messages"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        connection.commit()
        connection.autocommit = True
        for table in ("members", "member_tags", "conversations", "messages"):
            connection.execute(f"VACUUM ANALYZE {table}")


def _timings(function: Callable[[], object], repetitions: int) -> tuple[float, float]:
    """(median, slowest) seconds over ``repetitions`` runs after one warm-up run."""
    function()  # warm-up: the page cache and SQLAlchemy's statement cache, as in a running service
    timings = []
    for _ in range(repetitions):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), max(timings)


def run(options: Options) -> Table:
    """inbox list pages, filters, search and rendered pages at 100k conversations"""
    size = SMOKE if options.smoke else FULL
    repetitions = 1 if options.smoke else REPETITIONS
    table = Table()
    for label, url in each_database(options, table):
        db = Database(url)
        try:
            _measure(label, db, url, size, repetitions, table)
        finally:
            db.dispose()
    table.notes.append(f"median (and slowest) of {repetitions} run(s) after a warm-up; target {TARGET_MS:g} ms")
    table.notes.append(
        f"search words: {COMMON!r} (in ~15 % of messages), {RARE!r} (~0.1 %), {ABSENT!r} (none: reads every body)"
    )
    return table


def _setup(db: Database, url: str, size: int) -> tuple[int, list[int], float]:
    """The community, its teammates and the loaded data: (community id, user ids, load seconds)."""
    upgrade(db)
    with db.write_engine.begin() as conn:
        community = bootstrap(conn, "Benchmark")
        assert community is not None, "the benchmark database is not fresh"
        sender_id = conn.execute(sa.select(schema.senders.c.id)).scalar_one()
        owner = create_owner(conn, community.id, "owner@example.org", PASSWORD, "Owner")
        users = [owner.id] + [
            add_user(conn, community.id, f"agent{i}@example.org", PASSWORD, UserRole.agent, f"Agent {i}", by=owner).id
            for i in range(1, 4)
        ]
    data = _generate(size, community.id, sender_id, users)
    started = time.perf_counter()
    if db.is_sqlite:
        _load_sqlite(url.removeprefix("sqlite:///"), data)
    else:
        _load_postgres(url, data)
    return community.id, users, time.perf_counter() - started


def _measure(label: str, db: Database, url: str, size: int, repetitions: int, table: Table) -> None:
    community_id, users, load_seconds = _setup(db, url, size)
    deep = 500 if size >= FULL else 20
    medians: list[tuple[float, str]] = []

    def row(case: str, found: int, timings: tuple[float, float]) -> None:
        median, slowest = timings
        medians.append((median, case))
        table.rows.append(
            {
                "database": label,
                "case": case,
                "rows": f"{found:,}",
                "median ms": f"{median * 1000:.1f}",
                "slowest ms": f"{slowest * 1000:.1f}",
                "target ms": f"{TARGET_MS:g}",
            }
        )

    with db.read_engine.connect() as conn:
        # The cursor at the end of page deep-1, found the slow way once (not measured).
        position = conn.execute(
            sa.select(schema.conversations.c.last_message_at, schema.conversations.c.id)
            .join(schema.members)
            .where(
                schema.conversations.c.archived.is_(False), schema.members.c.state.in_(("subscribed", "unsubscribed"))
            )
            .order_by(schema.conversations.c.last_message_at.desc(), schema.conversations.c.id.desc())
            .offset((deep - 1) * PAGE - 1)
            .limit(1)
        ).one()
        cursor = Cursor(position.last_message_at, position.id)
        cases: list[tuple[str, View, Filters, Cursor | None]] = [
            ("inbox, first page", View.inbox, Filters(), None),
            (f"inbox, page {deep} (cursor)", View.inbox, Filters(), cursor),
            ("pending, first page", View.pending, Filters(), None),
            ("done, first page", View.done, Filters(), None),
            ("unread", View.inbox, Filters(unread=True), None),
            ("tag vip", View.inbox, Filters(tag="vip"), None),
            ("language hi", View.inbox, Filters(language="hi"), None),
            ("unread, assigned to one", View.inbox, Filters(unread=True, assigned_to=users[1]), None),
            (f"search {COMMON!r}", View.inbox, Filters(q=COMMON), None),
            (f"search {RARE!r}", View.inbox, Filters(q=RARE), None),
            (f"search {ABSENT!r}", View.inbox, Filters(q=ABSENT), None),
        ]
        for case, view, filters, before in cases:

            def listing(view: View = view, filters: Filters = filters, before: Cursor | None = before) -> Any:
                return list_conversations(conn, community_id, view, filters=filters, before=before, limit=PAGE)

            page = listing()
            _check(label, case, page.rows, filters, size)
            row(case, len(page.rows), _timings(listing, repetitions))
        row("newest (event stream poll)", 1, _timings(lambda: newest(conn, community_id, View.inbox), repetitions))
        first = list_conversations(conn, community_id, View.inbox, limit=1).rows[0].id
    for case, timings in _pages(url, community_id, first, repetitions):
        row(case, 1, timings)
    worst_ms, worst_case = max(medians)
    worst_ms *= 1000
    table.headlines.append(
        Headline(
            f"inbox at {size:,} conversations: slowest median ({worst_case})",
            label,
            worst_ms,
            "ms",
            target=f"≤ {TARGET_MS:g} ms",
            met=worst_ms <= TARGET_MS,
            better="lower",
        )
    )
    table.notes.append(
        f"{label}: loaded {size:,} conversations with their members and messages in {load_seconds:.1f} s"
    )


def _check(label: str, case: str, rows: list[Any], filters: Filters, size: int) -> None:
    if size >= FULL and filters.q != ABSENT and len(rows) != PAGE:
        raise RuntimeError(f"{label}: {case} gave {len(rows)} rows, expected a full page of {PAGE}")
    keys = [(r.last_message_at, r.id) for r in rows]
    if keys != sorted(keys, reverse=True):
        raise RuntimeError(f"{label}: {case} is not newest first")
    if filters.q == ABSENT and rows:
        raise RuntimeError(f"{label}: {case} found {len(rows)} rows for a word that is nowhere")


def _pages(
    url: str, community_id: int, conversation_id: int, repetitions: int
) -> list[tuple[str, tuple[float, float]]]:
    """The rendered pages through the app, with a session cookie."""
    with tempfile.TemporaryDirectory(prefix="openline-bench-spool-") as spool:
        runtime = Runtime.open(Settings(database_url=url, spool_dir=Path(spool)), migrate=False)
        try:
            with runtime.db.write_engine.begin() as conn:
                token, _ = sign_in(conn, "owner@example.org", PASSWORD, "bench", schema.utcnow())
            return asyncio.run(_fetch_pages(runtime, token, conversation_id, repetitions))
        finally:
            runtime.close()


async def _fetch_pages(
    runtime: Runtime, token: str, conversation_id: int, repetitions: int
) -> list[tuple[str, tuple[float, float]]]:
    app = create_app(runtime, own_runtime=False)
    transport = httpx.ASGITransport(app=app)
    results = []
    async with httpx.AsyncClient(
        transport=transport, base_url="https://sms.example.org", cookies={COOKIE: token}
    ) as http:
        for case, path in (
            ("GET /inbox", "/inbox"),
            (f"GET /inbox?q={RARE}", f"/inbox?q={RARE}"),
            ("GET /inbox/{id}", f"/inbox/{conversation_id}"),
        ):

            async def fetch(path: str = path) -> None:
                answer = await http.get(path)
                if answer.status_code != 200:
                    raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:200]}")

            await fetch()  # warm-up
            timings = []
            for _ in range(repetitions):
                started = time.perf_counter()
                await fetch()
                timings.append(time.perf_counter() - started)
            results.append((case, (statistics.median(timings), max(timings))))
    return results
