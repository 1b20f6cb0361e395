"""What the database says after a flood: texts lost or stored twice, and how long each person waited.

Read-only. A flood's inbound texts are found by their message-id prefix (one per run), its people by their
numbers, their autotexts as the first text openline queued to each of them on the flooded sender after the
flood began (the engine answers a new number's first text with the autotext before anything else).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from openline.db import Database, schema
from openline.states import Direction, MessageKind, MessageState

__all__ = [
    "AutotextTimes",
    "Pending",
    "SenderFacts",
    "Spread",
    "StoredTexts",
    "autotext_times",
    "find_sender",
    "pending",
    "percentile",
    "settle",
    "stored_texts",
]

m = schema.messages.c
_PENDING_OUT = (MessageState.queued, MessageState.sending)


@dataclass(frozen=True)
class SenderFacts:
    id: int
    address: str
    provider: str
    mps: float
    daily_cap: int | None


@dataclass(frozen=True)
class StoredTexts:
    acknowledged: int  # distinct texts with at least one 2xx answer
    stored: int  # distinct texts of this run in the database
    lost: int  # acknowledged but not stored
    duplicated: int  # stored more than once
    unacknowledged_stored: int  # never acknowledged, yet stored (the answer was lost, not the text)
    waiting_for_engine: int  # stored, not yet processed by the conversation engine


@dataclass(frozen=True)
class Spread:
    """Seconds, over people: median, 95th percentile, longest."""

    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> Spread | None:
        ordered = sorted(seconds)
        return cls(percentile(ordered, 0.50), percentile(ordered, 0.95), ordered[-1]) if ordered else None


@dataclass(frozen=True)
class AutotextTimes:
    people: int
    answered: int  # people with an autotext row
    sent: int  # of those, how many the provider had accepted
    dropped: int  # cancelled or failed without leaving (e.g. the person texted STOP before it went)
    none_yet: int  # people without an autotext row yet
    more_than_once: int  # people who got the autotext text twice or more
    queued: Spread | None  # first text -> autotext queued (the conversation engine's part)
    sent_after: Spread | None  # first text -> autotext accepted by the provider, over those sent
    waiting: Spread | None  # first text -> now, over autotexts still queued: how long they have waited so far
    segments: float | None  # the autotexts' average segments


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def find_sender(db: Database, provider: str, address: str) -> SenderFacts | None:
    s = schema.senders.c
    with db.read_engine.connect() as conn:
        row = conn.execute(
            sa.select(s.id, s.address, s.provider, s.mps, s.daily_cap).where(
                s.provider == provider, s.address == address
            )
        ).first()
    return None if row is None else SenderFacts(row.id, row.address, row.provider, row.mps, row.daily_cap)


def _run_inbound(provider: str, id_prefix: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        m.provider == provider, m.direction == Direction.inbound, m.provider_message_id.like(f"{id_prefix}%")
    )


def stored_texts(db: Database, provider: str, id_prefix: str, acknowledged: Collection[str]) -> StoredTexts:
    with db.read_engine.connect() as conn:
        rows = conn.execute(sa.select(m.provider_message_id, m.state).where(_run_inbound(provider, id_prefix))).all()
    seen: dict[str, int] = {}
    waiting = 0
    for row in rows:
        seen[row.provider_message_id] = seen.get(row.provider_message_id, 0) + 1
        waiting += row.state == MessageState.received
    return StoredTexts(
        acknowledged=len(acknowledged),
        stored=len(seen),
        lost=sum(1 for message_id in acknowledged if message_id not in seen),
        duplicated=sum(1 for count in seen.values() if count > 1),
        unacknowledged_stored=sum(1 for message_id in seen if message_id not in acknowledged),
        waiting_for_engine=waiting,
    )


def autotext_times(
    db: Database, provider: str, id_prefix: str, sender_id: int, numbers: Iterable[str], since: datetime
) -> AutotextTimes:
    """For each of ``numbers``: their first text of this run → the first text openline queued to them on the
    sender since ``since``: when it was queued, and when it was sent (or how long it has waited so far)."""
    people = set(numbers)
    with db.read_engine.connect() as conn:
        first_in: dict[str, datetime] = {
            row.phone: row.first
            for row in conn.execute(
                sa.select(m.phone, sa.func.min(m.created_at).label("first"))
                .where(_run_inbound(provider, id_prefix))
                .group_by(m.phone)
            )
        }
        replies = conn.execute(
            sa.select(m.phone, m.body, m.state, m.created_at, m.sent_at, m.segments)
            .where(
                m.direction == Direction.outbound,
                m.kind == MessageKind.system,
                m.sender_id == sender_id,
                m.created_at >= since,
            )
            .order_by(m.id)
        ).all()
    autotext: dict[str, Any] = {}
    repeats: dict[str, int] = {}
    for row in replies:
        if row.phone not in people:
            continue
        first = autotext.setdefault(row.phone, row)
        if row.body == first.body:
            repeats[row.phone] = repeats.get(row.phone, 0) + 1
    now = datetime.now(UTC)
    queued, sent, waiting, dropped = [], [], [], 0
    for phone, row in autotext.items():
        start = first_in.get(phone)
        if start is None:
            continue
        queued.append((row.created_at - start).total_seconds())
        if row.sent_at is not None:
            sent.append((row.sent_at - start).total_seconds())
        elif row.state in _PENDING_OUT:
            waiting.append((now - start).total_seconds())
        else:
            dropped += 1
    segments = [row.segments for row in autotext.values() if row.segments]
    return AutotextTimes(
        people=len(people),
        answered=len(autotext),
        sent=len(sent),
        dropped=dropped,
        none_yet=len(people) - len(autotext),
        more_than_once=sum(1 for count in repeats.values() if count > 1),
        queued=Spread.of(queued),
        sent_after=Spread.of(sent),
        waiting=Spread.of(waiting),
        segments=sum(segments) / len(segments) if segments else None,
    )


@dataclass(frozen=True)
class Pending:
    texts: int  # texts of this run the conversation engine has not processed
    replies: int  # replies on the sender the dispatcher has not sent (autotexts, confirmations, ...)
    reply_segments: int  # their segments: what the sender's throughput still has to let out


def pending(db: Database, provider: str, id_prefix: str, sender_id: int | None, since: datetime) -> Pending:
    with db.read_engine.connect() as conn:
        texts = conn.execute(
            sa.select(sa.func.count()).where(_run_inbound(provider, id_prefix), m.state == MessageState.received)
        ).scalar_one()
        replies, segments = 0, 0
        if sender_id is not None:
            replies, segments = conn.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.func.coalesce(m.segments, 1)), 0)).where(
                    m.direction == Direction.outbound,
                    m.sender_id == sender_id,
                    m.created_at >= since,
                    m.state.in_(_PENDING_OUT),
                )
            ).one()
    return Pending(int(texts), int(replies), int(segments))


async def settle(
    db: Database, provider: str, id_prefix: str, sender_id: int | None, since: datetime, within: float
) -> tuple[Pending, float]:
    """Wait (at most ``within`` s) until the engine has processed this run's texts and the dispatcher has sent
    the replies; returns what is still pending and the seconds waited. Reads run in a thread: the event loop
    stays free."""
    started = time.monotonic()
    while True:
        left = await asyncio.to_thread(pending, db, provider, id_prefix, sender_id, since)
        waited = time.monotonic() - started
        if (left.texts == 0 and left.replies == 0) or waited >= within:
            return left, waited
        await asyncio.sleep(min(0.5, max(0.0, within - waited)))
