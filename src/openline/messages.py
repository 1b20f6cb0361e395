"""Reading texts back: a phone number's thread, newest messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from openline.db import schema
from openline.states import Direction, MessageKind, MessageState

__all__ = ["MessageView", "recent_messages"]


@dataclass(frozen=True)
class MessageView:
    id: int
    direction: Direction
    kind: MessageKind
    state: MessageState
    phone: str
    sender: str
    body: str
    media: list[dict[str, str | None]] | None
    created_at: datetime


def recent_messages(
    conn: sa.Connection,
    community_id: int,
    *,
    phone: str | None = None,
    sender_id: int | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[MessageView]:
    """Up to ``limit`` messages of a community, oldest first, newer than ``after_id``.

    With ``phone`` (and ``sender_id``), one person's thread.
    """
    m, s = schema.messages.c, schema.senders.c
    query = (
        sa.select(m.id, m.direction, m.kind, m.state, m.phone, s.address, m.body, m.media, m.created_at)
        .join_from(schema.messages, schema.senders, m.sender_id == s.id)
        .where(m.community_id == community_id, m.id > after_id)
        .order_by(m.id.desc())
        .limit(limit)
    )
    if phone is not None:
        query = query.where(m.phone == phone)
    if sender_id is not None:
        query = query.where(m.sender_id == sender_id)
    return [MessageView(*row) for row in reversed(conn.execute(query).all())]
