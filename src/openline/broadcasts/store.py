"""Broadcast records and their life: create, start, pause, resume, cancel, finish.

    draft ─start→ scheduled ─(its time)→ fanning_out → sending → done
                  paused ⇄ (any of scheduled, fanning_out, sending);  cancelled from any but done

The worker moves broadcasts along (:func:`advance`); people start, pause, resume and cancel them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from openline.broadcasts.compose import CompiledMessage, Message, compile_message
from openline.db import schema
from openline.engine.config import BUILTIN_FORM_FIELDS, load_config
from openline.segments import Filter, from_json, get_segment, to_json
from openline.states import BroadcastState, MessageState

__all__ = [
    "Broadcast",
    "BroadcastNotFound",
    "Schedule",
    "WrongState",
    "advance",
    "cancel",
    "compile_for",
    "create_broadcast",
    "find_broadcast",
    "get_broadcast",
    "list_broadcasts",
    "pause",
    "resume",
    "start",
]

b, m = schema.broadcasts.c, schema.messages.c

# The earliest a wall-clock time anywhere comes round: UTC+14 (Line Islands). A local-time broadcast
# starts fanning out then, so its first members are ready when their clock shows the time.
_EARLIEST_OFFSET = timedelta(hours=14)
_LOCAL_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# What a paused or resumed broadcast goes back to.
_RUNNING = (BroadcastState.scheduled, BroadcastState.fanning_out, BroadcastState.sending)


class BroadcastNotFound(LookupError):
    pass


class WrongState(ValueError):
    """The broadcast is not in a state that allows this (e.g. resuming one that is not paused)."""


@dataclass(frozen=True)
class Schedule:
    """Now (both None), at an instant, or at a wall-clock time on a date in each member's own zone."""

    at: datetime | None = None
    local_date: date | None = None
    local_time: str | None = None

    def __post_init__(self) -> None:
        if self.at is not None and self.at.tzinfo is None:
            raise ValueError("a send time needs a time zone (e.g. 2026-12-01T10:00:00+01:00)")
        if (self.local_date is None) != (self.local_time is None):
            raise ValueError("a local-time schedule needs both a date and a time of day")
        if self.at is not None and self.local_time is not None:
            raise ValueError("send at an instant or at a local time, not both")
        if self.local_time is not None and not _LOCAL_TIME.match(self.local_time):
            raise ValueError(f"{self.local_time!r} is not a time of day (HH:MM, 24-hour)")

    @property
    def local(self) -> bool:
        return self.local_time is not None

    def member_time(self, zone: Any) -> datetime:
        """The scheduled moment on a member's clock in ``zone`` (a ZoneInfo), as UTC."""
        assert self.local_date is not None and self.local_time is not None
        hour, minute = (int(part) for part in self.local_time.split(":"))
        local = datetime.combine(self.local_date, time(hour, minute), tzinfo=zone)
        return local.astimezone(UTC)

    def fanout_at(self) -> datetime | None:
        """When fan-out may begin (None: at once)."""
        if self.at is not None:
            return self.at.astimezone(UTC)
        if self.local_date is not None and self.local_time is not None:
            return self.member_time(UTC) - _EARLIEST_OFFSET
        return None

    def describe(self) -> str:
        if self.at is not None:
            return f"at {self.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        if self.local:
            return f"at {self.local_time} on {self.local_date} in each member's time zone"
        return "as soon as it is started"


@dataclass(frozen=True)
class Broadcast:
    id: int
    community_id: int
    name: str
    message: Message
    segment: Filter
    segment_name: str | None
    sender_id: int | None
    state: BroadcastState
    schedule: Schedule
    fanout_cursor: int | None
    tally: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


_COLUMNS = (
    b.id,
    b.community_id,
    b.name,
    b.message,
    b.segment,
    b.segment_name,
    b.sender_id,
    b.state,
    b.send_at,
    b.local_date,
    b.local_time,
    b.fanout_cursor,
    b.tally,
    b.created_at,
    b.started_at,
    b.finished_at,
)


def _broadcast(row: Any) -> Broadcast:
    return Broadcast(
        id=int(row.id),
        community_id=int(row.community_id),
        name=row.name,
        message=Message.model_validate(row.message),
        segment=from_json(row.segment),
        segment_name=row.segment_name,
        sender_id=row.sender_id,
        state=BroadcastState(row.state),
        schedule=Schedule(row.send_at, row.local_date, row.local_time),
        fanout_cursor=row.fanout_cursor,
        tally=dict(row.tally or {}),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def custom_fields(conn: sa.Connection, community_id: int) -> tuple[str, ...]:
    """The owner's custom form fields: templates may name them directly."""
    fields = load_config(conn, community_id).form.fields
    return tuple(f.name for f in fields if f.name not in BUILTIN_FORM_FIELDS)


def compile_for(conn: sa.Connection, broadcast: Broadcast) -> CompiledMessage:
    return compile_message(broadcast.message, custom_fields=custom_fields(conn, broadcast.community_id))


def create_broadcast(
    conn: sa.Connection,
    community_id: int,
    name: str,
    message: Message | Mapping[str, Any],
    *,
    segment: Filter | Mapping[str, Any] | None = None,
    segment_name: str | None = None,
    sender: str | None = None,
    schedule: Schedule = Schedule(),
) -> Broadcast:
    """A new draft. Every body is compiled now (a template problem raises TemplateProblem with its
    position), the segment is a filter or a saved segment's name (copied: what is estimated is what is
    sent), the sender an address of the community's."""
    name = name.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise ValueError("a broadcast needs a name of 1 to 200 printable characters")
    checked = message if isinstance(message, Message) else Message.model_validate(message)
    compile_message(checked, custom_fields=custom_fields(conn, community_id))
    if (segment is None) == (segment_name is None):
        raise ValueError("give the recipients as a filter or as a saved segment's name (one of them)")
    if segment_name is not None:
        saved = get_segment(conn, community_id, segment_name)
        if saved is None:
            raise ValueError(f"there is no saved segment named {segment_name!r} (see `openline segments list`)")
        node = saved.filter
    else:
        assert segment is not None
        node = from_json(segment) if isinstance(segment, Mapping) else segment
    sender_id = None
    if sender is not None:
        s = schema.senders.c
        sender_id = conn.execute(
            sa.select(s.id).where(s.community_id == community_id, s.address == sender.strip())
        ).scalar_one_or_none()
        if sender_id is None:
            raise ValueError(f"{sender} is not one of this community's senders (see `openline senders list`)")
    exists = conn.execute(sa.select(b.id).where(b.community_id == community_id, b.name == name)).first()
    if exists is not None:
        raise ValueError(f"there is already a broadcast named {name!r}")
    now = datetime.now(UTC)
    new_id = conn.execute(
        sa.insert(schema.broadcasts)
        .values(
            community_id=community_id,
            name=name,
            message=checked.model_dump(mode="json"),
            segment=to_json(node),
            segment_name=segment_name,
            sender_id=sender_id,
            state=BroadcastState.draft,
            send_at=schedule.at,
            local_date=schedule.local_date,
            local_time=schedule.local_time,
            tally={},
            created_at=now,
            updated_at=now,
        )
        .returning(b.id)
    ).scalar_one()
    return get_broadcast(conn, int(new_id))


def get_broadcast(conn: sa.Connection, broadcast_id: int) -> Broadcast:
    row = conn.execute(sa.select(*_COLUMNS).where(b.id == broadcast_id)).one_or_none()
    if row is None:
        raise BroadcastNotFound(f"there is no broadcast {broadcast_id}")
    return _broadcast(row)


def find_broadcast(conn: sa.Connection, community_id: int, name_or_id: str | int) -> Broadcast:
    """A community's broadcast by name (or by id, given as a number)."""
    where = b.name == str(name_or_id).strip()
    if isinstance(name_or_id, int) or str(name_or_id).isdigit():
        where = sa.or_(where, b.id == int(name_or_id))
    row = conn.execute(sa.select(*_COLUMNS).where(b.community_id == community_id, where).limit(1)).one_or_none()
    if row is None:
        raise BroadcastNotFound(f"there is no broadcast named {name_or_id!r} (see `openline broadcast list`)")
    return _broadcast(row)


def list_broadcasts(conn: sa.Connection, community_id: int) -> list[Broadcast]:
    """Newest first."""
    rows = conn.execute(sa.select(*_COLUMNS).where(b.community_id == community_id).order_by(b.id.desc()))
    return [_broadcast(row) for row in rows]


def _move(conn: sa.Connection, broadcast: Broadcast, to: BroadcastState, **values: Any) -> Broadcast:
    """Change state only from the state we read (a worker may move it concurrently)."""
    moved = conn.execute(
        sa.update(schema.broadcasts)
        .where(b.id == broadcast.id, b.state == broadcast.state)
        .values(state=to, updated_at=datetime.now(UTC), **values)
    )
    if moved.rowcount != 1:
        raise WrongState(f"broadcast {broadcast.name!r} changed state meanwhile; try again")
    return get_broadcast(conn, broadcast.id)


def start(conn: sa.Connection, broadcast: Broadcast, now: datetime) -> Broadcast:
    """Start a draft: it fans out at once, or waits for its time."""
    if broadcast.state is not BroadcastState.draft:
        raise WrongState(f"broadcast {broadcast.name!r} is {broadcast.state.value}; only a draft can be started")
    due = broadcast.schedule.fanout_at()
    to = BroadcastState.fanning_out if due is None or due <= now else BroadcastState.scheduled
    return _move(conn, broadcast, to, started_at=now, tally={"recipients": 0, "deferred": {}, "skipped": {}})


def pause(conn: sa.Connection, broadcast: Broadcast) -> Broadcast:
    """Hold every text not yet handed to the provider (the dispatcher does not claim them) and fan-out."""
    if broadcast.state not in _RUNNING:
        raise WrongState(f"broadcast {broadcast.name!r} is {broadcast.state.value}; it cannot be paused")
    tally = {**broadcast.tally, "paused_from": broadcast.state.value}
    return _move(conn, broadcast, BroadcastState.paused, tally=tally)


def resume(conn: sa.Connection, broadcast: Broadcast) -> Broadcast:
    if broadcast.state is not BroadcastState.paused:
        raise WrongState(f"broadcast {broadcast.name!r} is {broadcast.state.value}, not paused")
    tally = dict(broadcast.tally)
    back = BroadcastState(tally.pop("paused_from", BroadcastState.sending.value))
    return _move(conn, broadcast, back, tally=tally)


def cancel(conn: sa.Connection, broadcast: Broadcast, now: datetime) -> tuple[Broadcast, int]:
    """Stop the broadcast: every text not yet submitted is cancelled (texts already with the provider
    cannot be called back). Returns the broadcast and how many texts were cancelled."""
    if broadcast.state in (BroadcastState.done, BroadcastState.cancelled):
        raise WrongState(f"broadcast {broadcast.name!r} is already {broadcast.state.value}")
    moved = _move(conn, broadcast, BroadcastState.cancelled, finished_at=now)
    cancelled = conn.execute(
        sa.update(schema.messages)
        .where(m.broadcast_id == broadcast.id, m.state == MessageState.queued)
        .values(
            state=MessageState.cancelled,
            error_code="cancel",
            error_reason="the broadcast was cancelled",
            updated_at=now,
        )
    ).rowcount
    return moved, int(cancelled)


def advance(conn: sa.Connection, now: datetime) -> list[int]:
    """The worker's step: start fan-out of scheduled broadcasts whose time has come, and mark done the
    sending ones with no text left to settle. Returns the ids of broadcasts ready to fan out."""
    for row in conn.execute(sa.select(*_COLUMNS).where(b.state == BroadcastState.scheduled)).all():
        broadcast = _broadcast(row)
        due = broadcast.schedule.fanout_at()
        if due is None or due <= now:
            _move(conn, broadcast, BroadcastState.fanning_out)
    # Written out, not bound: the databases use the partial index ix_messages_unsettled_broadcast only
    # when they can see the query's condition is the index's.
    unsettled = sa.select(m.id).where(m.broadcast_id == b.id, sa.text("messages.state IN ('queued', 'sending')"))
    conn.execute(
        sa.update(schema.broadcasts)
        .where(b.state == BroadcastState.sending, ~unsettled.exists())
        .values(state=BroadcastState.done, finished_at=now, updated_at=now)
    )
    return [int(i) for i in conn.execute(sa.select(b.id).where(b.state == BroadcastState.fanning_out)).scalars()]
