"""The analytics series on SQLite and PostgreSQL, exact on a small community with known days.

The fixture's story (UTC), for the 30 days up to 2025-03-10:

- D joined long before (January) and texts again on 03-02; H's only text is at the very first instant
  of the range; another community's texts never count.
- 03-01: A, B and G text for the first time (autotexts after 1, 10 and 4 s; G's is undelivered); A and B
  reply YES, are confirmed and join.
- 03-03: a broadcast to A, B and D, all delivered. A answers within the hour and clicks twice; B
  answers 24 h 30 min later (too late to count) and clicks once; D says nothing.
- 03-05: B opts out; E's first text is STOP, its confirmation fails after being sent (5 s).
- 03-08: C joins by the form and texts; C's autotext is still queued (not sent: not counted).
- 03-09: F texts; its autotext is sent (2 s) but has no receipt yet.
- 03-10 (today): a broadcast text to C, answered within the hour.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from openline.analytics import (
    DayRange,
    Outbound,
    Waits,
    autotext_waits,
    cached_report,
    clicks_per_day,
    day_range,
    forget,
    inbound_per_day,
    member_growth,
    opt_outs_per_day,
    outbound_per_day,
    remember,
    replies_per_day,
    report,
    settled_until,
)
from openline.communities import get_community
from openline.db import schema
from openline.runtime import Runtime
from openline.senders import add_sender, list_senders
from openline.states import Direction, MemberState, MessageKind, MessageState

NOW = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
RANGE = day_range(30, NOW)


def at(day: int, hour: int = 0, minute: int = 0, second: float = 0, month: int = 3) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC) + timedelta(seconds=second)


class Community:
    """Rows for one community, written in the order a running service would write them."""

    def __init__(self, conn: sa.Connection, community_id: int, sender_id: int) -> None:
        self.conn, self.community_id, self.sender_id = conn, community_id, sender_id
        self.members: dict[str, int] = {}

    def _insert(self, table: sa.Table, **values: Any) -> int:
        insert = sa.insert(table).values(community_id=self.community_id, **values).returning(table.c.id)
        return int(self.conn.execute(insert).scalar_one())

    def member(self, name: str, state: MemberState, joined: datetime | None = None) -> int:
        self.members[name] = self._insert(
            schema.members,
            phone=phone(name),
            state=state,
            joined_at=joined,
            time_zones=[],
            custom={},
        )
        return self.members[name]

    def consent(self, name: str, previous: MemberState | None, new: MemberState, when: datetime) -> None:
        self._insert(
            schema.consent_events,
            member_id=self.members[name],
            previous_state=previous,
            new_state=new,
            source="sms",
            evidence={},
            occurred_at=when,
        )

    def inbound(self, name: str, when: datetime) -> None:
        self._text(name, Direction.inbound, MessageKind.text, MessageState.processed, when)

    def outbound(
        self,
        name: str,
        kind: MessageKind,
        state: MessageState,
        created: datetime,
        sent: datetime | None,
        broadcast_id: int | None = None,
    ) -> None:
        self._text(name, Direction.outbound, kind, state, created, sent, broadcast_id)

    def _text(
        self,
        name: str,
        direction: Direction,
        kind: MessageKind,
        state: MessageState,
        created: datetime,
        sent: datetime | None = None,
        broadcast_id: int | None = None,
    ) -> None:
        self._insert(
            schema.messages,
            direction=direction,
            kind=kind,
            state=state,
            sender_id=self.sender_id,
            phone=phone(name),
            member_id=self.members.get(name),
            broadcast_id=broadcast_id,
            body="hi",
            provider="sandbox",
            created_at=created,
            sent_at=sent,
        )

    def broadcast(self, name: str) -> int:
        return self._insert(schema.broadcasts, name=name, message={}, segment={}, state="done", tally={})

    def click(self, name: str, broadcast_id: int, when: datetime) -> None:
        self._insert(
            schema.link_clicks,
            member_id=self.members[name],
            broadcast_id=broadcast_id,
            url="https://x",
            clicked_at=when,
        )


def phone(name: str) -> str:
    return "+1202555" + str(1000 + ord(name[0]))


def autotext(
    c: Community, name: str, first: datetime, wait: float, state: MessageState = MessageState.delivered
) -> None:
    """A number's first text and openline's answer, sent ``wait`` seconds later."""
    c.inbound(name, first)
    c.outbound(name, MessageKind.system, state, first + timedelta(milliseconds=5), first + timedelta(seconds=wait))


def build(runtime: Runtime) -> int:
    S, U, P = MemberState.subscribed, MemberState.unsubscribed, MemberState.pending
    delivered = MessageState.delivered
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        sender_id = list_senders(conn, community_id)[0].id
        c = Community(conn, community_id, sender_id)
        # Before the range.
        c.member("D", S, joined=at(15, 9, month=1))
        c.consent("D", P, S, at(15, 9, month=1))
        c.inbound("D", at(15, 8, month=1))
        c.member("H", P)
        c.inbound("H", at(9, month=2))  # the range's first instant
        # 03-01
        for name, hour, wait in (("A", 9, 1), ("B", 11, 10)):
            c.member(name, P)
            autotext(c, name, at(1, hour), wait)
        c.member("G", P)
        autotext(c, "G", at(1, 13), 4, MessageState.undelivered)
        for name, hour in (("A", 10), ("B", 12)):
            c.inbound(name, at(1, hour))
            c.outbound(name, MessageKind.system, delivered, at(1, hour), at(1, hour, second=1))
            conn.execute(
                sa.update(schema.members)
                .where(schema.members.c.id == c.members[name])
                .values(state=S, joined_at=at(1, hour))
            )
            c.consent(name, P, S, at(1, hour))
        # 03-02
        c.inbound("D", at(2, 10))
        # 03-03: a broadcast
        spring = c.broadcast("spring")
        for name in ("A", "B", "D"):
            c.outbound(name, MessageKind.broadcast, delivered, at(3, 9, 55), at(3, 10), spring)
        c.inbound("A", at(3, 11))
        c.click("A", spring, at(3, 12))
        c.click("A", spring, at(3, 12, 1))
        c.click("B", spring, at(4, 9))
        c.inbound("B", at(4, 10, 30))
        # 03-05
        conn.execute(sa.update(schema.members).where(schema.members.c.id == c.members["B"]).values(state=U))
        c.consent("B", S, U, at(5, 9))
        c.member("E", U)
        c.consent("E", None, U, at(5, 20))
        autotext(c, "E", at(5, 20), 5, MessageState.failed)
        # 03-08
        c.member("C", S, joined=at(8, 7))
        c.consent("C", P, S, at(8, 7))
        c.inbound("C", at(8, 7, 30))
        c.outbound("C", MessageKind.system, MessageState.queued, at(8, 7, 30), None)
        # 03-09
        c.member("F", P)
        autotext(c, "F", at(9, 8), 2, MessageState.sent)
        # 03-10 (today)
        news = c.broadcast("news")
        c.outbound("C", MessageKind.broadcast, MessageState.sent, at(10, 8, 59), at(10, 9), news)
        c.inbound("C", at(10, 9, 30))
        # After the range: never counted.
        c.inbound("F", at(11))

        # Another community, busy on the same days.
        other_id = int(
            conn.execute(
                sa.insert(schema.communities)
                .values(slug="other", name="Other", settings={})
                .returning(schema.communities.c.id)
            ).scalar_one()
        )
        other = Community(conn, other_id, add_sender(conn, other_id, "+12025550199", provider="sandbox").id)
        other.member("Z", S, joined=at(1, 9))
        other.consent("Z", P, S, at(1, 9))
        autotext(other, "Z", at(1, 8), 30)
        other.click("Z", other.broadcast("theirs"), at(3, 12))
    return community_id


@pytest.fixture
def community(runtime: Runtime) -> int:
    return build(runtime)


def read(runtime: Runtime, work: Any) -> Any:
    with runtime.db.read_engine.connect() as conn:
        return work(conn)


def test_day_range_is_utc_days_up_to_today() -> None:
    late = datetime(2025, 3, 10, 23, 30, tzinfo=UTC)
    span = day_range(30, late)
    assert (span.first, span.last) == (date(2025, 2, 9), date(2025, 3, 10))
    assert span.start == datetime(2025, 2, 9, tzinfo=UTC) and span.end == datetime(2025, 3, 11, tzinfo=UTC)
    assert len(list(span.dates())) == 30
    # 01:30 in UTC+3 is still the previous UTC day.
    assert day_range(1, datetime(2025, 3, 11, 1, 30, tzinfo=ZoneInfo("Europe/Moscow"))).last == date(2025, 3, 10)


def test_member_growth(runtime: Runtime, community: int) -> None:
    growth = read(runtime, lambda conn: member_growth(conn, community, RANGE))
    assert list(growth) == list(RANGE.dates())
    joined = {d: n for d, (n, _) in growth.items() if n}
    assert joined == {date(2025, 3, 1): 2, date(2025, 3, 8): 1}
    totals = {d: total for d, (_, total) in growth.items()}
    assert totals[date(2025, 2, 9)] == totals[date(2025, 2, 28)] == 1  # D
    assert totals[date(2025, 3, 1)] == totals[date(2025, 3, 4)] == 3  # A, B, D
    assert totals[date(2025, 3, 5)] == totals[date(2025, 3, 7)] == 2  # B left (E never joined)
    assert totals[date(2025, 3, 8)] == totals[date(2025, 3, 10)] == 3  # C


def test_texts_per_day(runtime: Runtime, community: int) -> None:
    inbound = read(runtime, lambda conn: inbound_per_day(conn, community, RANGE))
    assert inbound == {
        date(2025, 2, 9): 1,
        date(2025, 3, 1): 5,
        date(2025, 3, 2): 1,
        date(2025, 3, 3): 1,
        date(2025, 3, 4): 1,
        date(2025, 3, 5): 1,
        date(2025, 3, 8): 1,
        date(2025, 3, 9): 1,
        date(2025, 3, 10): 1,
    }
    outbound = read(runtime, lambda conn: outbound_per_day(conn, community, RANGE))
    assert outbound == {
        date(2025, 3, 1): Outbound(sent=5, delivered=4, undelivered=1),
        date(2025, 3, 3): Outbound(sent=3, delivered=3, broadcast=3, replied=1),
        date(2025, 3, 5): Outbound(sent=1, failed=1),
        date(2025, 3, 9): Outbound(sent=1),
        date(2025, 3, 10): Outbound(sent=1, broadcast=1, replied=1),
    }
    replies = read(runtime, lambda conn: replies_per_day(conn, community, RANGE))
    assert replies == {date(2025, 3, 3): 1, date(2025, 3, 10): 1}


def test_clicks_and_opt_outs(runtime: Runtime, community: int) -> None:
    clicks = read(runtime, lambda conn: clicks_per_day(conn, community, RANGE))
    assert clicks == {date(2025, 3, 3): 2, date(2025, 3, 4): 1}
    opt_outs = read(runtime, lambda conn: opt_outs_per_day(conn, community, RANGE))
    assert opt_outs == {date(2025, 3, 5): 2}


def test_time_to_autotext(runtime: Runtime, community: int) -> None:
    waits = read(runtime, lambda conn: autotext_waits(conn, community, RANGE))
    assert set(waits) == {date(2025, 3, 1), date(2025, 3, 5), date(2025, 3, 9)}  # not C's (queued), not D's
    # Nearest rank of [1, 4, 10]: p50 is the 2nd, p95 the 3rd.
    assert rounded(waits[date(2025, 3, 1)]) == Waits(3, 4.0, 10.0)
    assert rounded(waits[date(2025, 3, 5)]) == Waits(1, 5.0, 5.0)
    assert rounded(waits[date(2025, 3, 9)]) == Waits(1, 2.0, 2.0)


def rounded(waits: Waits) -> Waits:
    # SQLite works the seconds out from Julian days: exact to well under a millisecond.
    return Waits(waits.count, round(waits.p50, 3), round(waits.p95, 3))


def test_percentiles_are_nearest_rank(runtime: Runtime) -> None:
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        c = Community(conn, community_id, list_senders(conn, community_id)[0].id)
        for i in range(20):  # a flood: 20 new numbers within a minute, answered after 1..20 s (shuffled)
            name = chr(ord("A") + i)
            autotext(c, name, at(9, 8, second=i), float((i * 7) % 20 + 1))
    waits = read(runtime, lambda conn: autotext_waits(conn, community_id, RANGE))
    assert {d: rounded(w) for d, w in waits.items()} == {date(2025, 3, 9): Waits(20, 10.0, 19.0)}


def test_report_has_every_day(runtime: Runtime, community: int) -> None:
    days = read(runtime, lambda conn: report(conn, community, RANGE))
    assert [d.day for d in days] == list(RANGE.dates())
    by_day = {d.day: d for d in days}
    first = by_day[date(2025, 3, 1)]
    assert (first.joined, first.subscribed, first.inbound, first.outbound.sent) == (2, 3, 5, 5)
    assert first.delivery_rate == pytest.approx(0.8) and first.reply_rate is None
    assert by_day[date(2025, 3, 3)].reply_rate == pytest.approx(1 / 3)
    assert by_day[date(2025, 3, 5)].delivery_rate == 0.0 and by_day[date(2025, 3, 5)].opt_outs == 2
    assert by_day[date(2025, 3, 9)].delivery_rate is None  # sent, no receipt yet
    quiet = by_day[date(2025, 2, 20)]
    assert (quiet.inbound, quiet.clicks, quiet.waits, quiet.subscribed) == (0, 0, None, 1)


def test_an_empty_community(runtime: Runtime) -> None:
    with runtime.db.read_engine.connect() as conn:
        community_id = get_community(conn).id
        days = report(conn, community_id, DayRange(date(2025, 1, 1), date(2025, 1, 3)))
    assert [(d.day.day, d.subscribed, d.inbound, d.delivery_rate, d.waits) for d in days] == [
        (1, 0, 0, None, None),
        (2, 0, 0, None, None),
        (3, 0, 0, None, None),
    ]


# -- finished days, kept ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "last"),
    [
        (datetime(2025, 3, 10, 0, 0, tzinfo=UTC), date(2025, 3, 8)),  # 03-08's last reply could come until now
        (datetime(2025, 3, 10, 23, 59, tzinfo=UTC), date(2025, 3, 8)),  # 03-09's could still come
        (datetime(2025, 3, 11, 0, 0, tzinfo=UTC), date(2025, 3, 9)),
        (datetime(2025, 3, 11, 0, 59, tzinfo=ZoneInfo("Europe/Rome")), date(2025, 3, 8)),  # 23:59 UTC on 03-10
    ],
)
def test_a_day_is_settled_once_its_replies_had_their_day(now: datetime, last: date) -> None:
    assert settled_until(now) == last


def test_the_cached_report_counts_what_is_not_kept_and_keeps_what_is_finished(runtime: Runtime, community: int) -> None:
    counted = read(runtime, lambda conn: report(conn, community, RANGE))
    first = read(runtime, lambda conn: cached_report(conn, community, RANGE, NOW))
    assert first.days == counted
    # Today (03-10) and yesterday can still change; everything before is kept once counted.
    assert [d.day for d in first.settled] == [d for d in RANGE.dates() if d <= date(2025, 3, 8)]
    with runtime.db.write_engine.begin() as conn:
        remember(conn, community, first.settled)
        remember(conn, community, first.settled[:3])  # kept already (another process): left as it was
    again = read(runtime, lambda conn: cached_report(conn, community, RANGE, NOW))
    assert again.days == counted and again.settled == []


def test_kept_days_are_read_back_and_live_days_counted(runtime: Runtime, community: int) -> None:
    with runtime.db.write_engine.begin() as conn:
        remember(conn, community, cached_report(conn, community, RANGE, NOW).settled)
        c = Community(conn, community, list_senders(conn, community)[0].id)
        c.inbound("D", at(3, 12))  # a settled day: not counted again
        c.inbound("D", at(10, 12))  # today: counted
        c.member("Z", MemberState.subscribed, joined=at(10, 12))
        c.consent("Z", None, MemberState.subscribed, at(10, 12))
    by_day = {d.day: d for d in read(runtime, lambda conn: cached_report(conn, community, RANGE, NOW)).days}
    counted = {d.day: d for d in read(runtime, lambda conn: report(conn, community, RANGE))}
    assert by_day[date(2025, 3, 3)].inbound == counted[date(2025, 3, 3)].inbound - 1
    assert by_day[date(2025, 3, 10)] == counted[date(2025, 3, 10)]
    assert by_day[date(2025, 3, 10)].joined == 1  # Z


def test_forgotten_days_are_counted_again(runtime: Runtime, community: int) -> None:
    with runtime.db.write_engine.begin() as conn:
        remember(conn, community, cached_report(conn, community, RANGE, NOW).settled)
        # An import dates a member's joining back to 03-03: that day and those after it change.
        c = Community(conn, community, list_senders(conn, community)[0].id)
        c.member("Z", MemberState.subscribed, joined=at(3, 12))
        c.consent("Z", None, MemberState.subscribed, at(10, 12))
        forget(conn, community, date(2025, 3, 3))
    again = read(runtime, lambda conn: cached_report(conn, community, RANGE, NOW))
    counted = read(runtime, lambda conn: report(conn, community, RANGE))
    assert again.days == counted
    assert [d.day for d in again.settled] == [date(2025, 3, d) for d in range(3, 9)]
    assert {d.day: d.joined for d in again.days}[date(2025, 3, 3)] == 1


def test_a_range_reaching_past_what_is_kept_counts_the_rest(runtime: Runtime, community: int) -> None:
    short = DayRange(date(2025, 3, 1), date(2025, 3, 10))
    with runtime.db.write_engine.begin() as conn:
        remember(conn, community, cached_report(conn, community, short, NOW).settled)
    longer = read(runtime, lambda conn: cached_report(conn, community, RANGE, NOW))
    assert longer.days == read(runtime, lambda conn: report(conn, community, RANGE))
    assert [d.day for d in longer.settled] == [d for d in RANGE.dates() if d < date(2025, 3, 1)]
