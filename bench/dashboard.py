"""The dashboard's pages at 1,000,000 members and 100,000 conversations, through the app.

One fresh database per run, filled in three steps (``executemany`` in one transaction on SQLite,
``COPY`` on PostgreSQL):

- members: ``bench.segments``' 1,000,000 members (5,000 with ``--smoke``, plus 10 % in another
  community), 80 % subscribed, a third Italian, join dates over three years;
- conversations: ``bench.inbox``'s 100,000 conversations (2,000 with ``--smoke``) with one to five
  messages each, for the first 100,000 of those members (the phone numbers are the same);
- activity: six finished broadcasts over the last 90 days to 50,000 subscribed members each (500 with
  ``--smoke``), from one segment by country, with texts as sending leaves them (93 % delivered, 3 % sent
  without a receipt, 1.5 % undelivered, 2.5 % failed; A/B variants on two; Italian for Italian members),
  5 % of recipients texting back (0.4 % STOP, with its ledger entry and answer), 7 % clicking the link
  (a quarter twice); a draft; two saved segments; and every member's consent ledger (each member who
  joined has the change to subscribed on the day they joined, each unsubscribed one the change out).

Then, through the app (``create_app`` over a Runtime on that database, httpx's ASGI transport, an
owner's session cookie), each page is fetched once to warm up and then timed fifteen times (twice with
``--smoke``): the member list's first page, a page in the middle, the first page with a filter, one
member, the filter's live count, the broadcast list, a finished broadcast, analytics over 30 and 90
days, the inbox and the settings. Reported: median and p95 (nearest rank) per page; target 200 ms. The
first fetch is reported apart: it is when /analytics counts the finished days and keeps them (the 90
days' first visit counts the 60 the 30 days' did not), which a running service does once per day.

SQLite is measured without statistics (the loaders' ANALYZE is undone): openline never runs ANALYZE, so
that is how a live database plans. PostgreSQL's are fresh, as autovacuum keeps them. The broadcasts and
the activity around them are dated from the wall clock (the analytics page counts back from today); the
loaders' members and conversations keep their own fixed dates. A page meets the target when its p95 does.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import time
from base64 import urlsafe_b64encode
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain, count, islice
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import sqlalchemy as sa

from bench import inbox, segments
from bench.common import Headline, Options, Table, each_database, libpq_url, percentile
from openline.accounts import add_user, create_owner, sign_in
from openline.broadcasts import create_broadcast
from openline.communities import bootstrap
from openline.db import Database, schema, upgrade
from openline.runtime import Runtime
from openline.segments import parse_text, save_segment
from openline.settings import Settings
from openline.states import BroadcastState, ConsentSource, Direction, MemberState, MessageKind, MessageState, UserRole
from openline.web import create_app
from openline.web.dashboard.deps import COOKIE
from openline.web.dashboard.members import count_text

__all__ = ["run"]


@dataclass(frozen=True)
class Sizes:
    members: int
    conversations: int
    recipients: int  # per broadcast


FULL = Sizes(1_000_000, 100_000, 50_000)
SMOKE = Sizes(5_000, 2_000, 500)
REPETITIONS, SMOKE_REPETITIONS = 15, 2
TARGET_MS = 200.0
PASSWORD = "bench-password-1234"
OWNER = "owner@example.org"
BASE_URL = "https://sms.example.org"
FILTER = "country = IT"
# Texts handed to the provider per second while a broadcast sends.
SEND_RATE = 100

# Name, the country its segment picks (subscribed members there), days before now it was sent, A/B.
BROADCASTS = (
    ("autumn-presale", "IT", 84, False),
    ("us-tour-dates", "US", 67, True),
    ("milan-extra-show", "IT", 45, False),
    ("mumbai-meetup", "IN", 30, False),
    ("merch-drop", "US", 16, True),
    ("last-tickets-rome", "IT", 4, False),
)
DRAFT = "december-newsletter"
# The texts as members got them (the templates below rendered, the link rewritten): format, and the
# defaults for a missing first name and city.
BODIES = {
    "A": ("Hi {first}, see you in {city}! Tickets: {link}", "friend", "town"),
    "it": ("Ciao {first}, ci vediamo a {city}! Biglietti: {link}", "amico", "città"),
    "B": ("{first}, only a few tickets left for {city}. Grab yours: {link}", "Hey", "your town"),
}
TEMPLATES = {
    "A": 'Hi {{ first_name | default("friend") }}, see you in {{ city | default("town") }}! Tickets: https://example.org/t',
    "it": 'Ciao {{ first_name | default("amico") }}, ci vediamo a {{ city | default("città") }}! '
    "Biglietti: https://example.org/t",
    "B": '{{ first_name | default("Hey") }}, only a few tickets left for {{ city | default("your town") }}. '
    "Grab yours: https://example.org/t",
}
REPLIES = ("Thanks!", "Can't wait", "What time do doors open?", "Is there parking?", "See you there", "Yes!!")
STOP_ANSWER = "You are unsubscribed from Benchmark and will get no more texts. Text START to join again."
FAILURES = {
    MessageState.undelivered: ("30003", "Unreachable destination handset"),
    MessageState.failed: ("30007", "Message filtered by the carrier"),
}
SAVED_SEGMENTS = (("Italy", "country = IT"), ("Joined this month", "state = subscribed and joined within 30 days"))

# The activity's messages (inserted without ids, in time order: ids follow time, as in a running service).
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
    "provider",
    "provider_message_id",
    "attempts",
    "sent_at",
    "delivered_at",
    "error_code",
    "error_reason",
    "created_at",
    "updated_at",
)
EVENT_COLUMNS = ("community_id", "member_id", "previous_state", "new_state", "source", "evidence", "occurred_at")
CLICK_COLUMNS = ("community_id", "member_id", "broadcast_id", "url", "clicked_at")
_COLUMN = {name: i for i, name in enumerate(segments.COLUMNS)}
# (table, columns, rows) to bulk-load.
Rows = tuple[tuple[str, tuple[str, ...], Iterable[tuple[Any, ...]]], ...]


@dataclass(frozen=True, slots=True)
class Member:
    """What the activity needs of one loaded member of the community."""

    id: int
    phone: str
    state: str
    country: str | None
    language: str | None
    first_name: str | None
    city: str | None
    joined_at: datetime | None


@dataclass(frozen=True)
class Sender:
    id: int
    provider: str


@dataclass
class Activity:
    messages: list[tuple[Any, ...]] = field(default_factory=list)  # MESSAGE_COLUMNS, any order
    events: list[tuple[Any, ...]] = field(default_factory=list)  # EVENT_COLUMNS
    clicks: list[tuple[Any, ...]] = field(default_factory=list)  # CLICK_COLUMNS


@dataclass(frozen=True)
class Page:
    label: str
    path: str
    expect: str  # the answer must contain this
    form: dict[str, str] | None = None  # posted (with the CSRF header) when given


def run(options: Options) -> Table:
    """dashboard pages at 1M members and 100k conversations, through the app"""
    sizes = SMOKE if options.smoke else FULL
    repetitions = SMOKE_REPETITIONS if options.smoke else REPETITIONS
    table = Table()
    for label, url in each_database(options, table):
        db = Database(url)
        try:
            _measure(label, db, url, sizes, repetitions, table)
        finally:
            db.dispose()
    table.notes.append(
        f"{sizes.members:,} members, {sizes.conversations:,} conversations, {len(BROADCASTS)} broadcasts to "
        f"{sizes.recipients:,} members each; median and p95 of {repetitions} fetches after a first one (its "
        "time apart: /analytics counts finished days then, and keeps them)"
    )
    return table


def _measure(label: str, db: Database, url: str, sizes: Sizes, repetitions: int, table: Table) -> None:
    started = time.perf_counter()
    community_id, other_id, sender, users = _setup(db)
    members = _load_members(db, url, community_id, other_id, sizes.members)
    conversations = _load_conversations(db, url, community_id, sender.id, users, members, sizes.conversations)
    activity, finished, profile = _broadcasts(db, community_id, sender, members, conversations, sizes.recipients)
    _load_activity(db, url, activity, _ledger(community_id, members, random.Random(7)))
    load_seconds = time.perf_counter() - started

    middle = members[len(members) // 2].id
    italians = sum(member.country == "IT" for member in members)
    last = BROADCASTS[-1][0]
    pages = [
        Page("GET /members", "/members", count_text(len(members))),
        Page("GET /members?before=<middle>", f"/members?before={middle}", f'href="/members/{middle - 1}"'),
        Page(f"GET /members?filter={FILTER}", f"/members?{urlencode({'filter': FILTER})}", count_text(italians)),
        Page("GET /members/{id}", f"/members/{profile}", "Consent history"),
        Page(f"POST /members/count ({FILTER})", "/members/count", count_text(italians), {"filter": FILTER}),
        Page("GET /broadcasts", "/broadcasts", last),
        Page("GET /broadcasts/{id} (done)", f"/broadcasts/{finished}", last),
        Page("GET /analytics?days=30", "/analytics?days=30", "Subscribed members"),
        Page("GET /analytics?days=90", "/analytics?days=90", "Subscribed members"),
        Page("GET /inbox", "/inbox", 'href="/inbox/'),
        Page("GET /settings", "/settings", "<h1>Settings</h1>"),
    ]
    worst: tuple[float, str] = (0.0, "")
    for page, first, timings in _pages(url, pages, repetitions):
        median, p95 = statistics.median(timings) * 1000, percentile(timings, 0.95) * 1000
        worst = max(worst, (p95, page.label))
        table.rows.append(
            {
                "database": label,
                "page": page.label,
                "first ms": f"{first * 1000:.1f}",
                "median ms": f"{median:.1f}",
                "p95 ms": f"{p95:.1f}",
                "target ms": f"{TARGET_MS:g}",
                "target met": "yes" if p95 <= TARGET_MS else "NO",
            }
        )
    worst_ms, worst_page = worst
    table.headlines.append(
        Headline(
            f"dashboard at {sizes.members:,} members: worst page p95 ({worst_page})",
            label,
            worst_ms,
            "ms",
            target=f"≤ {TARGET_MS:g} ms",
            met=worst_ms <= TARGET_MS,
            better="lower",
        )
    )
    table.notes.append(
        f"{label}: loaded in {load_seconds:.1f} s: {len(members):,} members, {len(conversations):,} conversations, "
        f"{len(activity.messages):,} broadcast texts, replies and answers, {len(activity.clicks):,} clicks, "
        f"the consent ledger"
    )


def _setup(db: Database) -> tuple[int, int, Sender, list[int]]:
    """The community, the other one the members' loader puts 10 % into, the sender, and the team (owner
    first)."""
    upgrade(db)
    with db.write_engine.begin() as conn:
        community = bootstrap(conn, "Benchmark")
        assert community is not None, "the benchmark database is not fresh"
        other_id = conn.execute(
            sa.insert(schema.communities)
            .values(slug="other", name="Other", settings={})
            .returning(schema.communities.c.id)
        ).scalar_one()
        s = schema.senders.c
        row = conn.execute(sa.select(s.id, s.provider).where(s.community_id == community.id)).one()
        owner = create_owner(conn, community.id, OWNER, PASSWORD, "Owner")
        users = [owner.id] + [
            add_user(conn, community.id, f"agent{i}@example.org", PASSWORD, UserRole.agent, f"Agent {i}", by=owner).id
            for i in range(1, 4)
        ]
    return community.id, int(other_id), Sender(int(row.id), str(row.provider)), users


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _load_members(db: Database, url: str, community_id: int, other_id: int, size: int) -> list[Member]:
    """bench.segments' members, loaded by its loader; returns the community's as they went by."""
    members: list[Member] = []
    chunks = _observed(segments._generate(size, community_id, other_id, [0]), community_id, members)
    if db.is_sqlite:
        segments._load_sqlite(_sqlite_path(url), chunks)
    else:
        segments._load_postgres(url, chunks)
    return members


def _observed(
    chunks: Iterator[segments.Generated], community_id: int, members: list[Member]
) -> Iterator[segments.Generated]:
    c = _COLUMN
    for chunk in chunks:
        members.extend(
            Member(
                row[c["id"]],
                row[c["phone"]],
                row[c["state"]],
                row[c["country"]],
                row[c["language"]],
                row[c["first_name"]],
                row[c["city"]],
                row[c["joined_at"]],
            )
            for row in chunk.rows
            if row[c["community_id"]] == community_id
        )
        yield chunk


def _load_conversations(
    db: Database, url: str, community_id: int, sender_id: int, users: list[int], members: list[Member], size: int
) -> dict[int, int]:
    """bench.inbox's conversations and messages, loaded by its loader, for the first ``size`` members
    (already loaded: its own members are left out); returns member id -> conversation id."""
    generated = inbox._generate(size, community_id, sender_id, users)
    phone = inbox.MEMBER_COLUMNS.index("phone")
    for row in (generated.members[0], generated.members[-1]):
        if row[0] > len(members) or members[row[0] - 1].phone != row[phone]:
            raise RuntimeError(f"bench.inbox's member {row[0]} is not bench.segments' member of that id")
    data = inbox.Generated(conversations=generated.conversations, messages=generated.messages)
    if db.is_sqlite:
        inbox._load_sqlite(_sqlite_path(url), data)
    else:
        inbox._load_postgres(url, data)
    member = inbox.CONVERSATION_COLUMNS.index("member_id")
    return {int(row[member]): int(row[0]) for row in data.conversations}


def _message(body: str = "", **values: Any) -> tuple[Any, ...]:
    """A MESSAGE_COLUMNS row: the columns not given are NULL."""
    values["body"] = body
    return tuple(values.get(column) for column in MESSAGE_COLUMNS)


def _segments(body: str) -> int:
    return 1 if len(body) <= 160 else -(-len(body) // 153)


def _broadcasts(
    db: Database,
    community_id: int,
    sender: Sender,
    members: list[Member],
    conversations: dict[int, int],
    recipients: int,
) -> tuple[Activity, int, int]:
    """The broadcasts (made by ``create_broadcast``, then marked done as sending leaves them), the saved
    segments and a draft; returns the activity still to load, the last broadcast's id and a member it
    reached who has a conversation (for the profile page)."""
    rng = random.Random(2027)
    now = datetime.now(UTC)
    pools: dict[str, list[Member]] = {}
    for member in members:
        if member.state == MemberState.subscribed.value and member.country is not None:
            pools.setdefault(member.country, []).append(member)
    activity, numbers = Activity(), count(1)
    last_id, profile = 0, 0
    with db.write_engine.begin() as conn:
        for name, text in SAVED_SEGMENTS:
            save_segment(conn, community_id, name, parse_text(text))
        for name, country, days_ago, ab in BROADCASTS:
            variants: list[dict[str, Any]] = [
                {"name": "A", "body": TEMPLATES["A"], "translations": {"it": TEMPLATES["it"]}}
            ]
            if ab:
                variants.append({"name": "B", "body": TEMPLATES["B"]})
            draft = create_broadcast(
                conn,
                community_id,
                name,
                {"variants": variants},
                segment=parse_text(f"state = subscribed and country = {country}"),
            )
            start = (now - timedelta(days=days_ago)).replace(hour=17, minute=0, second=0, microsecond=0)
            pool = pools[country]
            chosen = sorted(rng.sample(pool, min(recipients, len(pool))), key=lambda member: member.id)
            finished = _texts(
                activity, rng, numbers, community_id, sender, draft.id, chosen, conversations, start, ab, now
            )
            conn.execute(
                sa.update(schema.broadcasts)
                .where(schema.broadcasts.c.id == draft.id)
                .values(
                    state=BroadcastState.done,
                    tally={"recipients": len(chosen), "deferred": {}, "skipped": {}},
                    fanout_cursor=chosen[-1].id,
                    created_at=start - timedelta(hours=3),
                    started_at=start,
                    finished_at=finished,
                    updated_at=finished,
                )
            )
            conn.execute(sa.insert(schema.broadcast_links).values(broadcast_id=draft.id, url="https://example.org/t"))
            last_id = draft.id
            profile = next(member.id for member in chosen if member.id in conversations)
        create_broadcast(
            conn,
            community_id,
            DRAFT,
            {"variants": [{"body": TEMPLATES["A"], "translations": {"it": TEMPLATES["it"]}}]},
            segment=parse_text("state = subscribed"),
        )
    return activity, last_id, profile


def _texts(
    activity: Activity,
    rng: random.Random,
    numbers: Iterator[int],
    community_id: int,
    sender: Sender,
    broadcast_id: int,
    chosen: list[Member],
    conversations: dict[int, int],
    start: datetime,
    ab: bool,
    now: datetime,
) -> datetime:
    """One broadcast's texts, the replies, STOPs (ledger entry and answer) and clicks they drew; returns
    when its last text was settled."""
    common = {"community_id": community_id, "sender_id": sender.id, "provider": sender.provider}
    outbound, inbound = Direction.outbound.value, Direction.inbound.value
    last = start

    def soon(after: datetime, mean_seconds: float) -> datetime:
        return min(after + timedelta(seconds=rng.expovariate(1 / mean_seconds)), now - timedelta(seconds=1))

    for position, member in enumerate(chosen):
        link = f"{BASE_URL}/l/{urlsafe_b64encode(rng.randbytes(16)).rstrip(b'=').decode()}"  # as links.py makes them
        variant = "B" if ab and rng.random() < 0.5 else "A"
        text, first, city = BODIES["it" if variant == "A" and member.language == "it" else variant]
        body = text.format(first=member.first_name or first, city=member.city or city, link=link)
        draw = rng.random()
        state = (
            MessageState.delivered
            if draw < 0.93
            else MessageState.sent
            if draw < 0.96
            else MessageState.undelivered
            if draw < 0.975
            else MessageState.failed
        )
        created = start + timedelta(seconds=position / 2_000)  # fan-out writes ahead of sending
        sent = None if state is MessageState.failed else start + timedelta(seconds=position / SEND_RATE)
        delivered = sent + timedelta(seconds=rng.uniform(2, 15)) if sent and state is MessageState.delivered else None
        code, reason = FAILURES.get(state, (None, None))
        settled = delivered or sent or created
        last = max(last, settled)
        conversation = conversations.get(member.id)
        activity.messages.append(
            _message(
                body,
                **common,
                direction=outbound,
                kind=MessageKind.broadcast.value,
                state=state.value,
                phone=member.phone,
                member_id=member.id,
                conversation_id=conversation,
                broadcast_id=broadcast_id,
                variant=variant,
                encoding="gsm7",
                segments=_segments(body),
                provider_message_id=None if sent is None else f"bench-{next(numbers)}",
                attempts=1,
                sent_at=sent,
                delivered_at=delivered,
                error_code=code,
                error_reason=reason,
                created_at=created,
                updated_at=settled,
            )
        )
        if sent is None:
            continue
        if rng.random() < 0.05:
            stop = rng.random() < 0.08
            when = soon(sent, 2_700)
            activity.messages.append(
                _message(
                    "STOP" if stop else rng.choice(REPLIES),
                    **common,
                    direction=inbound,
                    kind=MessageKind.text.value,
                    state=MessageState.processed.value,
                    phone=member.phone,
                    member_id=member.id,
                    conversation_id=conversation,
                    provider_message_id=f"bench-{next(numbers)}",
                    attempts=0,
                    created_at=when,
                    updated_at=when,
                )
            )
            if stop:
                answered = when + timedelta(seconds=1)
                activity.events.append(
                    (
                        community_id,
                        member.id,
                        MemberState.subscribed.value,
                        MemberState.unsubscribed.value,
                        ConsentSource.sms.value,
                        json.dumps({"provider": sender.provider, "text": "STOP"}),
                        when,
                    )
                )
                activity.messages.append(
                    _message(
                        STOP_ANSWER,
                        **common,
                        direction=outbound,
                        kind=MessageKind.system.value,
                        state=MessageState.delivered.value,
                        phone=member.phone,
                        member_id=member.id,
                        conversation_id=conversation,
                        encoding="gsm7",
                        segments=1,
                        provider_message_id=f"bench-{next(numbers)}",
                        attempts=1,
                        sent_at=answered,
                        delivered_at=answered + timedelta(seconds=3),
                        created_at=when,
                        updated_at=answered + timedelta(seconds=3),
                    )
                )
        if rng.random() < 0.07:
            clicked = soon(sent, 1_800)
            for _ in range(2 if rng.random() < 0.25 else 1):
                activity.clicks.append((community_id, member.id, broadcast_id, "https://example.org/t", clicked))
                clicked = soon(clicked, 3_600)
    return last + timedelta(seconds=30)


# How the members who joined did it, and what the ledger keeps as proof.
SOURCES = (
    (ConsentSource.sms.value, 60, json.dumps({"provider": "sandbox", "text": "JOIN"})),
    (
        ConsentSource.form.value,
        30,
        json.dumps({"ip": "192.0.2.10", "user_agent": "Mozilla/5.0", "disclosure": "By joining you agree to texts."}),
    ),
    (ConsentSource.import_file.value, 10, json.dumps({"file": "fans.csv", "consent_source": "paper form"})),
)


def _ledger(community_id: int, members: list[Member], rng: random.Random) -> Iterator[tuple[Any, ...]]:
    """Every member's consent ledger: the change to subscribed when they joined, and the change out of it
    for the unsubscribed (some time between joining and the members' "now")."""
    sources, weights = [s[0] for s in SOURCES], [s[1] for s in SOURCES]
    evidence = {s[0]: s[2] for s in SOURCES}
    stop = json.dumps({"provider": "sandbox", "text": "STOP"})
    subscribed, unsubscribed = MemberState.subscribed.value, MemberState.unsubscribed.value
    for member in members:
        if member.joined_at is None:
            continue
        source = rng.choices(sources, weights)[0]
        yield community_id, member.id, None, subscribed, source, evidence[source], member.joined_at
        if member.state == unsubscribed:
            left = member.joined_at + (segments.NOW - member.joined_at) * rng.random()
            yield community_id, member.id, subscribed, unsubscribed, ConsentSource.sms.value, stop, left


def _batches(rows: Iterable[tuple[Any, ...]], size: int = inbox.CHUNK) -> Iterator[list[tuple[Any, ...]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def _load_activity(db: Database, url: str, activity: Activity, ledger: Iterator[tuple[Any, ...]]) -> None:
    """The broadcasts' texts, replies and answers (in time order, so their ids follow time), the consent
    ledger and the clicks. Then SQLite's statistics are removed (the loaders above leave some) and
    PostgreSQL's brought up to date: each database plans as it does in a running installation, where
    openline never runs ANALYZE on SQLite and PostgreSQL's autovacuum does."""
    created = MESSAGE_COLUMNS.index("created_at")
    tables: Rows = (
        ("messages", MESSAGE_COLUMNS, sorted(activity.messages, key=lambda row: row[created])),
        ("consent_events", EVENT_COLUMNS, chain(ledger, activity.events)),
        ("link_clicks", CLICK_COLUMNS, sorted(activity.clicks, key=lambda row: row[-1])),
    )
    if db.is_sqlite:
        _load_sqlite(_sqlite_path(url), tables)
    else:
        _load_postgres(url, tables)


def _load_sqlite(path: str, tables: Rows) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous=OFF")  # loading is not what is measured
        connection.execute("BEGIN")
        for table, columns, rows in tables:
            for batch in _batches(rows):
                connection.executemany(
                    inbox._insert_sql(table, columns), [tuple(map(inbox._sqlite_value, row)) for row in batch]
                )
        connection.execute("COMMIT")
        # Statistics make SQLite's planner choose differently: measured as a live database is, without.
        stats = connection.execute("SELECT name FROM sqlite_master WHERE name LIKE 'sqlite_stat%'").fetchall()
        for (name,) in stats:
            connection.execute(f"DELETE FROM {name}")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def _load_postgres(url: str, tables: Rows) -> None:
    with psycopg.connect(libpq_url(url)) as connection:
        with connection.cursor() as cursor:
            for table, columns, rows in tables:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(tuple(map(inbox._naive, row)))
        connection.commit()
        connection.autocommit = True
        for table in ("messages", "consent_events", "link_clicks", "broadcasts"):
            connection.execute(f"VACUUM ANALYZE {table}")


# -- the pages -------------------------------------------------------------------------------------------


def _pages(url: str, pages: list[Page], repetitions: int) -> list[tuple[Page, float, list[float]]]:
    """Each page's first fetch and its timed fetches, in seconds, through the app with the owner's session."""
    with tempfile.TemporaryDirectory(prefix="openline-bench-spool-") as spool:
        runtime = Runtime.open(Settings(database_url=url, spool_dir=Path(spool)), migrate=False)
        try:
            with runtime.db.write_engine.begin() as conn:
                token, session = sign_in(conn, OWNER, PASSWORD, "bench", schema.utcnow())
            return asyncio.run(_fetch_pages(runtime, token, session.csrf_token, pages, repetitions))
        finally:
            runtime.close()


async def _fetch_pages(
    runtime: Runtime, token: str, csrf: str, pages: list[Page], repetitions: int
) -> list[tuple[Page, float, list[float]]]:
    app = create_app(runtime, own_runtime=False)
    results = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, cookies={COOKIE: token}
    ) as http:
        for page in pages:

            async def fetch(page: Page = page) -> httpx.Response:
                if page.form is None:
                    return await http.get(page.path)
                return await http.post(page.path, data=page.form, headers={"X-CSRF-Token": csrf})

            # Warm-up: the page cache and SQLAlchemy's statement cache, as in a running service (and the
            # analytics page's finished days, counted on a first visit and kept). Timed, and shown apart.
            started = time.perf_counter()
            first = await fetch()
            first_seconds = time.perf_counter() - started
            _check(page, first)
            timings = []
            for _ in range(repetitions):
                started = time.perf_counter()
                answer = await fetch()
                timings.append(time.perf_counter() - started)
                _check(page, answer)
            results.append((page, first_seconds, timings))
    return results


def _check(page: Page, answer: httpx.Response) -> None:
    if answer.status_code != 200:
        raise RuntimeError(f"{page.label}: {answer.status_code} {answer.text[:300]}")
    if page.expect not in answer.text:
        raise RuntimeError(f"{page.label}: the answer lacks {page.expect!r}")
