"""The last look before a text leaves: is it still wanted, still valid, still allowed now?"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from openline.db import schema
from openline.states import MemberState, MessageKind

__all__ = ["DEFAULT_VALIDITY", "Due", "Verdict", "Window", "always_open", "final_check", "final_checks"]

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


class Verdict(StrEnum):
    send = "send"
    cancel = "cancel"  # no longer wanted: the member opted out or was blocked
    expire = "expire"  # too late
    later = "later"  # allowed, but not now (sending window)


# The sending-window hook: when a broadcast text may go (None: now). The broadcast issue plugs in legal
# and quiet hours here; until then every moment is open.
Window = Callable[[Due, datetime], datetime | None]


def always_open(_due: Due, _now: datetime) -> datetime | None:
    return None


_MEMBERS = sa.select(
    schema.members.c.id,
    schema.members.c.state,
    sa.select(sa.func.max(schema.consent_events.c.occurred_at))
    .where(
        schema.consent_events.c.member_id == schema.members.c.id,
        schema.consent_events.c.new_state == MemberState.unsubscribed,
    )
    .scalar_subquery()
    .label("unsubscribed_at"),
).where(schema.members.c.id.in_(sa.bindparam("members", expanding=True)))


def final_checks(
    conn: sa.Connection, batch: Sequence[Due], now: datetime, window: Window = always_open
) -> list[tuple[Verdict, str | None, datetime | None]]:
    """(verdict, reason, not before) for each text of ``batch``, read in one query just before it goes.

    A STOP that arrived a second ago wins over a text queued before it.
    """
    members = {row.id: row for row in conn.execute(_MEMBERS, {"members": [d.member_id for d in batch if d.member_id]})}
    return [_verdict(due, members, now, window) for due in batch]


def final_check(
    conn: sa.Connection, due: Due, now: datetime, window: Window = always_open
) -> tuple[Verdict, str | None, datetime | None]:
    return final_checks(conn, [due], now, window)[0]


def _verdict(
    due: Due, members: dict[int, Any], now: datetime, window: Window
) -> tuple[Verdict, str | None, datetime | None]:
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
    if due.kind is MessageKind.broadcast:  # answers to a member's own text are never held back
        not_before = window(due, now)
        if not_before is not None and not_before > now:
            return Verdict.later, "outside the sending window", not_before
    return Verdict.send, None, None
