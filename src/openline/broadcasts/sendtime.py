"""The broadcast rules the dispatcher applies at the moment of sending, a batch at a time.

Fan-out already gave every text a time inside its member's sending window and frequency cap; this is
the second look, because time passes in the queue (a paused sender, a backlog, an owner who changed the
windows): a text that would now arrive outside its window or over the cap waits again, never dropped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from openline.broadcast_settings import BroadcastSettings
from openline.broadcasts.plan import CAP_PERIOD
from openline.db import schema
from openline.dispatcher.checks import Due, Verdict
from openline.engine.config import load_config
from openline.quiet_hours import NeverOpen, closed_reason, frequency_limit, next_open, recipient_for
from openline.states import BroadcastState, MessageKind, MessageState

__all__ = ["broadcast_rules"]

m, b = schema.messages.c, schema.broadcasts.c
_SENT_STATES = (MessageState.sending, MessageState.sent, MessageState.delivered, MessageState.undelivered)


def broadcast_rules(
    conn: sa.Connection, batch: Sequence[Due], members: Mapping[int, Any], now: datetime
) -> dict[int, tuple[Verdict, str, datetime | None]]:
    """Verdicts for the broadcast texts of ``batch`` that may not go now, by message id."""
    dues = [d for d in batch if d.kind is MessageKind.broadcast and d.broadcast_id is not None]
    if not dues:
        return {}
    states = {
        row.id: row.state
        for row in conn.execute(sa.select(b.id, b.state).where(b.id.in_({d.broadcast_id for d in dues})))
    }
    settings: dict[int, BroadcastSettings] = {
        community: load_config(conn, community).broadcasts for community in {d.community_id for d in dues}
    }
    recent = _recent(conn, dues, now)
    verdicts: dict[int, tuple[Verdict, str, datetime | None]] = {}
    for due in dues:
        state = states.get(due.broadcast_id)
        if state is None or state == BroadcastState.cancelled:
            verdicts[due.id] = (Verdict.cancel, "the broadcast was cancelled", None)
            continue
        if state == BroadcastState.paused:
            # Back to the queue as it was; the dispatcher claims nothing of a paused broadcast.
            verdicts[due.id] = (Verdict.later, "the broadcast is paused", None)
            continue
        member = members.get(due.member_id) if due.member_id is not None else None
        if member is None:
            continue  # the general checks already cancelled it
        rules = settings[due.community_id]
        zones = [member.time_zone] if member.time_zone else list(member.time_zones or [])
        recipient = recipient_for(due.phone, member.country, member.postcode, zones)
        owner = rules.owner_windows()
        try:
            opens = next_open(recipient, now, owner)
        except NeverOpen as exc:
            verdicts[due.id] = (Verdict.cancel, f"no sending window ever opens for them: {exc}", None)
            continue
        if opens > now:
            verdicts[due.id] = (
                Verdict.later,
                closed_reason(recipient, now, owner) or "outside the sending window",
                opens,
            )
            continue
        limit = frequency_limit(recipient, rules.frequency_cap)
        sent = recent.get(due.phone, [])
        if limit is not None and len(sent) >= limit:
            frees = sorted(sent)[-limit] + CAP_PERIOD
            verdicts[due.id] = (Verdict.later, f"the frequency cap ({limit} per 24 h)", frees)
    return verdicts


def _recent(conn: sa.Connection, dues: Sequence[Due], now: datetime) -> dict[str, list[datetime]]:
    """Broadcast texts that went (or are going) to these numbers in the last 24 hours."""
    moment = sa.func.coalesce(m.sent_at, m.updated_at)
    found: dict[str, list[datetime]] = defaultdict(list)
    for community in {d.community_id for d in dues}:
        phones = {d.phone for d in dues if d.community_id == community}
        rows = conn.execute(
            sa.select(m.phone, moment).where(
                m.community_id == community,
                m.phone.in_(phones),
                m.kind == MessageKind.broadcast,
                m.state.in_(_SENT_STATES),
                m.id.not_in([d.id for d in dues]),
                moment >= now - CAP_PERIOD,
            )
        )
        for phone, at in rows:
            found[phone].append(at)
    return found
