"""Applying delivery receipts to messages: states only move forward.

Receipts are stored as they arrive (``message_receipts``) and applied here afterwards, so a receipt
that arrives before the dispatcher recorded the send (the provider can be that fast) simply waits
until its message carries the provider's id. ``delivered`` is never overwritten by a late ``sent``,
and the first final word (delivered, undelivered, failed) stands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from openline.db import schema
from openline.states import MessageState

__all__ = ["ORPHAN_AFTER", "apply_receipts"]

# A receipt still matching no message after a day names a text this installation never sent.
ORPHAN_AFTER = timedelta(days=1)

_RANK = {
    MessageState.queued: 0,
    MessageState.sending: 0,
    MessageState.sent: 1,
    MessageState.delivered: 2,
    MessageState.undelivered: 2,
    MessageState.failed: 2,
    MessageState.cancelled: 2,
}

r, m = schema.message_receipts.c, schema.messages.c

_MATCHED = (
    sa.select(r.id, r.status, r.error_code, r.received_at, m.id.label("message_id"), m.state)
    .join_from(
        schema.message_receipts,
        schema.messages,
        sa.and_(m.provider == r.provider, m.provider_message_id == r.provider_message_id),
    )
    .where(r.applied.is_(False))
    .order_by(r.id)
    .limit(sa.bindparam("limit"))
)


def apply_receipts(
    conn: sa.Connection,
    now: datetime,
    *,
    limit: int = 500,
    explain: Callable[[str, str], str] = lambda _provider, code: f"error {code}",
) -> int:
    """Apply up to ``limit`` stored receipts to their messages; returns how many were applied."""
    rows = conn.execute(_MATCHED, {"limit": limit}).all()
    for row in rows:
        current, new = MessageState(row.state), MessageState(row.status)
        if _RANK[new] > _RANK[current]:
            values: dict[str, object] = {"state": new, "updated_at": now}
            if new is MessageState.delivered:
                values["delivered_at"] = row.received_at
            if new in (MessageState.undelivered, MessageState.failed) and row.error_code:
                provider = conn.execute(sa.select(m.provider).where(m.id == row.message_id)).scalar_one()
                values.update(error_code=row.error_code, error_reason=explain(provider, row.error_code))
            conn.execute(sa.update(schema.messages).where(m.id == row.message_id).values(**values))
    if rows:
        conn.execute(sa.update(schema.message_receipts).where(r.id.in_([row.id for row in rows])).values(applied=True))
    # Receipts for texts never sent from here: set aside so they are not looked at again.
    conn.execute(
        sa.update(schema.message_receipts)
        .where(r.applied.is_(False), r.received_at < now - ORPHAN_AFTER)
        .values(applied=True)
    )
    return len(rows)
