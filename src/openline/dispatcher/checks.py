"""The last look before a text leaves: is it still wanted, still valid, still allowed now?"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from openline.db import schema
from openline.states import MemberState, MessageKind

__all__ = ["DEFAULT_VALIDITY", "Due", "SendRules", "Verdict", "final_check", "final_checks", "no_rules"]

# Twilio fails what waits in its queue longer than 10 hours by default; a text still unsent after that
# long (a paused sender, an outage) is news nobody wants any more.
DEFAULT_VALIDITY = timedelta(hours=10)


@dataclass(frozen=True)
class Due:
    """A claimed outbound text, as the dispatcher sees it."""

    id: int
    community_id: int
    sender_id: int
    phone: str
    member_id: int | None
    kind: MessageKind
    body: str
    segments: int
    media: list[dict[str, Any]] | None
    attempts: int
    created_at: datetime
    expires_at: datetime | None
    broadcast_id: int | None = None


class Verdict(StrEnum):
    send = "send"
    cancel = "cancel"  # no longer wanted: the member opted out or was blocked
    expire = "expire"  # too late
    later = "later"  # allowed, but not now (sending window)


# Rules that may hold back a text the general checks let through (openline.broadcasts.sendtime applies
# sending windows, frequency caps and the broadcast's own state): verdicts by message id, for a batch.
SendRules = Callable[
    [sa.Connection, Sequence[Due], Mapping[int, Any], datetime], dict[int, tuple[Verdict, str, datetime | None]]
]


def no_rules(
    _conn: sa.Connection, _batch: Sequence[Due], _members: Mapping[int, Any], _now: datetime
) -> dict[int, tuple[Verdict, str, datetime | None]]:
    return {}


_MEMBERS = sa.select(
    schema.members.c.id,
    schema.members.c.state,
    # What sending windows need to know: where the member is.
    schema.members.c.country,
    schema.members.c.postcode,
    schema.members.c.time_zone,
    schema.members.c.time_zones,
    sa.select(sa.func.max(schema.consent_events.c.occurred_at))
    .where(
        schema.consent_events.c.member_id == schema.members.c.id,
        schema.consent_events.c.new_state == MemberState.unsubscribed,
    )
    .scalar_subquery()
    .label("unsubscribed_at"),
).where(schema.members.c.id.in_(sa.bindparam("members", expanding=True)))


def final_checks(
    conn: sa.Connection, batch: Sequence[Due], now: datetime, rules: SendRules = no_rules
) -> list[tuple[Verdict, str | None, datetime | None]]:
    """(verdict, reason, not before) for each text of ``batch``, read in one query just before it goes.

    A STOP that arrived a second ago wins over a text queued before it; ``rules`` then get the texts
    still allowed (broadcasts: sending windows, caps, paused or cancelled).
    """
    members = {row.id: row for row in conn.execute(_MEMBERS, {"members": [d.member_id for d in batch if d.member_id]})}
    verdicts = [_verdict(due, members, now) for due in batch]
    allowed = [due for due, (verdict, _, _) in zip(batch, verdicts, strict=True) if verdict is Verdict.send]
    held = rules(conn, allowed, members, now) if allowed else {}
    return [held.get(due.id, verdict) for due, verdict in zip(batch, verdicts, strict=True)]


def final_check(
    conn: sa.Connection, due: Due, now: datetime, rules: SendRules = no_rules
) -> tuple[Verdict, str | None, datetime | None]:
    return final_checks(conn, [due], now, rules)[0]


def _verdict(due: Due, members: dict[int, Any], now: datetime) -> tuple[Verdict, str | None, datetime | None]:
    if (due.expires_at or due.created_at + DEFAULT_VALIDITY) < now:
        return Verdict.expire, "expired in queue", None
    if due.member_id is not None:
        row = members.get(due.member_id)
        if row is None:
            return Verdict.cancel, "the member was erased", None
        state = MemberState(row.state)
        if state is MemberState.blocked:
            return Verdict.cancel, "the member is blocked", None
        if state is MemberState.unsubscribed:
            # Only openline's own answer to that STOP (or a later HELP) may still reach them.
            stopped_at = row.unsubscribed_at
            if not (due.kind is MessageKind.system and stopped_at is not None and due.created_at >= stopped_at):
                return Verdict.cancel, "the member opted out", None
        if due.kind is MessageKind.broadcast and state is not MemberState.subscribed:
            return Verdict.cancel, f"the member is {state.value}, not subscribed", None
    return Verdict.send, None, None
