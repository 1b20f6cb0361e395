"""Queueing a text for the dispatcher, and reading back what became of it.

``queue_text`` is what `openline send` and ``POST /api/v1/messages`` call: it checks the number, the
sender and the member's consent, and writes one ``queued`` row; the dispatcher does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from openline.db import schema
from openline.encoding import Encoding, count_segments, smart_encode
from openline.erasure import is_suppressed
from openline.phone import to_e164
from openline.states import Direction, MemberState, MessageKind, MessageState

__all__ = [
    "MAX_BODY",
    "MessageResource",
    "OptedOut",
    "ReusedIdempotencyKey",
    "get_message",
    "queue_text",
]

# Twilio's limit for one message body (it splits it into segments); the others are similar.
MAX_BODY = 1600
MAX_MEDIA = 10

m, mem, snd = schema.messages.c, schema.members.c, schema.senders.c


class OptedOut(ValueError):
    """The number opted out (or was blocked): nothing may be sent to it."""


class ReusedIdempotencyKey(ValueError):
    """An Idempotency-Key already used for a different text."""


@dataclass(frozen=True)
class MessageResource:
    id: int
    direction: str
    to: str
    sender: str
    body: str
    media_urls: list[str]
    status: str
    encoding: str  # "GSM-7" or "UCS-2"
    segments: int | None
    error_code: str | None
    reason: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None


_ENCODING_NAMES = {Encoding.gsm7.value: "GSM-7", Encoding.ucs2.value: "UCS-2"}

_RESOURCE = sa.select(
    m.id,
    m.direction,
    m.phone,
    snd.address,
    m.body,
    m.media,
    m.state,
    m.encoding,
    m.segments,
    m.error_code,
    m.error_reason,
    m.created_at,
    m.sent_at,
    m.delivered_at,
    m.idempotency_key,
).join_from(schema.messages, schema.senders, m.sender_id == snd.id)


def _resource(row: Any) -> MessageResource:
    values = row._mapping
    return MessageResource(
        id=int(values["id"]),
        direction=str(values["direction"]),
        to=str(values["phone"]),
        sender=str(values["address"]),
        body=str(values["body"]),
        media_urls=[str(item["url"]) for item in values["media"] or ()],
        status=str(values["state"]),
        encoding=_ENCODING_NAMES.get(str(values["encoding"]), "GSM-7"),
        segments=values["segments"],
        error_code=values["error_code"],
        reason=values["error_reason"],
        created_at=values["created_at"],
        sent_at=values["sent_at"],
        delivered_at=values["delivered_at"],
    )


def get_message(conn: sa.Connection, community_id: int, message_id: int) -> MessageResource | None:
    row = conn.execute(_RESOURCE.where(m.id == message_id, m.community_id == community_id)).one_or_none()
    return None if row is None else _resource(row)


def queue_text(
    conn: sa.Connection,
    community_id: int,
    to: str,
    body: str,
    *,
    suppression_key: bytes,
    sender: str | None = None,
    media_urls: tuple[str, ...] = (),
    idempotency_key: str | None = None,
    kind: MessageKind = MessageKind.reply,
    author_id: int | None = None,
) -> tuple[MessageResource, bool]:
    """Queue one text from the owner's side (or openline's own, with ``kind=system``); returns (the
    message, whether it was created now).

    Raises ValueError subclasses with a clear message: an invalid number or sender, an empty or
    too-long body, a number that opted out or erased their data (``suppression_key`` hashes numbers
    as openline.erasure does), an Idempotency-Key reused for a different text.
    """
    phone = to_e164(to)
    if idempotency_key is not None:
        existing = conn.execute(
            _RESOURCE.where(m.community_id == community_id, m.idempotency_key == idempotency_key)
        ).one_or_none()
        if existing is not None:
            found = _resource(existing)
            # (The stored body may be the smart-encoded form of the one asked for.)
            same_body = found.body in (body, smart_encode(body))
            if (found.to, found.media_urls) != (phone, list(media_urls)) or not same_body:
                raise ReusedIdempotencyKey("this Idempotency-Key was already used for a different text")
            return found, False
    if not body.strip() and not media_urls:
        raise ValueError("a text needs a body or at least one media URL")
    if len(body) > MAX_BODY:
        raise ValueError(f"the body is {len(body)} characters; at most {MAX_BODY} can be sent as one text")
    if len(media_urls) > MAX_MEDIA:
        raise ValueError(f"at most {MAX_MEDIA} media URLs per text")
    for url in media_urls:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"media URL {url!r} is not an http(s) URL")
    member = conn.execute(
        sa.select(mem.id, mem.state).where(mem.community_id == community_id, mem.phone == phone)
    ).one_or_none()
    if member is not None and member.state in (MemberState.unsubscribed, MemberState.blocked):
        raise OptedOut(f"{phone} has opted out (or was blocked); nothing can be sent to it")
    if member is None and is_suppressed(conn, community_id, suppression_key, phone):
        raise OptedOut(f"{phone} erased their data and is not texted unless they opt in again")
    sender_id = _choose_sender(conn, community_id, sender, member.id if member is not None else None)
    conversation = (
        conn.execute(
            sa.select(schema.conversations.c.id).where(schema.conversations.c.member_id == member.id)
        ).scalar_one_or_none()
        if member is not None
        else None
    )
    provider, smart = conn.execute(sa.select(snd.provider, snd.smart_encoding).where(snd.id == sender_id)).one()
    if smart:
        body = smart_encode(body)
    count = count_segments(body)
    now = schema.utcnow()
    message_id = conn.execute(
        sa.insert(schema.messages)
        .values(
            community_id=community_id,
            direction=Direction.outbound,
            kind=kind,
            author_id=author_id,
            state=MessageState.queued,
            sender_id=sender_id,
            phone=phone,
            member_id=member.id if member is not None else None,
            conversation_id=conversation,
            body=body,
            media=[{"url": url, "content_type": None} for url in media_urls] or None,
            encoding=count.encoding.value,
            segments=count.segments,
            provider=provider,
            attempts=0,
            idempotency_key=idempotency_key,
            created_at=now,
            updated_at=now,
        )
        .returning(m.id)
    ).scalar_one()
    created = get_message(conn, community_id, int(message_id))
    assert created is not None
    return created, True


def _choose_sender(conn: sa.Connection, community_id: int, address: str | None, member_id: int | None) -> int:
    """The named sender; else the one the member last wrote to (sticky); else the community's first."""
    if address is not None:
        sender_id = conn.execute(
            sa.select(snd.id).where(snd.community_id == community_id, snd.address == address.strip())
        ).scalar_one_or_none()
        if sender_id is None:
            raise ValueError(f"{address} is not one of this community's senders (see `openline senders list`)")
        return int(sender_id)
    if member_id is not None:
        sticky = conn.execute(
            sa.select(schema.conversations.c.sender_id).where(schema.conversations.c.member_id == member_id)
        ).scalar_one_or_none()
        if sticky is not None:
            return int(sticky)
    first = conn.execute(
        sa.select(snd.id).where(snd.community_id == community_id).order_by(snd.id).limit(1)
    ).scalar_one_or_none()
    if first is None:
        raise ValueError("this community has no sender yet (add one with `openline senders add`)")
    return int(first)
