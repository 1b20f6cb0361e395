"""The tables, in SQLAlchemy Core: one definition for SQLite and PostgreSQL.

Every constraint and index is named (so migrations can refer to it) and says why it exists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from openline.states import (
    BroadcastState,
    ConsentSource,
    Direction,
    MemberState,
    MessageKind,
    MessageState,
    SenderKind,
    UserRole,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

# SQLite only auto-numbers an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (SQLite has no time zones)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; openline stores aware UTC datetimes only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _state(enum: type[StrEnum], name: str) -> sa.Enum:
    """A state column stored as its word, with a CHECK constraint listing the allowed words."""
    return sa.Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


def _created() -> sa.Column[Any]:
    return sa.Column("created_at", UTCDateTime(), nullable=False, default=utcnow)


communities = sa.Table(
    "communities",
    metadata,
    sa.Column("id", Id, primary_key=True),
    # The short name used in URLs and on the command line.
    sa.Column("slug", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    # Per-community settings the owner edits (autotext, keywords, languages...), as JSON.
    sa.Column("settings", sa.JSON(), nullable=False, default=dict),
    _created(),
)

# Installation-wide values generated once (for example the signing key when none is configured).
installation = sa.Table(
    "installation",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("role", _state(UserRole, "role"), nullable=False),
    # How teammates see each other (assignments, notes); the e-mail address when empty.
    sa.Column("name", sa.String(100), nullable=True),
    _created(),
    # A user who left keeps their name on what they did, but cannot sign in.
    sa.Column("disabled_at", UTCDateTime(), nullable=True),
    # One login per e-mail address within a community.
    sa.UniqueConstraint("community_id", "email"),
)

# Signed-in dashboard sessions. The cookie holds a random token; only its SHA-256 is stored, so a copy
# of the database opens no session. Each session has its own CSRF token for forms.
user_sessions = sa.Table(
    "user_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    _created(),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    # Signing a user out everywhere (password change, disabling) finds their sessions.
    sa.Index("ix_user_sessions_user", "user_id"),
)

# Failed sign-ins, by e-mail address and by client address: too many in a while and sign-in waits.
login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("id", Id, primary_key=True),
    # "email:<address>" or "ip:<address>".
    sa.Column("key", sa.String(400), nullable=False),
    sa.Column("failed_at", UTCDateTime(), nullable=False),
    # Counting a key's recent failures.
    sa.Index("ix_login_failures_key", "key", "failed_at"),
)

# What people did in the dashboard that changes the community (not reading, not replying).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(200), nullable=True),
    sa.Column("details", sa.JSON(), nullable=False, default=dict),
    sa.Column("occurred_at", UTCDateTime(), nullable=False, default=utcnow),
    # The log is read newest first per community.
    sa.Index("ix_audit_log_community", "community_id", "id"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    # SHA-256 of the token: tokens are 256 random bits, so a slow password hash would add nothing
    # but latency to every API call.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    _created(),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    # A name identifies a token for `openline tokens revoke NAME`.
    sa.UniqueConstraint("community_id", "name"),
)

senders = sa.Table(
    "senders",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    # E.164 number, short code or alphanumeric ID, exactly as providers report it in webhooks.
    sa.Column("address", sa.String(32), nullable=False),
    sa.Column("kind", _state(SenderKind, "kind"), nullable=False),
    # Carrier-allowed throughput in message segments per second (not messages).
    sa.Column("mps", sa.Float(), nullable=False),
    sa.Column("daily_cap", sa.Integer(), nullable=True),
    # Replace look-alike punctuation with GSM-7 characters in texts from this sender (encoding.smart_encode).
    sa.Column("smart_encoding", sa.Boolean(), nullable=False, server_default=sa.false()),
    _created(),
    # An inbound text is routed to its community by the number it was sent to, so a number
    # belongs to exactly one community.
    sa.UniqueConstraint("address"),
    sa.CheckConstraint("mps > 0", name="mps_positive"),
    sa.CheckConstraint("daily_cap IS NULL OR daily_cap > 0", name="daily_cap_positive"),
)

members = sa.Table(
    "members",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("state", _state(MemberState, "state"), nullable=False),
    sa.Column("first_name", sa.String(100), nullable=True),
    sa.Column("last_name", sa.String(100), nullable=True),
    sa.Column("city", sa.String(100), nullable=True),
    sa.Column("postcode", sa.String(20), nullable=True),
    # ISO 3166-1 alpha-2, from the form or else from the number.
    sa.Column("country", sa.String(2), nullable=True),
    # State or province, ISO 3166-2 (US-CA, CA-ON), where the postcode or number tells it
    # (openline.regions); recomputed whenever the postcode or country changes.
    sa.Column("region", sa.String(6), nullable=True),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("birthday", sa.Date(), nullable=True),
    sa.Column("language", sa.String(8), nullable=True),
    # The member's IANA time zone where one is known for sure (from postcode/city, or a number whose
    # region has one zone); ``time_zones`` keeps every candidate when it is not (a US number moved
    # states), so sending windows can use the most restrictive.
    sa.Column("time_zone", sa.String(64), nullable=True),
    sa.Column("time_zones", sa.JSON(), nullable=False, default=list),
    sa.Column("custom", sa.JSON(), nullable=False, default=dict),
    # When the member last submitted the sign-up or profile form: a join link issued before it is used up.
    sa.Column("form_submitted_at", UTCDateTime(), nullable=True),
    # When the member first became subscribed ("joined this week" segments).
    sa.Column("joined_at", UTCDateTime(), nullable=True),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow),
    # One member per phone number per community; the engine finds members by this key.
    sa.UniqueConstraint("community_id", "phone"),
    # Segments filter a community's members by state, country and join date.
    sa.Index("ix_members_community_state", "community_id", "state"),
    sa.Index("ix_members_community_country", "community_id", "country"),
    # "Fans in California" segments.
    sa.Index("ix_members_community_region", "community_id", "region"),
    sa.Index("ix_members_community_joined", "community_id", "joined_at"),
)

# Erased members: a salted hash of the number only, so an erased person is never texted again (nor
# imported back) unless they opt in again by text, while nothing identifies them.
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True),
    # HMAC-SHA256 of the E.164 number under the installation's key (hex).
    sa.Column("phone_hash", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(200), nullable=False),
    _created(),
)

# Saved segments: a name for a filter (see openline.segments), counted live.
segments = sa.Table(
    "segments",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("filter", sa.JSON(), nullable=False),
    _created(),
    # Segments are chosen by name in the CLI and the composer.
    sa.UniqueConstraint("community_id", "name"),
)

# Clicks on rewritten links (/l/<code>): engagement for segments, click-through for broadcasts.
link_clicks = sa.Table(
    "link_clicks",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("member_id", Id, sa.ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    sa.Column("broadcast_id", Id, sa.ForeignKey("broadcasts.id", ondelete="SET NULL"), nullable=True),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("clicked_at", UTCDateTime(), nullable=False, default=utcnow),
    # "Clicked in the last N days" looks up a member's clicks by time.
    sa.Index("ix_link_clicks_member", "member_id", "clicked_at"),
    # A broadcast's stats count its clicks, total and by distinct member.
    sa.Index("ix_link_clicks_broadcast", "broadcast_id", "member_id"),
)

member_tags = sa.Table(
    "member_tags",
    metadata,
    sa.Column("member_id", Id, sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag", sa.String(64), primary_key=True),
    # Segments select members by tag.
    sa.Index("ix_member_tags_tag", "tag"),
)

consent_events = sa.Table(
    "consent_events",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("member_id", Id, sa.ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    sa.Column("previous_state", _state(MemberState, "previous_state"), nullable=True),
    sa.Column("new_state", _state(MemberState, "new_state"), nullable=False),
    sa.Column("source", _state(ConsentSource, "source"), nullable=False),
    # What proves the change: the inbound message id and text, the form's IP and user agent,
    # the import file and row, the disclosure text shown.
    sa.Column("evidence", sa.JSON(), nullable=False),
    sa.Column("occurred_at", UTCDateTime(), nullable=False, default=utcnow),
    # A member's ledger is read in order (export, audit).
    sa.Index("ix_consent_events_member", "member_id", "id"),
    # Analytics: a community's changes of state by day, answered from the index alone.
    sa.Index("ix_consent_events_day", "community_id", "occurred_at", "new_state", "previous_state"),
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("member_id", Id, sa.ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    # The sender the member last wrote to: replies go out from the same number (sticky sender).
    sa.Column("sender_id", Id, sa.ForeignKey("senders.id", ondelete="SET NULL"), nullable=True),
    sa.Column("assigned_user_id", Id, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("unread", sa.Integer(), nullable=False, default=0),
    sa.Column("last_message_at", UTCDateTime(), nullable=False, default=utcnow),
    sa.Column("archived", sa.Boolean(), nullable=False, default=False),
    # One thread per member.
    sa.UniqueConstraint("member_id"),
    # The inbox lists a community's threads newest first.
    sa.Index("ix_conversations_inbox", "community_id", "last_message_at"),
)

# Internal notes on a conversation: the team's, never sent.
conversation_notes = sa.Table(
    "conversation_notes",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("conversation_id", Id, sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("body", sa.Text(), nullable=False),
    _created(),
    # A conversation's notes, in order.
    sa.Index("ix_conversation_notes_conversation", "conversation_id", "id"),
)

broadcasts = sa.Table(
    "broadcasts",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    # The bodies: variants (A/B), each with translations, and whether it is sponsored
    # (openline.broadcasts.compose.Message as JSON).
    sa.Column("message", sa.JSON(), nullable=False),
    # The recipients' filter (openline.segments JSON), copied when the broadcast is made: what was
    # estimated is what is sent. ``segment_name`` only says where it came from.
    sa.Column("segment", sa.JSON(), nullable=False, default=dict),
    sa.Column("segment_name", sa.String(100), nullable=True),
    # Send from this sender only; else each member's usual sender (the one they texted).
    sa.Column("sender_id", Id, sa.ForeignKey("senders.id", ondelete="SET NULL"), nullable=True),
    sa.Column("state", _state(BroadcastState, "state"), nullable=False),
    # When to send: at ``send_at`` (now when NULL), or at the wall-clock ``local_time`` ("10:00") on
    # ``local_date`` in each member's own time zone.
    sa.Column("send_at", UTCDateTime(), nullable=True),
    sa.Column("local_date", sa.Date(), nullable=True),
    sa.Column("local_time", sa.String(5), nullable=True),
    # Fan-out goes through the segment in member id order; the last id written makes it resumable.
    sa.Column("fanout_cursor", Id, nullable=True),
    # What fan-out decided, added up as it goes: {"recipients": n, "deferred": {why: n}, "skipped": {why: n}}.
    sa.Column("tally", sa.JSON(), nullable=False, default=dict),
    _created(),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow),
    # Broadcasts are named on the command line.
    sa.UniqueConstraint("community_id", "name"),
    sa.CheckConstraint("local_time IS NULL OR local_date IS NOT NULL", name="local_time_has_date"),
)

# The original URLs of a broadcast's links; a text carries /l/<code> naming one of these and the member,
# so a click can only ever redirect to a URL the owner wrote.
broadcast_links = sa.Table(
    "broadcast_links",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("broadcast_id", Id, sa.ForeignKey("broadcasts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    # One row per distinct URL of a broadcast (fan-out and estimate both look it up).
    sa.UniqueConstraint("broadcast_id", "url"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("direction", _state(Direction, "direction"), nullable=False),
    sa.Column("kind", _state(MessageKind, "kind"), nullable=False),
    sa.Column("state", _state(MessageState, "state"), nullable=False),
    sa.Column("sender_id", Id, sa.ForeignKey("senders.id", ondelete="RESTRICT"), nullable=False),
    # The member's number, known before the member row exists (the engine links it after commit).
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("member_id", Id, sa.ForeignKey("members.id", ondelete="SET NULL"), nullable=True),
    sa.Column("conversation_id", Id, sa.ForeignKey("conversations.id", ondelete="SET NULL"), nullable=True),
    sa.Column("broadcast_id", Id, sa.ForeignKey("broadcasts.id", ondelete="SET NULL"), nullable=True),
    # A broadcast text's A/B variant name (stats per variant).
    sa.Column("variant", sa.String(20), nullable=True),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("encoding", sa.String(8), nullable=True),
    sa.Column("segments", sa.Integer(), nullable=True),
    # MMS media: a list of {"url": ..., "content_type": ...}.
    sa.Column("media", sa.JSON(), nullable=True),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("provider_message_id", sa.String(128), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    # An outbound text not sent by then is failed ("expired in queue"): a late text is worse than none.
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    # The API client's Idempotency-Key for a text it asked to send.
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("error_code", sa.String(32), nullable=True),
    sa.Column("error_reason", sa.Text(), nullable=True),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow),
    # The teammate who wrote a reply from the inbox (None: anything else, or sent through the API or CLI).
    # No foreign key: adding one to an existing SQLite table means copying every text; a user who is
    # gone shows as "a former teammate", as their notes do.
    sa.Column("author_id", Id, nullable=True),
    # Idempotency: a provider's message id is stored once, so a replayed webhook stores nothing new
    # (outbound rows have no id until sent; NULLs never collide).
    sa.UniqueConstraint("provider", "provider_message_id", name="uq_messages_provider_message_id"),
    # Broadcast fan-out writes one row per recipient: a resumed fan-out cannot text anyone twice.
    sa.UniqueConstraint("broadcast_id", "member_id", name="uq_messages_broadcast_member"),
    # The same Idempotency-Key never sends twice (NULLs, texts not sent through the API, never collide).
    sa.UniqueConstraint("community_id", "idempotency_key", name="uq_messages_idempotency_key"),
    # The engine takes inbound texts in arrival order; the dispatcher takes due outbound texts per sender.
    sa.Index("ix_messages_work", "state", "sender_id", "next_attempt_at", "id"),
    # A conversation's thread, oldest to newest.
    sa.Index("ix_messages_conversation", "conversation_id", "id"),
    # Everything exchanged with one phone number (simulator, erasure, export).
    sa.Index("ix_messages_phone", "community_id", "phone", "id"),
    # Is a broadcast finished? Only its texts still to be sent are looked at, however large it was.
    sa.Index(
        "ix_messages_unsettled_broadcast",
        "broadcast_id",
        sqlite_where=sa.text("state IN ('queued', 'sending') AND broadcast_id IS NOT NULL"),
        postgresql_where=sa.text("state IN ('queued', 'sending') AND broadcast_id IS NOT NULL"),
    ),
)

# The dispatcher's queue: per sender and kind, queued texts in the order they fall due (their retry or
# deferral time, else when they were queued). Partial, so it holds only what is waiting; a claim reads
# just the due rows at its head, however many are deferred behind them.
sa.Index(
    "ix_messages_queue",
    messages.c.sender_id,
    messages.c.kind,
    sa.func.coalesce(messages.c.next_attempt_at, messages.c.created_at),
    messages.c.id,
    sqlite_where=sa.text("state = 'queued'"),
    postgresql_where=sa.text("state = 'queued'"),
)

# A conversation's own texts: what members wrote and the team answered (no broadcasts, no automatic
# texts, which are the same for everyone). The inbox's previews and message search read these only.
sa.Index(
    "ix_messages_conversational",
    messages.c.conversation_id,
    messages.c.id,
    sqlite_where=sa.text("kind IN ('text', 'reply')"),
    postgresql_where=sa.text("kind IN ('text', 'reply')"),
)

# A broadcast's texts by state, answered from the index alone: the broadcasts list's progress of each.
# Partial: only broadcast texts.
sa.Index(
    "ix_messages_broadcast_state",
    messages.c.broadcast_id,
    messages.c.state,
    sqlite_where=sa.text("broadcast_id IS NOT NULL"),
    postgresql_where=sa.text("broadcast_id IS NOT NULL"),
)

# Analytics: a community's inbound texts by day, with the number that sent each (first texts of a day).
# Partial, so only inbound rows pay for it; queries name the direction as a literal for SQLite to use it.
sa.Index(
    "ix_messages_inbound_day",
    messages.c.community_id,
    messages.c.created_at,
    messages.c.phone,
    sqlite_where=sa.text("direction = 'inbound'"),
    postgresql_where=sa.text("direction = 'inbound'"),
)

# Analytics: a community's sent texts by the day they were sent, with what became of them. Texts not
# yet sent (no sent_at) are left out until they are.
sa.Index(
    "ix_messages_outbound_day",
    messages.c.community_id,
    messages.c.sent_at,
    messages.c.state,
    messages.c.kind,
    sqlite_where=sa.text("direction = 'outbound' AND sent_at IS NOT NULL"),
    postgresql_where=sa.text("direction = 'outbound' AND sent_at IS NOT NULL"),
)

# Which worker sends for a sender right now: one owner at a time paces it exactly. A lease not renewed
# before it expires (its worker died) may be taken by another worker.
sender_leases = sa.Table(
    "sender_leases",
    metadata,
    sa.Column("sender_id", Id, sa.ForeignKey("senders.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("owner", sa.String(100), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

# A community's figures for a finished UTC day (openline.analytics): kept once the day can no longer
# change, so the analytics page reads them instead of counting a year of texts again.
analytics_days = sa.Table(
    "analytics_days",
    metadata,
    sa.Column("community_id", Id, sa.ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("figures", sa.JSON(), nullable=False),
    sa.Column("computed_at", UTCDateTime(), nullable=False, default=utcnow),
)

# Delivery receipts as providers reported them, stored by the same durable ingest path as texts and
# applied to messages afterwards (a receipt may arrive before the send's own answer was recorded).
message_receipts = sa.Table(
    "message_receipts",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("provider_message_id", sa.String(128), nullable=False),
    # openline's word for the provider's status: sent, delivered, undelivered or failed.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("provider_status", sa.String(32), nullable=False),
    sa.Column("error_code", sa.String(32), nullable=True),
    sa.Column("received_at", UTCDateTime(), nullable=False, default=utcnow),
    sa.Column("applied", sa.Boolean(), nullable=False, default=False),
    # A receipt posted again (provider retries) is stored once.
    sa.UniqueConstraint("provider", "provider_message_id", "status", name="uq_message_receipts_once"),
    # The applier reads receipts not yet applied, oldest first.
    sa.Index("ix_message_receipts_pending", "applied", "id"),
)

__all__ = [
    "Id",
    "UTCDateTime",
    "analytics_days",
    "api_tokens",
    "audit_log",
    "broadcast_links",
    "broadcasts",
    "communities",
    "consent_events",
    "conversation_notes",
    "conversations",
    "installation",
    "link_clicks",
    "login_failures",
    "member_tags",
    "members",
    "message_receipts",
    "messages",
    "metadata",
    "segments",
    "sender_leases",
    "senders",
    "suppressions",
    "user_sessions",
    "users",
    "utcnow",
]
