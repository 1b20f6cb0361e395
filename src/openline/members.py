"""Reading a member back: everything openline holds about one person, as JSON-ready data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from openline.db import schema

__all__ = [
    "PROFILE_FIELDS",
    "MemberNotFound",
    "consent_event_dict",
    "find_member_id",
    "member_record",
    "profile_dict",
]

# The profile columns a person (or an import) fills in, in the order exports list them.
PROFILE_FIELDS = ("first_name", "last_name", "email", "city", "postcode", "country", "birthday", "language")

_mem, _ce = schema.members.c, schema.consent_events.c
# Columns of a member that profile_dict renders.
PROFILE_COLUMNS = (
    _mem.id,
    _mem.phone,
    _mem.state,
    *(_mem[name] for name in PROFILE_FIELDS),
    _mem.region,
    _mem.time_zone,
    _mem.time_zones,
    _mem.custom,
    _mem.form_submitted_at,
    _mem.joined_at,
    _mem.created_at,
    _mem.updated_at,
)
EVENT_COLUMNS = (_ce.member_id, _ce.previous_state, _ce.new_state, _ce.source, _ce.evidence, _ce.occurred_at)


class MemberNotFound(LookupError):
    """No such member (in that community)."""


def _json(value: Any) -> Any:
    """Dates as ISO 8601 text, enums as their words; everything else is JSON already."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return str(value)  # a StrEnum becomes its plain word
    return value


def profile_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A member row (with PROFILE_COLUMNS) as JSON-ready data."""
    return {name: _json(row[name]) for name in (c.name for c in PROFILE_COLUMNS)}


def consent_event_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A consent-ledger row (with EVENT_COLUMNS) as JSON-ready data."""
    return {name: _json(row[name]) for name in ("previous_state", "new_state", "source", "evidence", "occurred_at")}


def find_member_id(conn: sa.Connection, community_id: int, phone: str) -> int | None:
    """The id of the member with this E.164 number in this community, if there is one."""
    found = conn.execute(
        sa.select(_mem.id).where(_mem.community_id == community_id, _mem.phone == phone)
    ).scalar_one_or_none()
    return None if found is None else int(found)


def member_record(conn: sa.Connection, member_id: int) -> dict[str, Any]:
    """Everything openline holds about one member: profile (with custom fields and time zones), tags,
    consent ledger with its evidence, conversation, link clicks and every message exchanged with their
    number in their community. Raises MemberNotFound."""
    row = conn.execute(
        sa.select(*PROFILE_COLUMNS, _mem.community_id, schema.communities.c.slug)
        .join_from(schema.members, schema.communities, _mem.community_id == schema.communities.c.id)
        .where(_mem.id == member_id)
    ).first()
    if row is None:
        raise MemberNotFound(f"no member {member_id}")
    record: dict[str, Any] = {"community": row.slug, **profile_dict(row._mapping)}

    tags = schema.member_tags.c
    record["tags"] = sorted(conn.execute(sa.select(tags.tag).where(tags.member_id == member_id)).scalars())
    ledger = conn.execute(sa.select(*EVENT_COLUMNS).where(_ce.member_id == member_id).order_by(_ce.id))
    record["consent"] = [consent_event_dict(e._mapping) for e in ledger]

    conv = schema.conversations.c
    thread = conn.execute(
        sa.select(conv.unread, conv.last_message_at, conv.archived).where(conv.member_id == member_id)
    ).first()
    record["conversation"] = None if thread is None else {k: _json(v) for k, v in thread._mapping.items()}

    clicks = schema.link_clicks.c
    record["link_clicks"] = _rows(
        conn.execute(
            sa.select(clicks.url, clicks.broadcast_id, clicks.clicked_at)
            .where(clicks.member_id == member_id)
            .order_by(clicks.id)
        ).mappings()
    )

    m, s = schema.messages.c, schema.senders.c
    record["messages"] = _rows(
        conn.execute(
            sa.select(
                m.id,
                m.direction,
                m.kind,
                m.state,
                s.address.label("sender"),
                m.body,
                m.media,
                m.segments,
                m.broadcast_id,
                m.created_at,
                m.sent_at,
                m.delivered_at,
                m.error_code,
            )
            .join_from(schema.messages, schema.senders, m.sender_id == s.id)
            .where(m.community_id == row.community_id, m.phone == row.phone)
            .order_by(m.id)
        ).mappings()
    )
    return record


def _rows(rows: Iterable[Mapping[Any, Any]]) -> list[dict[str, Any]]:
    return [{k: _json(v) for k, v in r.items()} for r in rows]
