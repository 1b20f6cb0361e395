"""The inbox domain on SQLite and PostgreSQL: views, keyset pages (new texts arriving between page loads
never repeat or skip a conversation), filters, search, one conversation, reply, assign, done, notes."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import openline.inbox as inbox_module
from openline.accounts import User, add_user, create_owner
from openline.communities import bootstrap, get_community
from openline.db import Database, schema
from openline.inbox import (
    PREVIEW,
    ConversationNotFound,
    Cursor,
    Filters,
    View,
    add_note,
    assign,
    conversation,
    list_conversations,
    mark_read,
    newest,
    reply,
    set_done,
)
from openline.outbox import OptedOut
from openline.runtime import Runtime
from openline.states import Direction, UserRole

from .test_engine import process, send

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
PASSWORD = "correct horse battery"
KEY = b"k" * 32
_phones = itertools.count(1)
_senders = itertools.count(1)


@pytest.fixture
def conn(db: Database) -> Iterator[sa.Connection]:
    with db.write_engine.begin() as connection:
        bootstrap(connection, "Test")
        yield connection


def community(conn: sa.Connection) -> int:
    return get_community(conn).id


def new_community(conn: sa.Connection) -> int:
    """A community of its own (hypothesis examples share one database)."""
    slug = f"c{uuid.uuid4().hex[:12]}"
    return int(
        conn.execute(
            sa.insert(schema.communities).values(slug=slug, name=slug, settings={}).returning(schema.communities.c.id)
        ).scalar_one()
    )


def sender_of(conn: sa.Connection, community_id: int) -> int:
    found = conn.execute(
        sa.select(schema.senders.c.id)
        .where(schema.senders.c.community_id == community_id)
        .order_by(schema.senders.c.id)
    ).first()
    if found is not None:
        return int(found[0])
    return int(
        conn.execute(
            sa.insert(schema.senders)
            .values(
                community_id=community_id,
                provider="sandbox",
                address=f"+1999{next(_senders):07d}",
                kind="long_code",
                mps=1.0,
            )
            .returning(schema.senders.c.id)
        ).scalar_one()
    )


def seed(
    conn: sa.Connection,
    community_id: int,
    *,
    at: datetime = T0,
    bodies: Sequence[str] = ("hello",),
    state: str = "subscribed",
    first_name: str | None = None,
    language: str | None = None,
    city: str | None = None,
    tags: Sequence[str] = (),
    unread: int = 0,
    archived: bool = False,
    assigned: int | None = None,
    phone: str | None = None,
) -> int:
    """A member with one conversation and inbound ``bodies`` (the last one at ``at``); its id."""
    number = phone or f"+1555{next(_phones):07d}"
    sender = sender_of(conn, community_id)
    member_id = conn.execute(
        sa.insert(schema.members)
        .values(
            community_id=community_id,
            phone=number,
            state=state,
            first_name=first_name,
            language=language,
            city=city,
            time_zones=[],
            custom={},
        )
        .returning(schema.members.c.id)
    ).scalar_one()
    for tag in tags:
        conn.execute(sa.insert(schema.member_tags).values(member_id=member_id, tag=tag))
    conversation_id = conn.execute(
        sa.insert(schema.conversations)
        .values(
            community_id=community_id,
            member_id=member_id,
            sender_id=sender,
            assigned_user_id=assigned,
            unread=unread,
            last_message_at=at,
            archived=archived,
        )
        .returning(schema.conversations.c.id)
    ).scalar_one()
    for k, body in enumerate(bodies):
        when = at - timedelta(minutes=len(bodies) - 1 - k)
        conn.execute(
            sa.insert(schema.messages).values(
                community_id=community_id,
                direction="inbound",
                kind="text",
                state="processed",
                sender_id=sender,
                phone=number,
                member_id=member_id,
                conversation_id=conversation_id,
                body=body,
                provider="sandbox",
                created_at=when,
                updated_at=when,
            )
        )
    return int(conversation_id)


def touch(conn: sa.Connection, conversation_ids: Sequence[int], now: datetime) -> None:
    """What the engine does when texts arrive: the conversations move to ``now`` (one batch, one time)."""
    c = schema.conversations.c
    conn.execute(
        sa.update(schema.conversations)
        .where(c.id.in_(conversation_ids))
        .values(unread=c.unread + 1, last_message_at=now, archived=False)
    )


def ids(page: inbox_module.Page) -> list[int]:
    return [row.id for row in page]


def everything(conn: sa.Connection, community_id: int, view: View = View.inbox, **filters: object) -> list[int]:
    found: list[int] = []
    cursor = None
    while True:
        page = list_conversations(conn, community_id, view, filters=Filters(**filters), before=cursor, limit=2)  # type: ignore[arg-type]
        found += ids(page)
        if page.next is None:
            return found
        cursor = page.next


def owner(conn: sa.Connection) -> User:
    return create_owner(conn, community(conn), "ada@example.org", PASSWORD, "Ada")


# -- views and pages -------------------------------------------------------------------------------


def test_views_keep_members_pending_people_and_done_apart(conn: sa.Connection) -> None:
    cid = community(conn)
    member = seed(conn, cid, state="subscribed", at=T0)
    opted_out = seed(conn, cid, state="unsubscribed", at=T0 + timedelta(minutes=1))
    pending = seed(conn, cid, state="pending", at=T0 + timedelta(minutes=2))
    new = seed(conn, cid, state="new", at=T0 + timedelta(minutes=3))
    done = seed(conn, cid, state="subscribed", archived=True, at=T0 + timedelta(minutes=4))
    done_pending = seed(conn, cid, state="pending", archived=True, at=T0 + timedelta(minutes=5))
    seed(conn, cid, state="blocked", at=T0 + timedelta(minutes=6))
    assert ids(list_conversations(conn, cid, View.inbox)) == [opted_out, member]
    assert ids(list_conversations(conn, cid, View.pending)) == [new, pending]
    assert ids(list_conversations(conn, cid, View.done)) == [done_pending, done]
    assert newest(conn, cid, View.inbox) == Cursor(T0 + timedelta(minutes=1), opted_out)
    assert newest(conn, new_community(conn), View.inbox) is None


def test_pages_follow_the_cursor_newest_first_with_ties_broken_by_id(conn: sa.Connection) -> None:
    cid = community(conn)
    made = [seed(conn, cid, at=T0 + timedelta(minutes=k // 3)) for k in range(10)]  # three share each minute
    expected = sorted(made, key=lambda i: (T0 + timedelta(minutes=made.index(i) // 3), i), reverse=True)
    first = list_conversations(conn, cid, limit=4)
    assert ids(first) == expected[:4] and first.next == first.rows[-1].cursor
    second = list_conversations(conn, cid, before=first.next, limit=4)
    third = list_conversations(conn, cid, before=second.next, limit=4)
    assert ids(second) == expected[4:8] and ids(third) == expected[8:] and third.next is None
    exact = list_conversations(conn, cid, limit=10)  # a last page that is exactly full has no next
    assert len(exact) == 10 and exact.next is None
    with pytest.raises(ValueError):
        list_conversations(conn, cid, limit=0)


def test_the_cursor_is_an_opaque_token_that_round_trips() -> None:
    cursor = Cursor(datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=UTC), 12345)
    token = cursor.encode()
    assert "2026" not in token and Cursor.decode(token) == cursor
    for garbage in ("", "nope", "!!!", "MTIz", "YS5i"):
        with pytest.raises(ValueError):
            Cursor.decode(garbage)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    minutes=st.lists(st.integers(0, 4), min_size=1, max_size=12),
    page_size=st.integers(1, 4),
    touches=st.lists(st.lists(st.integers(0, 11), max_size=3), max_size=8),
)
def test_texts_arriving_between_page_loads_never_repeat_or_skip_a_conversation(
    conn: sa.Connection, minutes: list[int], page_size: int, touches: list[list[int]]
) -> None:
    with conn.begin_nested() as savepoint:
        cid = new_community(conn)
        made = [seed(conn, cid, at=T0 + timedelta(minutes=m)) for m in minutes]
        later = T0 + timedelta(hours=1)
        seen: list[int] = []
        moved: set[int] = set()
        cursor = None
        for step in range(len(made) + 1):
            page = list_conversations(conn, cid, before=cursor, limit=page_size)
            seen += ids(page)
            if page.next is None:
                break
            cursor = page.next
            if step < len(touches):
                # New texts from some members (one engine batch: one time) before the next page loads.
                arrived = sorted({made[i % len(made)] for i in touches[step]})
                if arrived:
                    touch(conn, arrived, later + timedelta(seconds=step))
                    moved.update(arrived)
        assert page.next is None, "paging did not end"
        assert len(seen) == len(set(seen)), f"a conversation was shown twice: {seen}"
        assert set(made) - moved <= set(seen), "a conversation nobody wrote to was skipped"
        # What moved is at the top, where the live list's "newer" notice points.
        top = ids(list_conversations(conn, cid, limit=len(made)))
        assert set(top[: len(moved)]) == moved
        savepoint.rollback()


# -- filters and search ----------------------------------------------------------------------------


def test_filters_narrow_the_list(conn: sa.Connection) -> None:
    cid = community(conn)
    ada = owner(conn)
    bob = add_user(conn, cid, "bob@example.org", PASSWORD, UserRole.agent, "Bob", by=ada)
    a = seed(conn, cid, at=T0, unread=2, language="it", tags=("milan", "vip"), assigned=ada.id)
    b = seed(conn, cid, at=T0 + timedelta(minutes=1), language="en", tags=("vip",), assigned=bob.id)
    c = seed(conn, cid, at=T0 + timedelta(minutes=2), unread=1, language="it")
    seed(conn, cid, at=T0 + timedelta(minutes=3), state="pending", unread=1, tags=("vip",))

    def only(**filters: object) -> list[int]:
        return ids(list_conversations(conn, cid, filters=Filters(**filters)))  # type: ignore[arg-type]

    assert only() == [c, b, a]
    assert only(unread=True) == [c, a]
    assert only(assigned_to=ada.id) == [a]
    assert only(unassigned=True) == [c]
    assert only(tag="vip") == [b, a]
    assert only(tag=" VIP ") == [b, a]
    assert only(tag="rome") == []
    assert only(language="it") == [c, a]
    assert only(language="it", unread=True, tag="milan", assigned_to=ada.id) == [a]
    row = list_conversations(conn, cid, filters=Filters(assigned_to=bob.id)).rows[0]
    assert (row.assigned_user_id, row.assigned_to, row.language) == (bob.id, "Bob", "en")


def test_search_matches_any_message_of_a_conversation_ignoring_ascii_case(conn: sa.Connection) -> None:
    cid = community(conn)
    old_word = seed(conn, cid, at=T0, bodies=("When do the TICKETS go on sale?", "ok thanks"))
    latest_word = seed(conn, cid, at=T0 + timedelta(minutes=1), bodies=("hi", "tickets please"))
    nothing = seed(conn, cid, at=T0 + timedelta(minutes=2), bodies=("see you there",))
    percent = seed(conn, cid, at=T0 + timedelta(minutes=3), bodies=("100% yes", "a_b"))
    accented = seed(conn, cid, at=T0 + timedelta(minutes=4), bodies=("perché no?",))
    outbound(conn, nothing, "Tickets for everyone, from our broadcast", "broadcast")  # not searched
    outbound(conn, nothing, "Your ticket is confirmed", "system")
    outbound(conn, accented, "Tickets are at the door", "reply")  # the team's replies are

    def search(q: str) -> list[int]:
        return ids(list_conversations(conn, cid, filters=Filters(q=q)))

    assert search("ticket") == [accented, latest_word, old_word]
    assert search("Tickets") == [accented, latest_word, old_word]
    assert search("  ticket ") == [accented, latest_word, old_word]
    assert search("0%") == [percent]  # LIKE wildcards in the term are matched literally
    assert search("_b") == [percent]
    assert search("%%") == [] and search("a%b") == []
    assert search("perché") == [accented]
    assert search("zz") == []
    assert nothing in search("you")
    for short in ("", "x", " y ", "x" * 101):
        with pytest.raises(ValueError, match="a search needs 2 to 100 characters"):
            Filters(q=short)


def test_search_reaches_below_its_window_and_pages_correctly(
    conn: sa.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window of three makes both steps of a search run: the lookup per conversation near the top,
    then the pass over all bodies below it."""
    monkeypatch.setattr(inbox_module, "SEARCH_WINDOW", 3)
    cid = community(conn)
    made = []
    for k in range(14):
        body = "the concert was great" if k % 3 == 0 else "thanks"
        made.append(seed(conn, cid, at=T0 + timedelta(minutes=k // 2), bodies=(body, "bye")))
    seed(conn, cid, at=T0 + timedelta(hours=1), bodies=("concert",), state="pending")  # another view
    matching = [i for k, i in enumerate(made) if k % 3 == 0]
    expected = sorted(matching, key=lambda i: (made.index(i) // 2, i), reverse=True)
    assert everything(conn, cid, q="CONCERT") == expected
    assert everything(conn, cid, q="concert", unread=True) == []
    assert ids(list_conversations(conn, cid, filters=Filters(q="concert"), limit=10)) == expected


def outbound(conn: sa.Connection, conversation_id: int, body: str, kind: str) -> None:
    """A text the community sent in the conversation (a broadcast, an automatic text, a reply)."""
    c = schema.conversations.c
    row = conn.execute(
        sa.select(c.community_id, c.member_id, c.sender_id, schema.members.c.phone)
        .join(schema.members)
        .where(c.id == conversation_id)
    ).one()
    conn.execute(
        sa.insert(schema.messages).values(
            community_id=row.community_id,
            direction="outbound",
            kind=kind,
            state="delivered",
            sender_id=row.sender_id,
            phone=row.phone,
            member_id=row.member_id,
            conversation_id=conversation_id,
            body=body,
            provider="sandbox",
        )
    )


def test_rows_carry_the_latest_text_or_reply_shortened(conn: sa.Connection) -> None:
    cid = community(conn)
    long = "word " * 60
    first = seed(conn, cid, bodies=("older", long), first_name="Giulia", city="Milano", language="it")
    outbound(conn, first, "Our new album is out!", "broadcast")  # the same for everyone: not a preview
    outbound(conn, first, "Thanks, you're in!", "system")
    row = list_conversations(conn, cid).rows[0]
    assert row.id == first and row.name == "Giulia" and row.phone.startswith("+1555")
    assert row.preview is not None and len(row.preview) == PREVIEW and row.preview.endswith("…")
    assert row.preview_direction is not None and row.preview_direction.value == "inbound"
    assert row.last_message_at == T0 and not row.done
    outbound(conn, first, "See you there", "reply")
    replied = list_conversations(conn, cid).rows[0]
    assert (replied.preview, replied.preview_direction) == ("See you there", Direction.outbound)


# -- one conversation ------------------------------------------------------------------------------


def test_a_conversation_merges_messages_and_notes_and_is_marked_read(conn: sa.Connection) -> None:
    cid = community(conn)
    ada = owner(conn)
    now = schema.utcnow()
    conversation_id = seed(
        conn,
        cid,
        at=now,
        bodies=("first", "second"),
        unread=2,
        first_name="Giulia",
        city="Milano",
        tags=("vip", "milan"),
    )
    note_id = add_note(conn, cid, conversation_id, ada, "  called her back  ")
    assert note_id > 0
    peek = conversation(conn, cid, conversation_id, mark_as_read=False)
    assert peek.unread == 2
    thread = conversation(conn, cid, conversation_id)
    assert thread.unread == 2  # as it was when opened
    assert conversation(conn, cid, conversation_id).unread == 0
    member = thread.member
    assert (member.name, member.city, member.tags) == ("Giulia", "Milano", ("milan", "vip"))
    assert member.state.value == "subscribed" and not member.opted_out
    assert [(e.body, e.who) for e in thread.entries] == [
        ("first", "Member"),
        ("second", "Member"),
        ("called her back", "Note by Ada"),
    ]
    assert not thread.done and thread.sender is not None
    with pytest.raises(ConversationNotFound):
        conversation(conn, cid, conversation_id + 999)
    with pytest.raises(ConversationNotFound):
        conversation(conn, new_community(conn), conversation_id)


def test_marking_read_keeps_a_text_that_arrived_after_the_page_was_shown(conn: sa.Connection) -> None:
    cid = community(conn)
    conversation_id = seed(conn, cid, at=T0, unread=1)
    shown = conversation(conn, cid, conversation_id, mark_as_read=False)
    touch(conn, [conversation_id], T0 + timedelta(seconds=5))
    mark_read(conn, cid, conversation_id, seen=shown.last_message_at)
    assert conversation(conn, cid, conversation_id, mark_as_read=False).unread == 2
    mark_read(conn, cid, conversation_id)
    assert conversation(conn, cid, conversation_id, mark_as_read=False).unread == 0


def test_a_reply_is_queued_as_a_reply_from_the_conversations_sender(conn: sa.Connection) -> None:
    cid = community(conn)
    ada = owner(conn)
    conversation_id = seed(conn, cid, at=schema.utcnow() - timedelta(hours=1), unread=3, phone="+393471234567")
    message = reply(conn, cid, conversation_id, "  See you at 8!  ", user=ada, suppression_key=KEY)
    assert (message.to, message.body, message.status, message.encoding, message.segments) == (
        "+393471234567",
        "See you at 8!",
        "queued",
        "GSM-7",
        1,
    )
    m = schema.messages.c
    row = conn.execute(sa.select(m.kind, m.direction, m.conversation_id, m.sender_id).where(m.id == message.id)).one()
    assert (row.kind, row.direction, row.conversation_id) == ("reply", "outbound", conversation_id)
    assert row.sender_id == sender_of(conn, cid)
    thread = conversation(conn, cid, conversation_id)
    assert thread.unread == 0  # answering is reading
    assert (thread.entries[-1].who, thread.entries[-1].body) == (f"Reply by {ada.label}", "See you at 8!")
    assert conn.execute(sa.select(m.author_id).where(m.id == message.id)).scalar_one() == ada.id
    # The same form's token twice sends one text.
    again = reply(conn, cid, conversation_id, "Once", user=ada, suppression_key=KEY, idempotency_key="inbox:abc")
    twice = reply(conn, cid, conversation_id, "Once", user=ada, suppression_key=KEY, idempotency_key="inbox:abc")
    assert again.id == twice.id


def test_replies_are_refused_clearly_and_nothing_is_queued(conn: sa.Connection) -> None:
    cid = community(conn)
    ada = owner(conn)
    opted_out = seed(conn, cid, state="unsubscribed", phone="+12025550143")
    blocked = seed(conn, cid, state="blocked")
    fine = seed(conn, cid)
    before = conn.execute(sa.select(sa.func.count()).select_from(schema.messages)).scalar_one()
    with pytest.raises(OptedOut, match=r"\+12025550143 opted out: nothing can be sent"):
        reply(conn, cid, opted_out, "hello?", user=ada, suppression_key=KEY)
    with pytest.raises(OptedOut, match="was blocked"):
        reply(conn, cid, blocked, "hello?", user=ada, suppression_key=KEY)
    with pytest.raises(ValueError, match="the reply is empty"):
        reply(conn, cid, fine, "   ", user=ada, suppression_key=KEY)
    with pytest.raises(ValueError, match="at most 1,600"):
        reply(conn, cid, fine, "x" * 1601, user=ada, suppression_key=KEY)
    with pytest.raises(ConversationNotFound):
        reply(conn, cid, fine + 999, "hi", user=ada, suppression_key=KEY)
    stranger = User(ada.id, cid + 1, ada.email, ada.name, ada.role)
    with pytest.raises(ConversationNotFound):
        reply(conn, cid, fine, "hi", user=stranger, suppression_key=KEY)
    assert conn.execute(sa.select(sa.func.count()).select_from(schema.messages)).scalar_one() == before


def test_assign_to_a_teammate_or_nobody(conn: sa.Connection) -> None:
    cid = community(conn)
    ada = owner(conn)
    bob = add_user(conn, cid, "bob@example.org", PASSWORD, UserRole.agent, None, by=ada)
    conversation_id = seed(conn, cid)
    assign(conn, cid, conversation_id, bob.id)
    thread = conversation(conn, cid, conversation_id)
    assert (thread.assigned_user_id, thread.assigned_to) == (bob.id, "bob@example.org")
    assign(conn, cid, conversation_id, None)
    assert conversation(conn, cid, conversation_id).assigned_user_id is None
    with pytest.raises(ValueError, match="that teammate does not exist"):
        assign(conn, cid, conversation_id, bob.id + 999)
    conn.execute(sa.update(schema.users).where(schema.users.c.id == bob.id).values(disabled_at=schema.utcnow()))
    with pytest.raises(ValueError, match="can no longer sign in"):
        assign(conn, cid, conversation_id, bob.id)
    with pytest.raises(ConversationNotFound):
        assign(conn, cid, conversation_id + 999, None)
    with pytest.raises(ConversationNotFound):
        set_done(conn, new_community(conn), conversation_id, True)


def test_notes_need_words_and_a_conversation(conn: sa.Connection) -> None:
    cid = community(conn)
    ada = owner(conn)
    conversation_id = seed(conn, cid)
    with pytest.raises(ValueError, match="the note is empty"):
        add_note(conn, cid, conversation_id, ada, "  \n ")
    with pytest.raises(ValueError, match="at most 4,000"):
        add_note(conn, cid, conversation_id, ada, "x" * 4001)
    with pytest.raises(ConversationNotFound):
        add_note(conn, cid, conversation_id + 999, ada, "hi")
    add_note(conn, cid, conversation_id, ada, "one")
    add_note(conn, cid, conversation_id, ada, "two")
    assert [e.body for e in conversation(conn, cid, conversation_id).entries if e.is_note] == ["one", "two"]


def test_done_moves_a_conversation_out_of_the_inbox_and_counts_it_read(conn: sa.Connection) -> None:
    cid = community(conn)
    conversation_id = seed(conn, cid, unread=4)
    set_done(conn, cid, conversation_id, True)
    assert ids(list_conversations(conn, cid)) == []
    done = list_conversations(conn, cid, View.done).rows
    assert [(r.id, r.done, r.unread) for r in done] == [(conversation_id, True, 0)]
    set_done(conn, cid, conversation_id, False)
    assert ids(list_conversations(conn, cid)) == [conversation_id]


# -- with the engine -------------------------------------------------------------------------------


async def test_a_new_text_brings_a_done_conversation_back_to_the_inbox(runtime: Runtime) -> None:
    phone = "+393471234567"
    await send(runtime, phone, "ciao!")
    await send(runtime, phone, "si")
    await process(runtime)
    with runtime.db.write_engine.begin() as conn:
        cid = community(conn)
        [row] = list_conversations(conn, cid).rows
        assert (row.phone, row.unread, row.preview_direction is not None) == (phone, 2, True)
        set_done(conn, cid, row.id, True)
        assert ids(list_conversations(conn, cid)) == []
    await send(runtime, phone, "una domanda sui biglietti")
    await process(runtime)
    with runtime.db.read_engine.connect() as conn:
        [back] = list_conversations(conn, cid).rows
        assert (back.id, back.done, back.unread) == (row.id, False, 1)
        assert back.last_message_at > row.last_message_at
        assert ids(list_conversations(conn, cid, filters=Filters(q="BIGLIETTI"))) == [row.id]
