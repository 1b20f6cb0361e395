"""What became of a broadcast, and of any one member in it."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from openline.broadcasts.plan import Planner, Skipped
from openline.broadcasts.store import Broadcast
from openline.db import schema
from openline.db.sql import INBOUND, REPLY_HOURS, day_after, unindexed
from openline.phone import to_e164
from openline.states import BroadcastState, MemberState, MessageState

__all__ = ["BroadcastStats", "broadcast_stats", "why"]

m, mem = schema.messages.c, schema.members.c


@dataclass
class BroadcastStats:
    name: str
    state: str
    recipients: int
    skipped: dict[str, int]
    deferred_at_fanout: dict[str, int]
    texts: Counter[str] = field(default_factory=Counter)  # by message state; "deferred" split from "queued"
    failed: Counter[str] = field(default_factory=Counter)  # failed, undelivered and cancelled, by reason
    segments_sent: int = 0
    clicks: int = 0
    clicked: int = 0  # distinct members
    replied: int = 0  # distinct members who texted back within 24 h
    opted_out: int = 0  # distinct members who opted out within 24 h
    variants: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "recipients": self.recipients,
            "skipped": self.skipped,
            "deferred_at_fanout": self.deferred_at_fanout,
            "texts": dict(self.texts),
            "failed_by_reason": dict(self.failed),
            "segments_sent": self.segments_sent,
            "clicks": {"total": self.clicks, "unique": self.clicked},
            "replies": self.replied,
            "opt_outs_24h": self.opted_out,
            "variants": self.variants,
        }


def broadcast_stats(conn: sa.Connection, broadcast: Broadcast, now: datetime) -> BroadcastStats:
    tally = broadcast.tally
    stats = BroadcastStats(
        name=broadcast.name,
        state=broadcast.state.value,
        recipients=int(tally.get("recipients", 0)),
        skipped=dict(tally.get("skipped", {})),
        deferred_at_fanout=dict(tally.get("deferred", {})),
    )
    later = sa.and_(m.state == MessageState.queued, m.next_attempt_at > now)
    variants: dict[str, Counter[str]] = defaultdict(Counter)
    rows = conn.execute(
        sa.select(m.state, later.label("later"), m.variant, sa.func.count(), sa.func.sum(m.segments))
        .where(m.broadcast_id == broadcast.id)
        .group_by(m.state, later, m.variant)
    )
    for state, is_later, variant, n, segments in rows:
        word = "deferred" if is_later else str(state)
        stats.texts[word] += n
        variants[variant or "A"][word] += n
        if state in (MessageState.sent, MessageState.delivered, MessageState.undelivered):
            stats.segments_sent += int(segments or 0)
    for code, reason, n in conn.execute(
        sa.select(m.error_code, m.error_reason, sa.func.count())
        .where(
            m.broadcast_id == broadcast.id,
            m.state.in_((MessageState.failed, MessageState.undelivered, MessageState.cancelled)),
        )
        .group_by(m.error_code, m.error_reason)
    ):
        stats.failed[f"{reason or 'no reason given'}" + (f" ({code})" if code else "")] += n
    c = schema.link_clicks.c
    clicks = (
        sa.select(m.variant, sa.func.count(), sa.func.count(sa.distinct(c.member_id)))
        .select_from(
            schema.link_clicks.join(
                schema.messages, sa.and_(m.broadcast_id == c.broadcast_id, m.member_id == c.member_id)
            )
        )
        .where(c.broadcast_id == broadcast.id)
        .group_by(m.variant)
    )
    for variant, total, unique in conn.execute(clicks):
        stats.clicks += total
        stats.clicked += unique
        variants[variant or "A"]["clicked"] += unique
    if broadcast.started_at is not None:
        # Nothing of it was sent before it started or after it finished: the replies and opt-outs that
        # can count lie in that span plus a day, which lets both counts read only that span's rows.
        span = (broadcast.started_at, (broadcast.finished_at or now) + timedelta(hours=REPLY_HOURS))
        stats.replied = _replied(conn, broadcast, span)
        stats.opted_out = _opted_out(conn, broadcast, span)
    stats.variants = {name: dict(counts) for name, counts in sorted(variants.items())}
    return stats


def _replied(conn: sa.Connection, broadcast: Broadcast, span: tuple[datetime, datetime]) -> int:
    sent = schema.messages.alias("sent")
    inbound = schema.messages.alias("inbound")
    return int(
        conn.execute(
            sa.select(sa.func.count(sa.distinct(sent.c.member_id))).where(
                sent.c.broadcast_id == broadcast.id,
                sent.c.sent_at.is_not(None),
                sa.select(inbound.c.id)
                .where(
                    # The community as a constant, the direction as a literal and the span: PostgreSQL
                    # hashes the span's inbound texts from ix_messages_inbound_day once. SQLite looks
                    # each number up in ix_messages_phone instead (see unindexed).
                    inbound.c.community_id == broadcast.community_id,
                    inbound.c.direction == INBOUND,
                    unindexed(inbound.c.created_at) >= span[0],
                    unindexed(inbound.c.created_at) < span[1],
                    inbound.c.phone == sent.c.phone,
                    # A reply is stored after the text it answers: only the number's later rows are read.
                    inbound.c.id > sent.c.id,
                    unindexed(inbound.c.created_at) >= sent.c.sent_at,
                    unindexed(inbound.c.created_at) < day_after(sent.c.sent_at),
                )
                .exists(),
            )
        ).scalar_one()
    )


def _opted_out(conn: sa.Connection, broadcast: Broadcast, span: tuple[datetime, datetime]) -> int:
    e = schema.consent_events.c
    return int(
        conn.execute(
            sa.select(sa.func.count(sa.distinct(m.member_id))).where(
                m.broadcast_id == broadcast.id,
                m.sent_at.is_not(None),
                sa.select(e.id)
                .where(
                    # As for replies: PostgreSQL hashes the span's ledger from ix_consent_events_day once;
                    # SQLite looks each member up in ix_consent_events_member.
                    unindexed(e.community_id) == broadcast.community_id,
                    unindexed(e.occurred_at) >= span[0],
                    unindexed(e.occurred_at) < span[1],
                    e.member_id == m.member_id,
                    e.new_state == MemberState.unsubscribed,
                    unindexed(e.occurred_at) >= m.sent_at,
                    unindexed(e.occurred_at) < day_after(m.sent_at),
                )
                .exists(),
            )
        ).scalar_one()
    )


def why(
    conn: sa.Connection,
    broadcast: Broadcast,
    phone: str,
    *,
    now: datetime,
    base_url: str,
    link_key: bytes,
    join_key: bytes | None = None,
) -> str:
    """In one sentence: what the broadcast did (or will do) for the member with this number, and why
    (the keys as for :class:`Planner`)."""
    number = to_e164(phone)
    member = conn.execute(
        sa.select(mem.id, mem.time_zone, mem.time_zones).where(
            mem.community_id == broadcast.community_id, mem.phone == number
        )
    ).one_or_none()
    if member is None:
        return f"{number} is not a member (never texted, or erased their data)"
    text = conn.execute(
        sa.select(m.state, m.next_attempt_at, m.sent_at, m.delivered_at, m.error_code, m.error_reason).where(
            m.broadcast_id == broadcast.id, m.member_id == member.id
        )
    ).one_or_none()
    if text is not None:
        return _text_story(text, member.time_zone or (member.time_zones or ["UTC"])[0], now)
    if broadcast.state is BroadcastState.draft:
        prefix = "not started yet; if it started now: "
    elif broadcast.state in (BroadcastState.scheduled, BroadcastState.fanning_out, BroadcastState.paused) and (
        broadcast.fanout_cursor is None or broadcast.fanout_cursor < member.id
    ):
        prefix = "fan-out has not reached them yet; as of now: "
    else:
        prefix = "no text was written for them at fan-out; as of now: "
    planner = Planner(conn, broadcast, now=now, base_url=base_url, link_key=link_key, join_key=join_key)
    rows = [row for row in planner.members(conn, member.id - 1, 1) if row.id == member.id]
    if not rows:
        return prefix + "they are not in the broadcast's segment"
    plan = planner.plan(conn, rows)[0]
    if isinstance(plan, Skipped):
        return prefix + f"skipped: {plan.reason}"
    if plan.deferred_by is not None and plan.not_before > now:
        local = plan.not_before.astimezone(ZoneInfo(plan.zone))
        return prefix + f"would wait for {plan.deferred_by}, until {local:%Y-%m-%d %H:%M} {plan.zone}"
    return prefix + f"would be sent ({plan.segments} segment(s), variant {plan.variant})"


def _text_story(text: Any, zone: str, now: datetime) -> str:
    state = MessageState(text.state)
    if state is MessageState.queued and text.next_attempt_at is not None and text.next_attempt_at > now:
        local = text.next_attempt_at.astimezone(ZoneInfo(zone))
        reason = text.error_reason or "a retry"
        return f"deferred until {local:%Y-%m-%d %H:%M} {zone}: {reason}"
    if state in (MessageState.queued, MessageState.sending):
        return f"{state.value}: it goes out at the sender's pace"
    if state in (MessageState.sent, MessageState.delivered):
        story = f"sent {text.sent_at:%Y-%m-%d %H:%M} UTC" if text.sent_at else "sent"
        if text.delivered_at is not None:
            story += f", delivered {text.delivered_at:%Y-%m-%d %H:%M} UTC"
        return story
    code = f" ({text.error_code})" if text.error_code else ""
    return f"{state.value}: {text.error_reason or 'no reason given'}{code}"
