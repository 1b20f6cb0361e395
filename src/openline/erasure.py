"""Erasure of a member's personal data, the suppression list it leaves behind, and message retention.

Erasure policy. Erasing a person in a community:

* deletes their ``members`` row, and with it (foreign-key cascades) their tags, consent ledger,
  conversation and link clicks: the profile and everything that says who they are or what they did;
* anonymises every message exchanged with their number in that community, inbound and outbound: the
  phone becomes :data:`ERASED_PHONE`, and the body, media, provider message id, idempotency key and
  error text are cleared. The rows stay, with their direction, kind, state, segment count, sender and
  broadcast, so delivery statistics, daily caps and billing counts do not change after the fact;
* cancels outbound texts that are still queued for them (they are never sent) and marks inbound texts
  the engine has not read yet as processed (there is nothing left to read);
* deletes the delivery receipts of those messages (a provider message id points into the provider's
  logs, where the number is);
* records an HMAC of the number (under the installation's ``suppression`` key) in ``suppressions``,
  so the number is never texted again nor imported back, until the person opts in again by text.

A text already handed to the provider (``sending``) cannot be called back. Nothing here touches
data outside the database (logs, backups, a spool file of texts received while the database was down).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

import sqlalchemy as sa

from openline.db import schema
from openline.db.sql import insert_ignoring_duplicates
from openline.members import MemberNotFound
from openline.states import Direction, MessageState

__all__ = [
    "ERASED_PHONE",
    "MemberNotFound",
    "erase_member",
    "erase_old_message_bodies",
    "erase_phone",
    "is_suppressed",
    "lift_suppression",
    "phone_hash",
]

# What an erased message's number reads as: not a number, so nothing can text or match it.
ERASED_PHONE = "erased"

# A retention pass only blanks texts nobody will read or send again.
_FINAL_STATES = (
    MessageState.processed,
    MessageState.sent,
    MessageState.delivered,
    MessageState.undelivered,
    MessageState.failed,
    MessageState.cancelled,
)


def phone_hash(key: bytes, phone_e164: str) -> str:
    """HMAC-SHA256 of an E.164 number (hex): the same number always gives the same hash under one
    installation, and the hash cannot be reversed by enumerating numbers without the key."""
    return hmac.new(key, phone_e164.encode(), hashlib.sha256).hexdigest()


def is_suppressed(conn: sa.Connection, community_id: int, key: bytes, phone: str) -> bool:
    """Whether this number was erased from this community (and has not opted in again since)."""
    s = schema.suppressions.c
    query = sa.select(s.phone_hash).where(s.community_id == community_id, s.phone_hash == phone_hash(key, phone))
    return conn.execute(query).first() is not None


def lift_suppression(conn: sa.Connection, community_id: int, key: bytes, phone: str) -> bool:
    """Forget that this number was erased (they opted in again by text); True if it was suppressed."""
    s = schema.suppressions.c
    deleted = conn.execute(
        sa.delete(schema.suppressions).where(s.community_id == community_id, s.phone_hash == phone_hash(key, phone))
    )
    return deleted.rowcount > 0


def erase_member(
    conn: sa.Connection, community_id: int, member_id: int, *, key: bytes, now: datetime, reason: str
) -> None:
    """Erase one member (see the module's policy) and suppress their number; raises MemberNotFound."""
    m = schema.members.c
    phone = conn.execute(
        sa.select(m.phone).where(m.id == member_id, m.community_id == community_id)
    ).scalar_one_or_none()
    if phone is None:
        raise MemberNotFound(f"no member {member_id} in community {community_id}")
    _erase(conn, community_id, str(phone), member_id, key=key, now=now, reason=reason)


def erase_phone(conn: sa.Connection, community_id: int, phone: str, *, key: bytes, now: datetime, reason: str) -> bool:
    """Erase whatever the community holds about an E.164 number, member or not, and suppress it.

    Returns whether a member was erased (False: only messages, if any, and the suppression).
    """
    m = schema.members.c
    member_id = conn.execute(
        sa.select(m.id).where(m.community_id == community_id, m.phone == phone)
    ).scalar_one_or_none()
    _erase(conn, community_id, phone, member_id, key=key, now=now, reason=reason)
    return member_id is not None


def _erase(
    conn: sa.Connection,
    community_id: int,
    phone: str,
    member_id: int | None,
    *,
    key: bytes,
    now: datetime,
    reason: str,
) -> None:
    msg = schema.messages.c
    # A member's messages all carry their number (the engine links member_id by it), and
    # ix_messages_phone finds them.
    theirs = sa.and_(msg.community_id == community_id, msg.phone == phone)

    # Receipts first, while the provider message ids still say which ones are theirs.
    provider_ids = sa.select(msg.provider, msg.provider_message_id).where(theirs, msg.provider_message_id.is_not(None))
    r = schema.message_receipts.c
    for provider, provider_message_id in conn.execute(provider_ids).all():
        conn.execute(
            sa.delete(schema.message_receipts).where(
                r.provider == provider, r.provider_message_id == provider_message_id
            )
        )

    anonymous = {
        "phone": ERASED_PHONE,
        "body": "",
        "media": sa.null(),  # SQL NULL, not JSON null
        "member_id": None,
        "conversation_id": None,
        "provider_message_id": None,
        "idempotency_key": None,
        "error_reason": None,
        "updated_at": now,
    }
    conn.execute(
        sa.update(schema.messages)
        .where(theirs, msg.direction == Direction.outbound, msg.state == MessageState.queued)
        .values(state=MessageState.cancelled, error_code="erased", next_attempt_at=None)
    )
    conn.execute(
        sa.update(schema.messages)
        .where(theirs, msg.direction == Direction.inbound, msg.state == MessageState.received)
        .values(state=MessageState.processed)
    )
    conn.execute(sa.update(schema.messages).where(theirs).values(**anonymous))

    if member_id is not None:
        # Tags, ledger, conversation (with the team's notes on it) and clicks go with the row (ON DELETE
        # CASCADE); deleted explicitly too, so erasure does not depend on SQLite's foreign_keys pragma
        # being on for this connection.
        c = schema.conversations.c
        conn.execute(
            sa.delete(schema.conversation_notes).where(
                schema.conversation_notes.c.conversation_id.in_(sa.select(c.id).where(c.member_id == member_id))
            )
        )
        for table in (schema.member_tags, schema.consent_events, schema.conversations, schema.link_clicks):
            conn.execute(sa.delete(table).where(table.c.member_id == member_id))
        conn.execute(sa.delete(schema.members).where(schema.members.c.id == member_id))

    insert = insert_ignoring_duplicates(conn.dialect.name, schema.suppressions, ["community_id", "phone_hash"])
    conn.execute(
        insert.values(community_id=community_id, phone_hash=phone_hash(key, phone), reason=reason[:200], created_at=now)
    )


def erase_old_message_bodies(conn: sa.Connection, older_than: datetime, limit: int) -> int:
    """Blank the body and media of up to ``limit`` finished messages created before ``older_than``.

    Counts, states, segments and timestamps stay (statistics do not change); returns how many were
    blanked, so a caller repeats while it gets ``limit``.
    """
    msg = schema.messages.c
    chosen = (
        sa.select(msg.id)
        .where(
            msg.created_at < older_than,
            msg.state.in_(_FINAL_STATES),
            sa.or_(msg.body != "", msg.media.is_not(None)),
        )
        .order_by(msg.id)
        .limit(limit)
    )
    ids = list(conn.execute(chosen).scalars())
    if not ids:
        return 0
    conn.execute(sa.update(schema.messages).where(msg.id.in_(ids)).values(body="", media=sa.null()))
    return len(ids)
