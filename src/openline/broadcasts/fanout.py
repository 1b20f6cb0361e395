"""Fan-out: one queued text per recipient, written a batch per transaction, resumable.

Each batch goes through the segment in member id order from the broadcast's cursor and writes the
texts and the new cursor in one transaction: after a crash the next batch starts where the last
committed one ended, and the unique (broadcast, member) pair means even a repeated batch texts nobody
twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import sqlalchemy as sa

from openline.broadcasts.plan import Planned, Planner, Skipped
from openline.broadcasts.store import get_broadcast
from openline.db import schema
from openline.db.sql import insert_ignoring_duplicates
from openline.dispatcher.checks import DEFAULT_VALIDITY
from openline.states import BroadcastState, Direction, MessageKind, MessageState

__all__ = ["FANOUT_BATCH", "fan_out_batch"]

FANOUT_BATCH = 1000
# A text due within this long of the broadcast's start counts as sent at once, not deferred.
_PROMPT = timedelta(minutes=1)
b = schema.broadcasts.c


def fan_out_batch(
    conn: sa.Connection,
    broadcast_id: int,
    *,
    now: datetime,
    base_url: str,
    link_key: bytes,
    join_key: bytes | None = None,
    limit: int = FANOUT_BATCH,
) -> int:
    """Fan out the next ``limit`` members of a ``fanning_out`` broadcast; returns how many members were
    looked at (fewer than ``limit``: fan-out is complete and the broadcast is ``sending``). The keys are
    as for :class:`Planner`."""
    # Taking the broadcast's row first holds off a pause or cancel until this batch is committed.
    held = conn.execute(
        sa.update(schema.broadcasts)
        .where(b.id == broadcast_id, b.state == BroadcastState.fanning_out)
        .values(updated_at=now)
    ).rowcount
    if held != 1:
        return 0
    broadcast = get_broadcast(conn, broadcast_id)
    planner = Planner(conn, broadcast, now=now, base_url=base_url, link_key=link_key, join_key=join_key)
    if planner.uses_form_link and join_key is None:
        # Refused here, not member by member: links that open nothing must not be sent, and a fan-out
        # that cannot sign them must stop (and be retried), not finish having skipped everyone.
        raise ValueError("{{ form_link }} needs the installation's member-link key to fan out")
    rows = planner.members(conn, broadcast.fanout_cursor, limit)
    plans = planner.plan(conn, rows)
    texts = [_row(broadcast.community_id, broadcast_id, plan, now) for plan in plans if isinstance(plan, Planned)]
    if texts:
        insert = insert_ignoring_duplicates(conn.dialect.name, schema.messages, ("broadcast_id", "member_id"))
        conn.execute(insert, texts)
    tally = dict(broadcast.tally)
    deferred = Counter(tally.get("deferred", {}))
    skipped = Counter(tally.get("skipped", {}))
    for plan in plans:
        if isinstance(plan, Skipped):
            skipped[plan.reason] += 1
        elif plan.deferred_by is not None and plan.not_before > now + _PROMPT:
            deferred[plan.deferred_by] += 1
    tally.update(recipients=int(tally.get("recipients", 0)) + len(texts), deferred=deferred, skipped=skipped)
    values: dict[str, object] = {"tally": tally, "updated_at": now}
    if rows:
        values["fanout_cursor"] = rows[-1].id
    if len(rows) < limit:
        values["state"] = BroadcastState.sending
    conn.execute(sa.update(schema.broadcasts).where(b.id == broadcast_id).values(**values))
    return len(rows)


def _row(community_id: int, broadcast_id: int, plan: Planned, now: datetime) -> dict[str, object]:
    start = max(plan.not_before, now)
    return {
        "community_id": community_id,
        "direction": Direction.outbound,
        "kind": MessageKind.broadcast,
        "state": MessageState.queued,
        "sender_id": plan.sender.id,
        "phone": plan.phone,
        "member_id": plan.member_id,
        "conversation_id": plan.conversation_id,
        "broadcast_id": broadcast_id,
        "variant": plan.variant,
        "body": plan.body,
        "encoding": plan.encoding.value,
        "segments": plan.segments,
        "media": None,
        "provider": plan.sender.provider,
        "attempts": 0,
        "next_attempt_at": plan.not_before if plan.not_before > now else None,
        # A deferred text says what it waits for ("why" and the stats read it).
        "error_reason": f"waits for {plan.deferred_by}" if plan.not_before > now and plan.deferred_by else None,
        # A deferred text stays good for as long after its window opens as any other text.
        "expires_at": start + DEFAULT_VALIDITY,
        "created_at": now,
        "updated_at": now,
    }
