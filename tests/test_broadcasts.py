"""Broadcasts on SQLite and PostgreSQL: estimate = fan-out, resumable fan-out, windows, caps, schedules,
pause/resume/cancel through the dispatcher, stats and why."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from openline.broadcasts import (
    Schedule,
    TemplateProblem,
    WrongState,
    advance,
    broadcast_stats,
    cancel,
    create_broadcast,
    estimate,
    fan_out_batch,
    get_broadcast,
    pause,
    resume,
    start,
    why,
)
from openline.broadcasts.plan import Planned, Planner
from openline.communities import get_community
from openline.db import Database, schema
from openline.dispatcher import Dispatcher
from openline.encoding import count_segments
from openline.engine.config import update_config
from openline.links import InvalidLink, link_issued_at, read_member_link
from openline.runtime import Runtime
from openline.states import BroadcastState
from openline.tracking import find_urls, read_link_code, record_click

from .test_dispatcher import FakeProvider

m = schema.messages.c
KEY = b"k" * 32
BASE = "https://sms.example.org"
# A Wednesday, 15:00 UTC: 10:00 in New York, 07:00 in Los Angeles, 16:00 in Rome.
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
BODY = 'Hi {{ first_name | default("friend") }}! Tickets: https://example.org/t'
ITALIAN = 'Ciao {{ first_name | default("amico") }}! Biglietti: https://example.org/t'

PEOPLE: list[dict[str, Any]] = [
    {"phone": "+12125550101", "state": "subscribed", "first_name": "Ada", "country": "US",
     "time_zone": "America/New_York"},
    {"phone": "+13105550102", "state": "subscribed", "country": "US", "time_zone": "America/Los_Angeles"},
    {"phone": "+393471234567", "state": "subscribed", "first_name": "Łukasz", "country": "IT", "language": "it",
     "time_zone": "Europe/Rome"},
    {"phone": "+12125550104", "state": "pending", "country": "US", "time_zone": "America/New_York"},
    {"phone": "+12125550105", "state": "unsubscribed", "country": "US", "time_zone": "America/New_York"},
    {"phone": "+13055550106", "state": "subscribed", "first_name": "Flo", "country": "US",
     "time_zone": "America/New_York"},
]  # fmt: skip


def add_people(db: Database, people: list[dict[str, Any]]) -> dict[str, int]:
    with db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        ids = {}
        for person in people:
            values = {"time_zones": [person["time_zone"]] if "time_zone" in person else [], "custom": {}, **person}
            ids[person["phone"]] = conn.execute(
                sa.insert(schema.members).values(community_id=community_id, **values).returning(schema.members.c.id)
            ).scalar_one()
        return ids


def community_id(db: Database) -> int:
    with db.read_engine.connect() as conn:
        return get_community(conn).id


def draft(db: Database, name: str = "tickets", **options: Any) -> int:
    message = options.pop("message", {"variants": [{"body": BODY, "translations": {"it": ITALIAN}}]})
    options.setdefault("segment", {"and": []})
    with db.write_engine.begin() as conn:
        return create_broadcast(conn, get_community(conn).id, name, message, **options).id


def set_rules(db: Database, **rules: Any) -> None:
    with db.write_engine.begin() as conn:
        update_config(conn, get_community(conn).id, broadcasts=rules)


def fan_out_all(db: Database, broadcast_id: int, now: datetime = NOW, limit: int = 2) -> None:
    while True:
        with db.write_engine.begin() as conn:
            if fan_out_batch(conn, broadcast_id, now=now, base_url=BASE, link_key=KEY, limit=limit) < limit:
                return


def texts(db: Database, broadcast_id: int) -> dict[str, Any]:
    with db.read_engine.connect() as conn:
        rows = conn.execute(sa.select(schema.messages).where(m.broadcast_id == broadcast_id)).all()
    return {row.phone: row for row in rows}


@pytest.fixture
def people(runtime: Runtime) -> dict[str, int]:
    return add_people(runtime.db, PEOPLE)


def test_the_estimate_is_what_fan_out_writes(runtime: Runtime, people: dict[str, int]) -> None:
    db = runtime.db
    set_rules(db, prices={"US": 0.01, "IT": 0.05})
    broadcast_id = draft(db)
    with db.write_engine.begin() as conn:
        result = estimate(conn, get_broadcast(conn, broadcast_id), now=NOW, base_url=BASE, link_key=KEY)
    assert result.recipients == 4
    assert result.skipped == {"never confirmed (pending)": 1, "opted out": 1}
    assert result.by_encoding == {"GSM-7": 3, "UCS-2": 1}
    assert result.tipped == {"are UCS-2 because their first name has 'Ł'": 1}
    assert result.waits == {"the sending window to open (08:00 their time)": 1}  # Los Angeles, 07:00 now
    assert result.cost == pytest.approx(0.01 * 3 + 0.05 * 1)
    assert result.summary()[0] == "4 recipients, 4 segments, ≈ 0.08 USD"

    with db.write_engine.begin() as conn:
        start(conn, get_broadcast(conn, broadcast_id), NOW)
    fan_out_all(db, broadcast_id)
    written = texts(db, broadcast_id)
    assert set(written) == {"+12125550101", "+13105550102", "+393471234567", "+13055550106"}
    assert sum(row.segments for row in written.values()) == result.segments
    italian = written["+393471234567"]
    assert italian.body.startswith("Ciao Łukasz! Biglietti: https://sms.example.org/l/")
    assert italian.encoding == "ucs2"
    assert written["+12125550101"].body.startswith("Hi Ada! Tickets: https://sms.example.org/l/")
    assert written["+12125550101"].next_attempt_at is None  # 10:00 in New York: now
    la = written["+13105550102"]
    assert la.body.startswith("Hi friend!")
    assert la.next_attempt_at == datetime(2026, 11, 25, 16, 0, tzinfo=UTC)  # 08:00 in Los Angeles
    assert la.expires_at == la.next_attempt_at + timedelta(hours=10)
    with db.read_engine.connect() as conn:
        done = get_broadcast(conn, broadcast_id)
    assert done.state is BroadcastState.sending
    assert done.tally == {
        "recipients": 4,
        "deferred": {"the sending window to open (08:00 their time)": 1},
        "skipped": {"never confirmed (pending)": 1, "opted out": 1},
    }
    # Each member's link is their own, and leads to the one URL written.
    codes = {phone: find_urls(row.body)[0][2].rsplit("/", 1)[1] for phone, row in written.items()}
    assert len(set(codes.values())) == 4
    assert {read_link_code(KEY, code)[1] for code in codes.values()} == {people[p] for p in codes}


def test_fan_out_resumes_after_a_crash_and_never_writes_a_text_twice(runtime: Runtime, people: dict[str, int]) -> None:
    db = runtime.db
    broadcast_id = draft(db)
    with db.write_engine.begin() as conn:
        start(conn, get_broadcast(conn, broadcast_id), NOW)
    with db.write_engine.connect() as conn, conn.begin() as transaction:  # a batch, then the process dies
        fan_out_batch(conn, broadcast_id, now=NOW, base_url=BASE, link_key=KEY, limit=3)
        transaction.rollback()
    assert texts(db, broadcast_id) == {}
    with db.write_engine.begin() as conn:
        assert fan_out_batch(conn, broadcast_id, now=NOW, base_url=BASE, link_key=KEY, limit=3) == 3
    assert len(texts(db, broadcast_id)) == 3  # the first three members are subscribed
    # A batch repeated from an old position (as if its cursor were lost) adds nothing twice.
    with db.write_engine.begin() as conn:
        conn.execute(sa.update(schema.broadcasts).values(fanout_cursor=None))
    fan_out_all(db, broadcast_id, limit=3)
    assert len(texts(db, broadcast_id)) == 4


def test_template_problems_are_refused_when_the_broadcast_is_made(runtime: Runtime) -> None:
    with pytest.raises(TemplateProblem) as problem:
        draft(runtime.db, message={"variants": [{"body": "Hi {{ frist_name }}"}]})
    assert (problem.value.line, problem.value.column) == (1, 7)
    assert "did you mean 'first_name'" in str(problem.value)
    with pytest.raises(ValueError, match="no saved segment named 'nope'"):
        draft(runtime.db, segment=None, segment_name="nope")
    draft(runtime.db)
    with pytest.raises(ValueError, match="already a broadcast named"):
        draft(runtime.db)


def test_a_missing_value_skips_the_member_instead_of_half_rendering(runtime: Runtime, people: dict[str, int]) -> None:
    db = runtime.db
    broadcast_id = draft(db, message={"variants": [{"body": "Hi {{ first_name }}!"}]})
    with db.write_engine.begin() as conn:
        result = estimate(conn, get_broadcast(conn, broadcast_id), now=NOW, base_url=BASE, link_key=KEY)
    assert result.recipients == 3
    assert [reason for reason in result.skipped if "first_name" in reason] == [
        'no first_name for this member (line 1); write {{ first_name | default("friend") }}'
    ]


def test_a_local_time_schedule_reaches_each_member_at_their_hour(runtime: Runtime, people: dict[str, int]) -> None:
    db = runtime.db
    schedule = Schedule(local_date=date(2026, 11, 27), local_time="10:00")
    broadcast_id = draft(db, schedule=schedule)
    with db.write_engine.begin() as conn:
        started = start(conn, get_broadcast(conn, broadcast_id), NOW)
    assert started.state is BroadcastState.scheduled  # 10:00 on the 27th comes round first at UTC+14
    with db.write_engine.begin() as conn:
        assert advance(conn, datetime(2026, 11, 26, 19, 59, tzinfo=UTC)) == []
        assert advance(conn, datetime(2026, 11, 26, 20, 0, tzinfo=UTC)) == [broadcast_id]
    fan_out_all(db, broadcast_id, now=datetime(2026, 11, 26, 20, 0, tzinfo=UTC))
    written = texts(db, broadcast_id)
    for phone, zone in [("+12125550101", "America/New_York"), ("+393471234567", "Europe/Rome")]:
        local = written[phone].next_attempt_at.astimezone(ZoneInfo(zone))
        assert (local.date(), local.hour, local.minute) == (date(2026, 11, 27), 10, 0)


def test_the_frequency_cap_defers_a_second_broadcast(runtime: Runtime, people: dict[str, int]) -> None:
    db = runtime.db
    set_rules(db, frequency_cap=1)
    sent_at = NOW - timedelta(hours=2)
    earlier = draft(db, "earlier")
    with db.write_engine.begin() as conn:
        start(conn, get_broadcast(conn, earlier), sent_at)
    fan_out_all(db, earlier, now=sent_at)
    with db.write_engine.begin() as conn:
        conn.execute(sa.update(schema.messages).values(state="sent", sent_at=sent_at, next_attempt_at=None))
    later = draft(db, "later")
    with db.write_engine.begin() as conn:
        start(conn, get_broadcast(conn, later), NOW)
    fan_out_all(db, later)
    rome = texts(db, later)["+393471234567"]
    assert rome.next_attempt_at == sent_at + timedelta(hours=24)
    assert rome.error_reason == "waits for the frequency cap (1 per 24 h)"
    with db.read_engine.connect() as conn:
        story = why(conn, get_broadcast(conn, later), "+39 347 123 4567", now=NOW, base_url=BASE, link_key=KEY)
    assert story == "deferred until 2026-11-26 14:00 Europe/Rome: waits for the frequency cap (1 per 24 h)"


def test_stats_and_why(runtime: Runtime, people: dict[str, int]) -> None:
    db = runtime.db
    broadcast_id = draft(db)
    with db.write_engine.begin() as conn:
        start(conn, get_broadcast(conn, broadcast_id), NOW)
    fan_out_all(db, broadcast_id)
    ada = texts(db, broadcast_id)["+12125550101"]
    with db.write_engine.begin() as conn:
        conn.execute(sa.update(schema.messages).where(m.id == ada.id).values(state="delivered", sent_at=NOW))
        conn.execute(
            sa.insert(schema.messages).values(
                community_id=ada.community_id, direction="inbound", kind="text", state="processed",
                sender_id=ada.sender_id, phone=ada.phone, member_id=ada.member_id, body="yes!", provider="sandbox",
                created_at=NOW + timedelta(minutes=5), updated_at=NOW,
            )
        )  # fmt: skip
        code = find_urls(ada.body)[0][2].rsplit("/", 1)[1]
        for _ in range(2):
            assert record_click(conn, KEY, code, NOW + timedelta(minutes=1)) == "https://example.org/t"
    with db.read_engine.connect() as conn:
        broadcast = get_broadcast(conn, broadcast_id)
        stats = broadcast_stats(conn, broadcast, NOW)
        stories = {
            phone: why(conn, broadcast, phone, now=NOW, base_url=BASE, link_key=KEY)
            for phone in ("+12125550101", "+13105550102", "+12125550104", "+447911123456")
        }
    assert stats.recipients == 4
    assert stats.texts == {"delivered": 1, "queued": 2, "deferred": 1}
    assert (stats.clicks, stats.clicked, stats.replied, stats.opted_out) == (2, 1, 1, 0)
    assert stories["+12125550101"] == "sent 2026-11-25 15:00 UTC"
    assert stories["+13105550102"].startswith("deferred until 2026-11-25 08:00 America/Los_Angeles")
    assert (
        stories["+12125550104"]
        == "no text was written for them at fan-out; as of now: skipped: never confirmed (pending)"
    )
    assert stories["+447911123456"] == "+447911123456 is not a member (never texted, or erased their data)"


def test_states_move_only_where_they_may(runtime: Runtime, people: dict[str, int]) -> None:
    db = runtime.db
    broadcast_id = draft(db)
    with db.write_engine.begin() as conn:
        broadcast = get_broadcast(conn, broadcast_id)
        with pytest.raises(WrongState):
            pause(conn, broadcast)
        with pytest.raises(WrongState):
            resume(conn, broadcast)
        running = start(conn, broadcast, NOW)
        with pytest.raises(WrongState):
            start(conn, running, NOW)
        paused = pause(conn, running)
        assert resume(conn, paused).state is BroadcastState.fanning_out
        cancelled, _ = cancel(conn, get_broadcast(conn, broadcast_id), NOW)
        with pytest.raises(WrongState):
            cancel(conn, cancelled, NOW)


# -- through the dispatcher, in real time --------------------------------------------------------


def italians(runtime: Runtime, n: int) -> dict[str, int]:
    """Members in Italy: no legal sending hours there, so only the owner's windows decide."""
    return add_people(
        runtime.db,
        [
            {"phone": f"+3934712300{i:02d}", "state": "subscribed", "country": "IT", "time_zone": "Europe/Rome"}
            for i in range(n)
        ],
    )


async def dispatch(runtime: Runtime, provider: FakeProvider, seconds: float) -> None:
    dispatcher = Dispatcher(runtime.db, runtime.writer, {"sandbox": provider}, owner="test")
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task


def closed_now(zone: str) -> list[str]:
    """An owner window that is surely closed now (and for the next two hours) in ``zone``."""
    hour = (datetime.now(ZoneInfo(zone)).hour + 3) % 24
    return [f"daily {hour:02d}:00-{hour + 1:02d}:00", f"holidays {hour:02d}:00-{hour + 1:02d}:00"]


async def test_pause_holds_texts_and_resume_sends_them(runtime: Runtime) -> None:
    db = runtime.db
    italians(runtime, 4)
    broadcast_id = draft(db, message={"variants": [{"body": "Ciao!"}]})
    now = datetime.now(UTC)
    with db.write_engine.begin() as conn:
        start(conn, get_broadcast(conn, broadcast_id), now)
    fan_out_all(db, broadcast_id, now=now, limit=10)
    with db.write_engine.begin() as conn:
        pause(conn, get_broadcast(conn, broadcast_id))
    provider = FakeProvider()
    await dispatch(runtime, provider, 0.8)
    assert provider.sent == []
    with db.write_engine.begin() as conn:
        resume(conn, get_broadcast(conn, broadcast_id))
    await dispatch(runtime, provider, 1.5)
    assert sorted(sms.to for _, sms in provider.sent) == sorted(texts(db, broadcast_id))
    with db.write_engine.begin() as conn:
        advance(conn, datetime.now(UTC))
        assert get_broadcast(conn, broadcast_id).state is BroadcastState.done


async def test_cancel_stops_every_text_not_yet_sent(runtime: Runtime) -> None:
    db = runtime.db
    italians(runtime, 3)
    broadcast_id = draft(db, message={"variants": [{"body": "Ciao!"}]})
    now = datetime.now(UTC)
    with db.write_engine.begin() as conn:
        start(conn, get_broadcast(conn, broadcast_id), now)
    fan_out_all(db, broadcast_id, now=now, limit=10)
    with db.write_engine.begin() as conn:
        _, cancelled = cancel(conn, get_broadcast(conn, broadcast_id), now)
    assert cancelled == 3
    provider = FakeProvider()
    await dispatch(runtime, provider, 0.8)
    assert provider.sent == []
    assert {(row.state, row.error_reason) for row in texts(db, broadcast_id).values()} == {
        ("cancelled", "the broadcast was cancelled")
    }


async def test_windows_are_checked_again_at_send_time(runtime: Runtime) -> None:
    db = runtime.db
    italians(runtime, 2)
    broadcast_id = draft(db, message={"variants": [{"body": "Ciao!"}]})
    now = datetime.now(UTC)
    with db.write_engine.begin() as conn:
        start(conn, get_broadcast(conn, broadcast_id), now)
    fan_out_all(db, broadcast_id, now=now, limit=10)  # due at once...
    set_rules(db, windows=closed_now("Europe/Rome"))  # ...but the owner closes the window meanwhile
    provider = FakeProvider()
    started = time.monotonic()
    await dispatch(runtime, provider, 0.8)
    assert provider.sent == [], time.monotonic() - started
    for row in texts(db, broadcast_id).values():
        assert row.state == "queued"
        assert row.next_attempt_at > datetime.now(UTC) + timedelta(hours=1)
        assert "owner" in row.error_reason and "Europe/Rome" in row.error_reason
        assert row.expires_at == row.next_attempt_at + timedelta(hours=10)


def test_a_footer_in_the_members_language_is_counted(runtime: Runtime, people: dict[str, int]) -> None:
    db = runtime.db
    set_rules(db, footer={"*": "Reply STOP to opt out", "it": "Rispondi STOP per uscire"})
    broadcast_id = draft(db, message={"variants": [{"body": "News!", "translations": {"it": "Novità!"}}]})
    with db.write_engine.begin() as conn:
        start(conn, get_broadcast(conn, broadcast_id), NOW)
    fan_out_all(db, broadcast_id)
    written = texts(db, broadcast_id)
    assert written["+12125550101"].body == "News!\nReply STOP to opt out"
    assert written["+393471234567"].body == "Novità!\nRispondi STOP per uscire"
    with pytest.raises(ValueError, match="not a language code"):
        set_rules(db, footer={"Italian": "x"})


# -- {{ form_link }} ---------------------------------------------------------------------------------

JOIN_KEY = b"j" * 32
# About 145 characters with the tracked link: one segment, but two with a join link (about 65 characters) in it.
FORM_LINK_BODY = (
    "We now ask for your birthday and favourite song, so the next show suits you. "
    "It takes a minute: {{ form_link }} (tickets: https://example.org/t)"
)


def test_form_link_is_each_members_own_join_link_counted_by_the_estimate(
    runtime: Runtime, people: dict[str, int]
) -> None:
    db = runtime.db
    broadcast_id = draft(db, message={"variants": [{"body": FORM_LINK_BODY}]})
    with db.write_engine.begin() as conn:
        broadcast = get_broadcast(conn, broadcast_id)
        # An estimate needs no member-link key: its links are as long as real ones, but open nothing.
        result = estimate(conn, broadcast, now=NOW, base_url=BASE, link_key=KEY)
        preview = Planner(conn, broadcast, now=NOW, base_url=BASE, link_key=KEY)
        [sample] = preview.plan(conn, preview.members(conn, 0, 1))
        assert isinstance(sample, Planned)
        [shown] = [url for _, _, url in find_urls(sample.body) if "/join/" in url]
        with pytest.raises(InvalidLink):
            read_member_link(JOIN_KEY, shown.rsplit("/", 1)[1])
        start(conn, broadcast, NOW)
    with db.write_engine.begin() as conn, pytest.raises(ValueError, match="member-link key"):
        fan_out_batch(conn, broadcast_id, now=NOW, base_url=BASE, link_key=KEY)  # never sends links that open nothing
    # Fan-out signs its links later than the estimate did, and its tokens differ, but not their length.
    later = NOW + timedelta(hours=1)
    with db.write_engine.begin() as conn:
        fan_out_batch(conn, broadcast_id, now=later, base_url=BASE, link_key=KEY, join_key=JOIN_KEY)
    written = texts(db, broadcast_id)
    assert result.recipients == len(written) == 4
    assert result.by_segments == {2: 4}  # the link's real length tips each text into a second segment
    assert sum(row.segments for row in written.values()) == result.segments == 8
    links = {}
    for phone, row in written.items():
        assert count_segments(row.body).segments == row.segments == 2
        urls = [url for _, _, url in find_urls(row.body)]
        # The join link is left as it is (it carries its own signed token); the other URL is tracked.
        assert urls[0].startswith(f"{BASE}/join/") and urls[1].startswith(f"{BASE}/l/")
        assert f"minute: {urls[0]} (tickets:" in row.body
        link = read_member_link(JOIN_KEY, urls[0].rsplit("/", 1)[1])
        assert link.member_id == people[phone]
        assert link_issued_at(link) == later  # signed at fan-out: it lives 30 days from there
        links[phone] = urls[0]
    assert len(set(links.values())) == 4
    with db.read_engine.connect() as conn:
        tracked = conn.execute(
            sa.select(schema.broadcast_links.c.url).where(schema.broadcast_links.c.broadcast_id == broadcast_id)
        )
        assert list(tracked.scalars()) == ["https://example.org/t"]
