"""The team's inbox: conversations listed, filtered and searched; one conversation read, replied to,
assigned, noted and marked done.

Lists are newest first by ``(last_message_at, id)`` and keyset-paginated: a page ends with a
:class:`Cursor` naming its last row, and the next page starts strictly below it. No OFFSET, so a deep
page costs what the first one does, and texts arriving between page loads never make a page repeat or
skip a conversation (a conversation that receives a text jumps to the top, above every cursor handed
out so far: it is not shown twice, and the page's live notice says there is something newer).

``last_message_at`` is when the member last wrote (the engine sets it on every inbound text, and a new
text brings a conversation marked done back to the inbox); replies from the team do not move a
conversation, so the order says who wrote last, not who was answered last.

Search (``q``) is a case-insensitive substring match over the bodies of a conversation's texts and
replies (broadcasts and automatic texts, the same for everyone, are left out, as from row previews):
``ILIKE`` on PostgreSQL, ``LIKE`` on SQLite (which folds the case of ASCII letters only). It needs no
extension and no index of its own (where pg_trgm can be installed, a trigram index on the bodies serves
the same ILIKE unchanged). The newest SEARCH_WINDOW conversations are looked through one by
one (each one's messages through ``ix_messages_conversation``), which fills a page at once for a common
word; if it does not, the rest is found in one pass over the message bodies. A word that matches little
therefore reads every body once: ``python -m bench inbox`` measures it at 100,000 conversations. Terms
shorter than MIN_SEARCH characters are refused, and a page stops at its limit.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from openline.accounts import User
from openline.db import schema
from openline.outbox import MAX_BODY, MessageResource, OptedOut, queue_text
from openline.states import Direction, MemberState, MessageKind, MessageState

__all__ = [
    "MAX_NOTE",
    "MAX_SEARCH",
    "MIN_SEARCH",
    "PREVIEW",
    "SEARCH_WINDOW",
    "THREAD_LIMIT",
    "ConversationNotFound",
    "ConversationView",
    "Cursor",
    "Entry",
    "Filters",
    "MemberSummary",
    "Page",
    "Thread",
    "View",
    "add_note",
    "assign",
    "conversation",
    "list_conversations",
    "mark_read",
    "newest",
    "reply",
    "set_done",
    "smart_encoded",
]

# Characters of the latest message shown in a list row.
PREVIEW = 120
MIN_SEARCH, MAX_SEARCH = 2, 100
# The newest messages (and notes) a conversation page shows; older ones are rarely what anyone needs.
THREAD_LIMIT = 200
# A search first looks through this many of the newest conversations one by one (see _search).
SEARCH_WINDOW = 2000
# What a conversation is about: the member's texts and the team's replies. Broadcasts and automatic
# texts are the same for everyone, so they would put one text in every preview and make every
# conversation match a search for one of their words (and they are most of the messages table).
_CONVERSATIONAL = (MessageKind.text, MessageKind.reply)
MAX_NOTE = 4000

c, mem, m, u = schema.conversations.c, schema.members.c, schema.messages.c, schema.users.c
n, snd, tags_c = schema.conversation_notes.c, schema.senders.c, schema.member_tags.c


class View(StrEnum):
    inbox = "inbox"  # subscribed and unsubscribed members: people the owner has a relationship with
    pending = "pending"  # people who texted but have not confirmed: kept apart so they do not bury the inbox
    done = "done"  # conversations someone marked done (any member state), until the member writes again


_STATES = {
    View.inbox: (MemberState.subscribed, MemberState.unsubscribed),
    View.pending: (MemberState.new, MemberState.pending),
}


class ConversationNotFound(LookupError):
    """No such conversation in this community."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in a list: the ``(last_message_at, id)`` of a row. Ordered like the list (reversed)."""

    last_message_at: datetime
    id: int

    def encode(self) -> str:
        """An opaque token for URLs."""
        micros = round((self.last_message_at - _EPOCH).total_seconds() * 1_000_000)
        return base64.urlsafe_b64encode(f"{micros}.{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor ``token`` names; ValueError when it is not one."""
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
            micros, _, ident = text.partition(".")
            return cls(_EPOCH + timedelta(microseconds=int(micros)), int(ident))
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
            raise ValueError("not a page cursor") from None


@dataclass(frozen=True)
class Filters:
    """What a list is narrowed to; everything given must hold."""

    unread: bool = False
    assigned_to: int | None = None  # a user id ("assigned to me")
    unassigned: bool = False
    tag: str | None = None
    language: str | None = None
    q: str | None = None  # a substring of any message body, MIN_SEARCH..MAX_SEARCH characters

    def __post_init__(self) -> None:
        if self.q is not None and not MIN_SEARCH <= len(self.q.strip()) <= MAX_SEARCH:
            raise ValueError(f"a search needs {MIN_SEARCH} to {MAX_SEARCH} characters")


@dataclass(frozen=True)
class ConversationView:
    id: int
    member_id: int
    phone: str
    name: str | None
    member_state: MemberState
    language: str | None
    unread: int
    last_message_at: datetime
    preview: str | None  # the latest text or reply (not broadcast, not automatic), shortened to PREVIEW characters
    preview_direction: Direction | None
    assigned_user_id: int | None
    assigned_to: str | None  # the assignee's name (or e-mail address)
    done: bool

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.last_message_at, self.id)


@dataclass(frozen=True)
class Page:
    """One page of a list; iterating it gives its rows. ``next`` is None on the last page."""

    rows: list[ConversationView]
    next: Cursor | None

    def __iter__(self) -> Iterator[ConversationView]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def _name(first: str | None, last: str | None) -> str | None:
    return " ".join(part for part in (first, last) if part) or None


def _view_conditions(view: View) -> list[sa.ColumnElement[bool]]:
    if view is View.done:
        return [c.archived.is_(True)]
    return [c.archived.is_(False), mem.state.in_(_STATES[view])]


def _contains(column: sa.ColumnElement[str], text: str, dialect: str) -> sa.ColumnElement[bool]:
    if dialect == "postgresql":
        # Plain ILIKE on the column, so a trigram index (pg_trgm, where the operator can install it)
        # serves it unchanged; an explicit collation here would keep the planner from using one.
        return column.icontains(text, autoescape=True)
    # SQLite's LIKE already ignores the case of ASCII letters (and only theirs); lower() would add a call
    # per row without folding any other letter.
    return column.contains(text, autoescape=True)


def _filter_conditions(filters: Filters) -> list[sa.ColumnElement[bool]]:
    """Every filter but the search (see _search)."""
    found: list[sa.ColumnElement[bool]] = []
    if filters.unread:
        found.append(c.unread > 0)
    if filters.assigned_to is not None:
        found.append(c.assigned_user_id == filters.assigned_to)
    if filters.unassigned:
        found.append(c.assigned_user_id.is_(None))
    if filters.tag:
        # The member_tags primary key (member_id, tag) answers this per row.
        found.append(sa.exists().where(tags_c.member_id == c.member_id, tags_c.tag == filters.tag.strip().lower()))
    if filters.language:
        found.append(mem.language == filters.language.strip().lower())
    return found


_ORDER = (c.last_message_at.desc(), c.id.desc())


def _listing() -> sa.Select[Any]:
    """A list's rows, newest first; the caller adds the conditions (community, view, filters, cursor)."""
    latest = (
        sa.select(sa.func.max(m.id))
        .where(m.conversation_id == c.id, m.kind.in_(_CONVERSATIONAL))
        .correlate(schema.conversations)
        .scalar_subquery()
    )
    last = schema.messages.alias("last_message")
    return (
        sa.select(
            c.id,
            c.member_id,
            mem.phone,
            mem.first_name,
            mem.last_name,
            mem.state,
            mem.language,
            c.unread,
            c.last_message_at,
            c.assigned_user_id,
            c.archived,
            sa.func.coalesce(u.name, u.email).label("assignee"),
            sa.func.substr(last.c.body, 1, PREVIEW + 1).label("preview"),
            last.c.direction.label("preview_direction"),
        )
        .join_from(schema.conversations, schema.members, c.member_id == mem.id)
        .outerjoin(schema.users, c.assigned_user_id == u.id)
        # The latest message by its primary key: max(id) per conversation is one step down the index.
        .outerjoin(last, last.c.id == latest)
        .order_by(*_ORDER)
    )


def _below(cursor: Cursor) -> sa.ColumnElement[bool]:
    # Spelled out rather than as a row comparison so both databases use the inbox index for the range.
    return sa.and_(
        c.last_message_at <= cursor.last_message_at,
        sa.or_(c.last_message_at < cursor.last_message_at, c.id < cursor.id),
    )


def _at_or_above(cursor: Cursor) -> sa.ColumnElement[bool]:
    return sa.and_(
        c.last_message_at >= cursor.last_message_at,
        sa.or_(c.last_message_at > cursor.last_message_at, c.id >= cursor.id),
    )


def _row(row: Any) -> ConversationView:
    preview = row.preview
    if preview is not None and len(preview) > PREVIEW:
        preview = preview[: PREVIEW - 1].rstrip() + "…"
    return ConversationView(
        id=int(row.id),
        member_id=int(row.member_id),
        phone=row.phone,
        name=_name(row.first_name, row.last_name),
        member_state=MemberState(row.state),
        language=row.language,
        unread=int(row.unread),
        last_message_at=row.last_message_at,
        preview=preview,
        preview_direction=Direction(row.preview_direction) if row.preview_direction is not None else None,
        assigned_user_id=row.assigned_user_id,
        assigned_to=row.assignee,
        done=bool(row.archived),
    )


def list_conversations(
    conn: sa.Connection,
    community_id: int,
    view: View = View.inbox,
    *,
    filters: Filters | None = None,
    before: Cursor | None = None,
    limit: int = 50,
) -> Page:
    """Newest first; ``before`` continues below a previous page's ``next``."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    chosen = filters or Filters()
    conditions = [c.community_id == community_id, *_view_conditions(view), *_filter_conditions(chosen)]
    if before is not None:
        conditions.append(_below(before))
    if chosen.q is None:
        found = list(conn.execute(_listing().where(*conditions).limit(limit + 1)))
    else:
        found = _search(conn, conditions, chosen.q.strip(), limit + 1)
    rows = [_row(row) for row in found[:limit]]
    return Page(rows, rows[-1].cursor if len(found) > limit else None)


def _search(conn: sa.Connection, conditions: list[sa.ColumnElement[bool]], text: str, wanted: int) -> list[Any]:
    """The first ``wanted`` rows meeting ``conditions`` with a message containing ``text``, in two steps.

    First the newest SEARCH_WINDOW conversations, each one's messages looked up by index: a word in a
    few percent of conversations fills a page there in milliseconds. If the page is not full, then
    everything below the window, with the matching conversations found in one sequential pass over the
    message bodies: far cheaper than a lookup per conversation when few match (measured by
    ``python -m bench inbox``)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # psycopg prepares a statement run five times; PostgreSQL's generic plan for it cannot see how
        # rare the search term is, and chose plans three times slower. Planned afresh, this transaction only.
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
    matches = sa.and_(m.kind.in_(_CONVERSATIONAL), _contains(m.body, text, dialect))
    # Where the window ends: its last row, found by a bounded walk down the index (None: the whole list
    # is shorter than the window).
    edge = conn.execute(
        sa.select(c.last_message_at, c.id)
        .join_from(schema.conversations, schema.members, c.member_id == mem.id)
        .where(*conditions)
        .order_by(*_ORDER)
        .offset(SEARCH_WINDOW - 1)
        .limit(1)
    ).one_or_none()
    window = [] if edge is None else [_at_or_above(Cursor(edge.last_message_at, edge.id))]
    rows = list(
        conn.execute(
            _listing().where(*conditions, *window, sa.exists().where(m.conversation_id == c.id, matches)).limit(wanted)
        )
    )
    if len(rows) == wanted or edge is None:
        return rows
    below = _below(Cursor(edge.last_message_at, edge.id))
    found = sa.select(m.conversation_id).where(matches)
    rows += conn.execute(_listing().where(*conditions, below, c.id.in_(found)).limit(wanted - len(rows)))
    return rows


def newest(conn: sa.Connection, community_id: int, view: View = View.inbox) -> Cursor | None:
    """The position of the newest conversation in ``view`` (no filters): what a live list compares to."""
    row = conn.execute(
        sa.select(c.last_message_at, c.id)
        .join_from(schema.conversations, schema.members, c.member_id == mem.id)
        .where(c.community_id == community_id, *_view_conditions(view))
        .order_by(*_ORDER)
        .limit(1)
    ).one_or_none()
    return None if row is None else Cursor(row.last_message_at, int(row.id))


# -- one conversation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberSummary:
    id: int
    phone: str
    name: str | None
    state: MemberState
    language: str | None
    city: str | None
    tags: tuple[str, ...]

    @property
    def opted_out(self) -> bool:
        return self.state in (MemberState.unsubscribed, MemberState.blocked)


@dataclass(frozen=True)
class Entry:
    """One line of a thread: a message (``note_by`` None) or an internal note."""

    at: datetime
    body: str
    direction: Direction | None = None
    kind: MessageKind | None = None
    state: MessageState | None = None
    error_reason: str | None = None
    is_note: bool = False
    note_by: str | None = None
    # An inbox reply's author (None: sent otherwise, or by someone no longer on the team).
    reply_by: str | None = None
    reply_by_user: bool = False  # written from the inbox by a teammate

    @property
    def who(self) -> str:
        """Who wrote it, in words (each thread line says so to screen readers too)."""
        if self.is_note:
            return f"Note by {self.note_by or 'a former teammate'}"
        if self.direction is Direction.inbound:
            return "Member"
        if self.reply_by_user:
            return f"Reply by {self.reply_by or 'a former teammate'}"
        return {
            MessageKind.reply: "Team reply",
            MessageKind.system: "Automatic reply",
            MessageKind.broadcast: "Broadcast",
        }.get(self.kind or MessageKind.reply, "Text")

    @property
    def failed(self) -> bool:
        return self.state in (MessageState.failed, MessageState.undelivered)


@dataclass(frozen=True)
class Thread:
    id: int
    member: MemberSummary
    entries: list[Entry]
    assigned_user_id: int | None
    assigned_to: str | None
    done: bool
    unread: int  # as it was when opened
    last_message_at: datetime
    sender: str | None  # the sender address replies go out from
    smart_encoding: bool
    older_hidden: bool = False  # the conversation has more than THREAD_LIMIT messages


def conversation(conn: sa.Connection, community_id: int, conversation_id: int, *, mark_as_read: bool = True) -> Thread:
    """The member, and messages and notes merged oldest to newest (the newest THREAD_LIMIT of each).

    Opening it marks it read unless ``mark_as_read`` is False (a caller on a read-only connection marks
    it afterwards with :func:`mark_read`)."""
    head = conn.execute(
        sa.select(
            c.id,
            c.member_id,
            c.assigned_user_id,
            c.archived,
            c.unread,
            c.last_message_at,
            mem.phone,
            mem.first_name,
            mem.last_name,
            mem.state,
            mem.language,
            mem.city,
            snd.address,
            snd.smart_encoding,
            sa.func.coalesce(u.name, u.email).label("assignee"),
        )
        .join_from(schema.conversations, schema.members, c.member_id == mem.id)
        .outerjoin(schema.senders, c.sender_id == snd.id)
        .outerjoin(schema.users, c.assigned_user_id == u.id)
        .where(c.id == conversation_id, c.community_id == community_id)
    ).one_or_none()
    if head is None:
        raise ConversationNotFound(f"no conversation {conversation_id}")
    tags = tuple(
        conn.execute(sa.select(tags_c.tag).where(tags_c.member_id == head.member_id).order_by(tags_c.tag)).scalars()
    )
    author = schema.users.alias("author")
    messages = conn.execute(
        sa.select(
            m.id,
            m.direction,
            m.kind,
            m.state,
            m.body,
            m.error_reason,
            m.created_at,
            m.author_id,
            sa.func.coalesce(author.c.name, author.c.email).label("author"),
        )
        .outerjoin(author, m.author_id == author.c.id)
        .where(m.conversation_id == conversation_id)
        .order_by(m.id.desc())
        .limit(THREAD_LIMIT + 1)
    ).all()
    older_hidden = len(messages) > THREAD_LIMIT
    messages = messages[:THREAD_LIMIT]
    notes = conn.execute(
        sa.select(n.body, n.created_at, sa.func.coalesce(u.name, u.email).label("author"))
        .outerjoin(schema.users, n.user_id == u.id)
        .where(n.conversation_id == conversation_id)
        .order_by(n.id.desc())
        .limit(THREAD_LIMIT)
    ).all()
    entries = [
        Entry(
            at=row.created_at,
            body=row.body,
            direction=Direction(row.direction),
            kind=MessageKind(row.kind),
            state=MessageState(row.state),
            error_reason=row.error_reason,
            reply_by=row.author,
            reply_by_user=row.author_id is not None,
        )
        for row in reversed(messages)
    ]
    oldest = entries[0].at if older_hidden and entries else None
    entries += [
        Entry(at=row.created_at, body=row.body, is_note=True, note_by=row.author)
        for row in reversed(notes)
        if oldest is None or row.created_at >= oldest
    ]
    entries.sort(key=lambda entry: entry.at)  # stable: messages keep their id order on equal times
    if mark_as_read and head.unread:
        mark_read(conn, community_id, conversation_id, seen=head.last_message_at)
    return Thread(
        id=int(head.id),
        member=MemberSummary(
            id=int(head.member_id),
            phone=head.phone,
            name=_name(head.first_name, head.last_name),
            state=MemberState(head.state),
            language=head.language,
            city=head.city,
            tags=tags,
        ),
        entries=entries,
        assigned_user_id=head.assigned_user_id,
        assigned_to=head.assignee,
        done=bool(head.archived),
        unread=int(head.unread),
        last_message_at=head.last_message_at,
        sender=head.address,
        smart_encoding=bool(head.smart_encoding),
        older_hidden=older_hidden,
    )


def smart_encoded(conn: sa.Connection, community_id: int, conversation_id: int) -> bool:
    """Whether replies in this conversation go out smart-encoded (its sender's setting), so a counter
    counts what will be sent; False for an unknown conversation."""
    found = conn.execute(
        sa.select(snd.smart_encoding)
        .join_from(schema.conversations, schema.senders, c.sender_id == snd.id)
        .where(c.id == conversation_id, c.community_id == community_id)
    ).scalar_one_or_none()
    return bool(found)


def mark_read(conn: sa.Connection, community_id: int, conversation_id: int, *, seen: datetime | None = None) -> None:
    """Unread back to 0, unless a text newer than ``seen`` (what the reader was shown) arrived since."""
    query = sa.update(schema.conversations).where(
        c.id == conversation_id, c.community_id == community_id, c.unread != 0
    )
    if seen is not None:
        query = query.where(c.last_message_at <= seen)
    conn.execute(query.values(unread=0))


def reply(
    conn: sa.Connection,
    community_id: int,
    conversation_id: int,
    body: str,
    *,
    user: User,
    suppression_key: bytes,
    idempotency_key: str | None = None,
) -> MessageResource:
    """Queue ``body`` to the member from the sender they last wrote to, as a ``reply``; the conversation
    counts as read. Raises ConversationNotFound, OptedOut (nothing is queued), or ValueError (empty, too
    long). The same ``idempotency_key`` (a form's own token) never queues twice: a double-submitted
    form sends one text."""
    if user.community_id != community_id:
        raise ConversationNotFound(f"no conversation {conversation_id}")
    row = conn.execute(
        sa.select(mem.phone, mem.state, snd.address)
        .join_from(schema.conversations, schema.members, c.member_id == mem.id)
        .outerjoin(schema.senders, c.sender_id == snd.id)
        .where(c.id == conversation_id, c.community_id == community_id)
    ).one_or_none()
    if row is None:
        raise ConversationNotFound(f"no conversation {conversation_id}")
    text = body.strip()
    if not text:
        raise ValueError("the reply is empty; write something to send")
    if len(text) > MAX_BODY:
        raise ValueError(f"the reply is {len(text):,} characters; at most {MAX_BODY:,} can be sent as one text")
    if row.state in (MemberState.unsubscribed, MemberState.blocked):
        word = "was blocked" if row.state == MemberState.blocked else "opted out"
        raise OptedOut(f"{row.phone} {word}: nothing can be sent to them, so the reply was not queued")
    resource, _ = queue_text(
        conn,
        community_id,
        row.phone,
        text,
        suppression_key=suppression_key,
        sender=row.address,
        idempotency_key=idempotency_key,
        kind=MessageKind.reply,
        author_id=user.id,
    )
    mark_read(conn, community_id, conversation_id)
    return resource


def assign(conn: sa.Connection, community_id: int, conversation_id: int, user_id: int | None) -> None:
    """Give the conversation to a teammate (an active user of the community), or to nobody."""
    if user_id is not None:
        found = conn.execute(
            sa.select(u.id).where(u.id == user_id, u.community_id == community_id, u.disabled_at.is_(None))
        ).first()
        if found is None:
            raise ValueError("that teammate does not exist (or can no longer sign in)")
    _update(conn, community_id, conversation_id, assigned_user_id=user_id)


def set_done(conn: sa.Connection, community_id: int, conversation_id: int, done: bool) -> None:
    """Done moves it out of the inbox (and counts it read); the member's next text brings it back."""
    values: dict[str, Any] = {"archived": done}
    if done:
        values["unread"] = 0
    _update(conn, community_id, conversation_id, **values)


def add_note(conn: sa.Connection, community_id: int, conversation_id: int, user: User, body: str) -> int:
    """An internal note (never sent to the member); returns its id."""
    text = body.strip()
    if not text:
        raise ValueError("the note is empty")
    if len(text) > MAX_NOTE:
        raise ValueError(f"a note is at most {MAX_NOTE:,} characters")
    if user.community_id != community_id or not _exists(conn, community_id, conversation_id):
        raise ConversationNotFound(f"no conversation {conversation_id}")
    return int(
        conn.execute(
            sa.insert(schema.conversation_notes)
            .values(conversation_id=conversation_id, user_id=user.id, body=text, created_at=schema.utcnow())
            .returning(n.id)
        ).scalar_one()
    )


def _exists(conn: sa.Connection, community_id: int, conversation_id: int) -> bool:
    return (
        conn.execute(sa.select(c.id).where(c.id == conversation_id, c.community_id == community_id)).first() is not None
    )


def _update(conn: sa.Connection, community_id: int, conversation_id: int, **values: Any) -> None:
    result = conn.execute(
        sa.update(schema.conversations).where(c.id == conversation_id, c.community_id == community_id).values(**values)
    )
    if result.rowcount == 0:
        raise ConversationNotFound(f"no conversation {conversation_id}")
