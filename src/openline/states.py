"""The words that name every state openline keeps (stored as these strings, never as codes)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BroadcastState",
    "ConsentSource",
    "Direction",
    "MemberState",
    "MessageKind",
    "MessageState",
    "SenderKind",
    "UserRole",
]


class MemberState(StrEnum):
    """Where a phone number stands with a community.

    ``new`` has texted but not been answered yet, ``pending`` was asked to confirm, ``subscribed``
    confirmed, ``unsubscribed`` opted out (only an explicit START/YES brings them back), ``blocked``
    was shut out by the owner.
    """

    new = "new"
    pending = "pending"
    subscribed = "subscribed"
    unsubscribed = "unsubscribed"
    blocked = "blocked"


class Direction(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class MessageState(StrEnum):
    """Inbound texts go ``received → processed``; outbound ones follow the delivery lifecycle."""

    received = "received"
    processed = "processed"
    queued = "queued"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    undelivered = "undelivered"
    failed = "failed"
    cancelled = "cancelled"


class MessageKind(StrEnum):
    """Why an outbound text exists; the dispatcher sends replies before broadcast traffic."""

    text = "text"  # an inbound text (inbound rows only)
    reply = "reply"  # a person on the owner's team answered in the inbox
    system = "system"  # autotext, confirmations, HELP/STOP answers
    broadcast = "broadcast"


class SenderKind(StrEnum):
    long_code = "long_code"
    short_code = "short_code"
    toll_free = "toll_free"
    alphanumeric = "alphanumeric"


class ConsentSource(StrEnum):
    sms = "sms"
    form = "form"
    import_file = "import_file"
    api = "api"
    dashboard = "dashboard"


class BroadcastState(StrEnum):
    """``draft`` until started; ``scheduled`` waits for its time; ``fanning_out`` writes one text per
    recipient; ``sending`` until every text is settled, then ``done``. ``paused`` holds every text not yet
    submitted (fan-out included) until resumed; ``cancelled`` settles them as cancelled."""

    draft = "draft"
    scheduled = "scheduled"
    fanning_out = "fanning_out"
    sending = "sending"
    paused = "paused"
    done = "done"
    cancelled = "cancelled"


class UserRole(StrEnum):
    """Who may do what in the dashboard: the ``owner`` everything, an ``admin`` everything but managing
    the owner, an ``agent`` the inbox only."""

    owner = "owner"
    admin = "admin"
    agent = "agent"
