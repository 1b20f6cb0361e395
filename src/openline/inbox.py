"""The owner's views of conversations: the inbox (members) and the pending view (not yet joined)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from openline.db import schema
from openline.states import MemberState

__all__ = ["ConversationView", "View", "list_conversations"]


class View(StrEnum):
    inbox = "inbox"  # subscribed and unsubscribed members: people the owner has a relationship with
    pending = "pending"  # people who texted but have not confirmed: kept apart so they do not bury the inbox


_STATES = {
    View.inbox: (MemberState.subscribed, MemberState.unsubscribed),
    View.pending: (MemberState.new, MemberState.pending),
}


@dataclass(frozen=True)
class ConversationView:
    id: int
    member_id: int
    phone: str
    member_state: MemberState
    unread: int
    last_message_at: datetime


def list_conversations(
    conn: sa.Connection, community_id: int, view: View = View.inbox, *, limit: int = 50
) -> list[ConversationView]:
    """Newest first."""
    c, mem = schema.conversations.c, schema.members.c
    rows = conn.execute(
        sa.select(c.id, c.member_id, mem.phone, mem.state, c.unread, c.last_message_at)
        .join_from(schema.conversations, schema.members, c.member_id == mem.id)
        .where(c.community_id == community_id, c.archived.is_(False), mem.state.in_(_STATES[view]))
        .order_by(c.last_message_at.desc(), c.id.desc())
        .limit(limit)
    )
    return [
        ConversationView(r.id, r.member_id, r.phone, MemberState(r.state), r.unread, r.last_message_at) for r in rows
    ]
