"""Sender leases: which worker sends for which sender.

Each sender is owned by one worker at a time, so it can be paced exactly in one place. A worker renews
its leases every few seconds; a lease that expires (its worker died or hung) is taken by another worker,
which first settles what the dead worker left half done (see :func:`settle_abandoned`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from openline.db import schema
from openline.db.sql import insert_ignoring_duplicates
from openline.states import MessageState

__all__ = ["AMBIGUOUS", "acquire", "release", "settle_abandoned"]

leases, m = schema.sender_leases.c, schema.messages.c

# The error code of a text whose fate is unknown: submitted, or maybe submitted, by a worker that then
# stopped before recording the answer. It is never submitted again: a possible duplicate is worse than
# a possible loss for a fan line, and the owner can see and resend these by hand.
AMBIGUOUS = "ambiguous"


def acquire(conn: sa.Connection, owner: str, ttl: timedelta, now: datetime) -> tuple[set[int], set[int]]:
    """Renew ``owner``'s leases and take every sender whose lease is free or expired.

    Returns (all senders ``owner`` now holds, those among them it has just taken).
    """
    expires = now + ttl
    conn.execute(sa.update(schema.sender_leases).where(leases.owner == owner).values(expires_at=expires))
    held_before = set(conn.execute(sa.select(leases.sender_id).where(leases.owner == owner)).scalars())
    # Expired leases: take them over (the row stays; only its owner and expiry change).
    taken = set(
        conn.execute(
            sa.update(schema.sender_leases)
            .where(leases.expires_at < now, leases.owner != owner)
            .values(owner=owner, expires_at=expires)
            .returning(leases.sender_id)
        ).scalars()
    )
    # Senders never leased yet.
    unleased = (
        conn.execute(sa.select(schema.senders.c.id).where(~sa.exists().where(leases.sender_id == schema.senders.c.id)))
        .scalars()
        .all()
    )
    # RETURNING, not rowcount, tells whether the row went in: psycopg reports -1 for an INSERT ... ON
    # CONFLICT DO NOTHING, which would let two workers both believe they took the same sender.
    insert = insert_ignoring_duplicates(conn.dialect.name, schema.sender_leases, ["sender_id"]).returning(
        leases.sender_id
    )
    for sender_id in unleased:
        # Another worker may insert the same lease at the same moment: the first wins, quietly.
        if conn.execute(insert.values(sender_id=sender_id, owner=owner, expires_at=expires)).first() is not None:
            taken.add(sender_id)
    return held_before | taken, taken - held_before


def release(conn: sa.Connection, owner: str) -> None:
    """Give up every lease ``owner`` holds (a clean shutdown), so another worker need not wait."""
    conn.execute(sa.delete(schema.sender_leases).where(leases.owner == owner))


def settle_abandoned(conn: sa.Connection, sender_id: int, now: datetime) -> int:
    """Mark what a previous owner left in ``sending`` as failed and ambiguous; returns how many."""
    result = conn.execute(
        sa.update(schema.messages)
        .where(m.sender_id == sender_id, m.state == MessageState.sending)
        .values(
            state=MessageState.failed,
            error_code=AMBIGUOUS,
            error_reason="the worker sending it stopped before the provider's answer was recorded; "
            "not sent again, so nobody is texted twice",
            updated_at=now,
        )
    )
    return int(result.rowcount or 0)
