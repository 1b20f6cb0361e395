"""A community's numbers day by day, for the dashboard's analytics page: member growth, texts in and out,
delivery and reply rates, clicks, opt-outs, and how fast the autotext answers a first text.

Days are UTC days (00:00 to 24:00 UTC), whatever the community's or the reader's time zone: one
definition on both databases, and a day's numbers never change with who looks. Every query groups by
day in SQL and is bounded by the date range; what it needs from outside the range (the consent ledger up
to now for the subscribed total, a number's earlier texts, a reply) it looks up per number or per day.
Rates are None on a day with nothing to divide by.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from openline.db import schema
from openline.db.sql import INBOUND, OUTBOUND, REPLY_HOURS, day_after, insert_ignoring_duplicates, unindexed
from openline.states import Direction, MemberState, MessageKind, MessageState

__all__ = [
    "RANGES",
    "REPLY_HOURS",
    "Day",
    "DayRange",
    "Outbound",
    "Report",
    "Waits",
    "autotext_waits",
    "cached_report",
    "clicks_per_day",
    "day_range",
    "forget",
    "inbound_per_day",
    "member_growth",
    "opt_outs_per_day",
    "outbound_per_day",
    "remember",
    "replies_per_day",
    "report",
    "settled_until",
]

RANGES = (30, 90, 365)

m, mem, ce, lc = schema.messages.c, schema.members.c, schema.consent_events.c, schema.link_clicks.c


# -- the SQL that differs between the databases -------------------------------------------------------


class _utc_day(FunctionElement[str]):
    """The UTC day of a timestamp column as 'YYYY-MM-DD' (timestamps are stored as naive UTC)."""

    type = sa.String()
    inherit_cache = True
    name = "utc_day"


@compiles(_utc_day)
def _utc_day_sqlite(element: _utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps them as 'YYYY-MM-DD HH:MM:SS.ffffff' text: the day is the first ten characters,
    # cheaper than date(), which parses every row.
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


@compiles(_utc_day, "postgresql")
def _utc_day_postgresql(element: _utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM-DD')"


class _seconds_between(FunctionElement[float]):
    """Arguments (later, earlier): the seconds from one timestamp to the other."""

    type = sa.Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(_seconds_between)
def _seconds_between_sqlite(element: _seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


@compiles(_seconds_between, "postgresql")
def _seconds_between_postgresql(element: _seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS DOUBLE PRECISION)"


# -- the range and the results ---------------------------------------------------------------------


@dataclass(frozen=True)
class DayRange:
    """The UTC days from ``first`` to ``last``, both included."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), UTC)

    @property
    def end(self) -> datetime:
        """The instant after the range (midnight UTC after ``last``)."""
        return datetime.combine(self.last + timedelta(days=1), time(), UTC)

    def dates(self) -> Iterator[date]:
        for offset in range((self.last - self.first).days + 1):
            yield self.first + timedelta(days=offset)


def day_range(days: int, now: datetime) -> DayRange:
    """The last ``days`` UTC days, today (still going) included."""
    today = now.astimezone(UTC).date()
    return DayRange(today - timedelta(days=days - 1), today)


@dataclass(frozen=True)
class Outbound:
    """Outbound texts sent on a day (any kind), what became of them, and the broadcast texts among them."""

    sent: int = 0
    delivered: int = 0
    undelivered: int = 0
    failed: int = 0
    broadcast: int = 0
    replied: int = 0  # broadcast texts whose recipient texted back within REPLY_HOURS


@dataclass(frozen=True)
class Waits:
    """First texts of the day's new numbers that got their autotext, and its wait in seconds (nearest rank)."""

    count: int
    p50: float
    p95: float


@dataclass(frozen=True)
class Day:
    day: date
    joined: int = 0  # members subscribed for the first time (members.joined_at)
    subscribed: int = 0  # members subscribed at the end of the day
    inbound: int = 0
    outbound: Outbound = field(default_factory=Outbound)
    clicks: int = 0
    opt_outs: int = 0
    waits: Waits | None = None

    @property
    def delivery_rate(self) -> float | None:
        """Delivered over the texts sent that day with a final receipt (delivered, undelivered, failed)."""
        settled = self.outbound.delivered + self.outbound.undelivered + self.outbound.failed
        return self.outbound.delivered / settled if settled else None

    @property
    def reply_rate(self) -> float | None:
        return self.outbound.replied / self.outbound.broadcast if self.outbound.broadcast else None


def _in(column: sa.ColumnElement[datetime], days: DayRange) -> sa.ColumnElement[bool]:
    # Plain bounds on the column itself (no function around it), so an index on it could serve them.
    return sa.and_(column >= days.start, column < days.end)


def _day(value: str) -> date:
    return date.fromisoformat(value)


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


# -- the series --------------------------------------------------------------------------------------


def member_growth(conn: sa.Connection, community_id: int, days: DayRange) -> dict[date, tuple[int, int]]:
    """Per day: (members subscribed for the first time, members subscribed at the end of the day).

    The total is counted back from today's exact count through the consent ledger (each change into
    ``subscribed`` adds one, each change out of it takes one away), so it needs only the ledger since
    the range began, and today's figure is exact even if old history was imported without its ledger.
    """
    day = _utc_day(mem.joined_at)
    # Results have keys(), so dict() would take them for mappings: built from the rows instead.
    joined: dict[str, int] = {
        d: int(n)
        for d, n in conn.execute(
            sa.select(day, sa.func.count())
            .where(mem.community_id == community_id, _in(mem.joined_at, days))
            .group_by(day)
        )
    }
    now_subscribed = conn.execute(
        sa.select(sa.func.count()).where(mem.community_id == community_id, mem.state == MemberState.subscribed)
    ).scalar_one()
    event_day = _utc_day(ce.occurred_at)
    net = _count_if(ce.new_state == MemberState.subscribed) - _count_if(ce.previous_state == MemberState.subscribed)
    changes: dict[str, int] = {
        d: int(n)
        for d, n in conn.execute(
            sa.select(event_day, net)
            .where(
                ce.community_id == community_id,
                ce.occurred_at >= days.start,
                sa.or_(ce.new_state == MemberState.subscribed, ce.previous_state == MemberState.subscribed),
            )
            .group_by(event_day)
        )
    }
    growth: dict[date, tuple[int, int]] = {}
    total = int(now_subscribed) - sum(n for d, n in changes.items() if _day(d) > days.last)
    for each in reversed(list(days.dates())):
        key = each.isoformat()
        growth[each] = (joined.get(key, 0), total)
        total -= changes.get(key, 0)
    return dict(sorted(growth.items()))


def inbound_per_day(conn: sa.Connection, community_id: int, days: DayRange) -> dict[date, int]:
    """Texts received per day."""
    day = _utc_day(m.created_at)
    rows = conn.execute(
        sa.select(day, sa.func.count())
        .where(m.community_id == community_id, m.direction == INBOUND, _in(m.created_at, days))
        .group_by(day)
    )
    return {_day(d): int(n) for d, n in rows}


def outbound_per_day(conn: sa.Connection, community_id: int, days: DayRange) -> dict[date, Outbound]:
    """Outbound texts by the day they were sent (``sent_at``), what became of them, and the broadcast
    texts among them, with how many were replied to (:func:`replies_per_day`)."""
    day = _utc_day(m.sent_at)
    rows = conn.execute(
        sa.select(
            day,
            sa.func.count(),
            _count_if(m.state == MessageState.delivered),
            _count_if(m.state == MessageState.undelivered),
            _count_if(m.state == MessageState.failed),
            _count_if(m.kind == MessageKind.broadcast),
        )
        .where(m.community_id == community_id, m.direction == OUTBOUND, _in(m.sent_at, days))
        .group_by(day)
    )
    replied = replies_per_day(conn, community_id, days)
    found: dict[date, Outbound] = {}
    for d, sent, delivered, undelivered, failed, broadcast in rows:
        day_ = _day(d)
        found[day_] = Outbound(
            int(sent), int(delivered), int(undelivered), int(failed), int(broadcast), replied.get(day_, 0)
        )
    return found


def replies_per_day(conn: sa.Connection, community_id: int, days: DayRange) -> dict[date, int]:
    """Broadcast texts sent each day whose recipient texted back (any text, STOP included) within
    REPLY_HOURS of it being sent. The last day's figure can still grow for REPLY_HOURS."""
    reply = schema.messages.alias("reply")
    answered = (
        sa.select(reply.c.id)
        .where(
            reply.c.community_id == m.community_id,
            reply.c.phone == m.phone,
            # A reply is stored after the text it answers: only the number's later rows are read.
            reply.c.id > m.id,
            reply.c.direction == Direction.inbound,
            unindexed(reply.c.created_at) >= m.sent_at,
            unindexed(reply.c.created_at) < day_after(m.sent_at),
            # Implied by the two above; lets PostgreSQL hash just the range's texts for a semi-join.
            unindexed(reply.c.created_at) >= days.start,
            unindexed(reply.c.created_at) < days.end + timedelta(hours=REPLY_HOURS),
        )
        .exists()
    )
    day = _utc_day(m.sent_at)
    # EXISTS in WHERE: PostgreSQL picks a hash semi-join over a long range (four times faster over a
    # year than a look-up per text) and look-ups over a short one; SQLite looks up in ix_messages_phone.
    rows = conn.execute(
        sa.select(day, sa.func.count())
        .where(
            m.community_id == community_id,
            m.direction == OUTBOUND,
            m.kind == MessageKind.broadcast,
            _in(m.sent_at, days),
            answered,
        )
        .group_by(day)
    )
    return {_day(d): int(n) for d, n in rows}


def clicks_per_day(conn: sa.Connection, community_id: int, days: DayRange) -> dict[date, int]:
    """Clicks on rewritten links per day (every click, not distinct members)."""
    day = _utc_day(lc.clicked_at)
    rows = conn.execute(
        sa.select(day, sa.func.count()).where(lc.community_id == community_id, _in(lc.clicked_at, days)).group_by(day)
    )
    return {_day(d): int(n) for d, n in rows}


def opt_outs_per_day(conn: sa.Connection, community_id: int, days: DayRange) -> dict[date, int]:
    """Changes to ``unsubscribed`` per day (STOP, and a first text that was STOP), from the consent ledger."""
    day = _utc_day(ce.occurred_at)
    rows = conn.execute(
        sa.select(day, sa.func.count())
        .where(
            ce.community_id == community_id,
            ce.new_state == MemberState.unsubscribed,
            _in(ce.occurred_at, days),
        )
        .group_by(day)
    )
    return {_day(d): int(n) for d, n in rows}


def autotext_waits(conn: sa.Connection, community_id: int, days: DayRange) -> dict[date, Waits]:
    """Per day, how long numbers that texted for the first time that day waited for their autotext.

    The wait runs from the number's first inbound text (``created_at``, when openline stored it) to the
    first outbound ``system`` text to the number after it (``sent_at``); numbers whose answer is not
    sent yet are left out. p50 and p95 are nearest-rank percentiles (the value at rank ceil(p·n)),
    worked out in SQL with window functions, on both databases.
    """
    first = (
        sa.select(m.phone, sa.func.min(m.id).label("first_id"), sa.func.min(m.created_at).label("first_at"))
        .where(m.community_id == community_id, m.direction == INBOUND, _in(m.created_at, days))
        .group_by(m.phone)
        .cte("first_in_range")
    )
    earlier, answer = schema.messages.alias("earlier"), schema.messages.alias("answer")
    # The answer is a scalar subquery (the first by id, LIMIT 1), not a join, which PostgreSQL would run
    # as a hash join over every sent text; it stays a look-up in ix_messages_phone (community_id, phone, id).
    texted_before = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.community_id == community_id,
            earlier.c.phone == first.c.phone,
            earlier.c.id < first.c.first_id,
            earlier.c.direction == Direction.inbound,
        )
        .exists()
    )
    answered_at = (
        sa.select(answer.c.sent_at)
        .where(
            answer.c.community_id == community_id,
            answer.c.phone == first.c.phone,
            answer.c.id > first.c.first_id,
            answer.c.direction == Direction.outbound,
            answer.c.kind == MessageKind.system,
        )
        .order_by(answer.c.id)
        .limit(1)
        .scalar_subquery()
    )
    waits = (
        sa.select(
            _utc_day(first.c.first_at).label("day"),
            _seconds_between(answered_at, first.c.first_at).label("wait"),
        )
        .where(~texted_before)
        .cte("waits")
        # Computed once: inlined, PostgreSQL would look each answer up again for every use of the wait.
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    # Unanswered numbers (a NULL wait) are ranked last and not counted.
    ranked = sa.select(
        waits.c.day,
        waits.c.wait,
        sa.func.row_number().over(partition_by=waits.c.day, order_by=waits.c.wait.asc().nulls_last()).label("position"),
        sa.func.count(waits.c.wait).over(partition_by=waits.c.day).label("n"),
    ).cte("ranked")

    def at(percent: int) -> sa.ColumnElement[float]:
        # ceil(n · percent / 100) in integer arithmetic (SQLite may lack ceil()).
        return sa.func.min(sa.case((ranked.c.position == (ranked.c.n * percent + 99) // 100, ranked.c.wait)))

    rows = conn.execute(
        sa.select(ranked.c.day, sa.func.max(ranked.c.n), at(50), at(95))
        .group_by(ranked.c.day)
        .having(sa.func.max(ranked.c.n) > 0)
    )
    return {_day(d): Waits(int(n), float(p50), float(p95)) for d, n, p50, p95 in rows}


def _no_jit(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        # These queries look costly to PostgreSQL's planner, which then spends longer compiling them with
        # JIT (about a second at a million texts) than running them. For this transaction only.
        conn.exec_driver_sql("SET LOCAL jit = off")


def report(conn: sa.Connection, community_id: int, days: DayRange) -> list[Day]:
    """Every series, one :class:`Day` per day of the range, oldest first (days without data are zeros),
    all counted now. :func:`cached_report` gives the same figures, reading settled days back."""
    _no_jit(conn)
    growth = member_growth(conn, community_id, days)
    inbound = inbound_per_day(conn, community_id, days)
    outbound = outbound_per_day(conn, community_id, days)
    clicks = clicks_per_day(conn, community_id, days)
    opt_outs = opt_outs_per_day(conn, community_id, days)
    waits = autotext_waits(conn, community_id, days)
    return [
        Day(
            day=each,
            joined=growth[each][0],
            subscribed=growth[each][1],
            inbound=inbound.get(each, 0),
            outbound=outbound.get(each, Outbound()),
            clicks=clicks.get(each, 0),
            opt_outs=opt_outs.get(each, 0),
            waits=waits.get(each),
        )
        for each in days.dates()
    ]


# -- finished days, kept ---------------------------------------------------------------------------


def settled_until(now: datetime) -> date:
    """The last UTC day whose figures can no longer change: a reply to its last text had REPLY_HOURS to
    come, and has. (A delivery receipt later than that is not reflected; providers send them within
    minutes, carriers within hours.)"""
    return (now.astimezone(UTC) - timedelta(hours=REPLY_HOURS)).date() - timedelta(days=1)


@dataclass(frozen=True)
class Report:
    days: list[Day]
    settled: list[Day]  # settled days counted for this report, not kept yet: for :func:`remember`


def cached_report(conn: sa.Connection, community_id: int, days: DayRange, now: datetime) -> Report:
    """:func:`report`'s figures, with settled days read from analytics_days where they were kept.

    Only the days not kept (on a first visit, all; after that today and yesterday) are counted, in one
    span; member growth too, counted back from today's exact total as :func:`member_growth` does.
    """
    a = schema.analytics_days.c
    kept: dict[date, Any] = {
        day: figures
        for day, figures in conn.execute(
            sa.select(a.day, a.figures).where(a.community_id == community_id, a.day.between(days.first, days.last))
        )
    }
    missing = [each for each in days.dates() if each not in kept]
    counted = report(conn, community_id, DayRange(missing[0], missing[-1])) if missing else []
    by_day = {day.day: day for day in counted}
    last = settled_until(now)
    return Report(
        [by_day[each] if each in by_day else _from_figures(each, kept[each]) for each in days.dates()],
        [by_day[each] for each in missing if each <= last],
    )


def forget(conn: sa.Connection, community_id: int, since: date) -> None:
    """Drop the kept figures of ``since`` and later: something changed them after the fact (an import
    dating members' joining back). They are counted again at the next visit."""
    a = schema.analytics_days.c
    conn.execute(sa.delete(schema.analytics_days).where(a.community_id == community_id, a.day >= since))


def remember(conn: sa.Connection, community_id: int, settled: list[Day]) -> None:
    """Keep finished days' figures (a day kept already, by another process meanwhile, stays as it is)."""
    if not settled:
        return
    table = schema.analytics_days
    conn.execute(
        insert_ignoring_duplicates(conn.dialect.name, table, ["community_id", "day"]),
        [{"community_id": community_id, "day": d.day, "figures": _figures(d)} for d in settled],
    )


def _figures(day: Day) -> dict[str, Any]:
    out = day.outbound
    waits = None if day.waits is None else [day.waits.count, day.waits.p50, day.waits.p95]
    return {
        "joined": day.joined,
        "subscribed": day.subscribed,
        "inbound": day.inbound,
        "outbound": [out.sent, out.delivered, out.undelivered, out.failed, out.broadcast, out.replied],
        "clicks": day.clicks,
        "opt_outs": day.opt_outs,
        "waits": waits,
    }


def _from_figures(day: date, figures: dict[str, Any]) -> Day:
    waits = figures["waits"]
    return Day(
        day=day,
        joined=figures["joined"],
        subscribed=figures["subscribed"],
        inbound=figures["inbound"],
        outbound=Outbound(*figures["outbound"]),
        clicks=figures["clicks"],
        opt_outs=figures["opt_outs"],
        waits=None if waits is None else Waits(int(waits[0]), float(waits[1]), float(waits[2])),
    )
