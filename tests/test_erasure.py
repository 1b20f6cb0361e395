"""Erasure leaves nothing that identifies the person, suppresses the number; retention blanks old bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from openline.communities import get_community
from openline.db import schema
from openline.erasure import (
    ERASED_PHONE,
    erase_member,
    erase_old_message_bodies,
    erase_phone,
    is_suppressed,
    lift_suppression,
    phone_hash,
)
from openline.members import MemberNotFound, find_member_id, member_record
from openline.outbox import queue_text
from openline.runtime import Runtime
from openline.states import ConsentSource, Direction, MemberState, MessageKind, MessageState

SECRET_WORDS = "my cat is called Biscuit"
TEAM_NOTE = "prefers a call on Fridays"


def _everything(runtime: Runtime) -> str:
    """Every row of every table, as text: what a person with the database could read."""
    dump = []
    with runtime.db.read_engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            dump += [repr(tuple(row)) for row in conn.execute(sa.select(table))]
    return "\n".join(dump)


IT, US = "+393471234567", "+12025550143"


def add_member(conn: sa.Connection, community_id: int, phone: str, **values: object) -> int:
    """A member as the engine leaves one who texted "hi" then "YES" (with the messages and ledger)."""
    now = datetime.now(UTC)
    member_id = int(
        conn.execute(
            sa.insert(schema.members)
            .values(
                community_id=community_id,
                phone=phone,
                state=MemberState.subscribed,
                time_zones=["America/New_York"],
                custom={},
                joined_at=now,
                **values,
            )
            .returning(schema.members.c.id)
        ).scalar_one()
    )
    sender_id = conn.execute(
        sa.select(schema.senders.c.id).where(schema.senders.c.community_id == community_id)
    ).scalar()
    for i, body in enumerate(("hi", "YES", SECRET_WORDS)):
        conn.execute(
            sa.insert(schema.messages).values(
                community_id=community_id,
                direction=Direction.inbound,
                kind=MessageKind.text,
                state=MessageState.processed,
                sender_id=sender_id,
                phone=phone,
                member_id=member_id,
                body=body,
                provider="sandbox",
                provider_message_id=f"in-{phone}-{i}",
                created_at=now,
                updated_at=now,
            )
        )
    for previous, new in ((None, MemberState.pending), (MemberState.pending, MemberState.subscribed)):
        conn.execute(
            sa.insert(schema.consent_events).values(
                community_id=community_id,
                member_id=member_id,
                previous_state=previous,
                new_state=new,
                source=ConsentSource.sms,
                evidence={"text": "YES" if new is MemberState.subscribed else "hi", "phone": phone},
            )
        )
    conversation = conn.execute(
        sa.insert(schema.conversations)
        .values(community_id=community_id, member_id=member_id, sender_id=sender_id)
        .returning(schema.conversations.c.id)
    ).scalar_one()
    # What the team wrote about them is personal data too.
    conn.execute(sa.insert(schema.conversation_notes).values(conversation_id=conversation, body=TEAM_NOTE))
    return member_id


async def _a_member_with_history(runtime: Runtime, phone: str) -> int:
    key = runtime.key_for("suppression")
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        member_id = add_member(conn, community_id, phone)
        conn.execute(sa.insert(schema.member_tags).values(member_id=member_id, tag="milan"))
        conn.execute(
            sa.update(schema.members)
            .where(schema.members.c.id == member_id)
            .values(first_name="Giulia", email="giulia@example.org", custom={"seat": "B12"})
        )
        conn.execute(
            sa.insert(schema.link_clicks).values(
                community_id=community_id, member_id=member_id, url="https://example.org/tickets"
            )
        )
        # A reply sent (with a provider id and a receipt for it) and one still waiting in the queue.
        sent, _ = queue_text(conn, community_id, phone, f"Giulia, {SECRET_WORDS} too", suppression_key=key)
        m = schema.messages.c
        conn.execute(
            sa.update(schema.messages)
            .where(m.id == sent.id)
            .values(
                state=MessageState.sent, provider_message_id=f"SM-{phone[-4:]}", idempotency_key=f"key-{phone[-4:]}"
            )
        )
        conn.execute(
            sa.insert(schema.message_receipts).values(
                provider="sandbox",
                provider_message_id=f"SM-{phone[-4:]}",
                status="delivered",
                provider_status="delivered",
            )
        )
        queue_text(conn, community_id, phone, "still queued for Giulia", suppression_key=key)
    return member_id


async def test_member_record_holds_profile_tags_ledger_and_messages(runtime: Runtime) -> None:
    member_id = await _a_member_with_history(runtime, US)
    with runtime.db.read_engine.connect() as conn:
        record = member_record(conn, member_id)
    assert record["phone"] == US and record["state"] == "subscribed" and record["community"] == "default"
    assert (record["first_name"], record["email"], record["custom"]) == (
        "Giulia",
        "giulia@example.org",
        {"seat": "B12"},
    )
    assert record["tags"] == ["milan"]
    assert [(e["previous_state"], e["new_state"], e["source"]) for e in record["consent"]] == [
        (None, "pending", "sms"),
        ("pending", "subscribed", "sms"),
    ]
    assert record["consent"][1]["evidence"]["text"] == "YES"
    assert [t["body"] for t in record["messages"] if t["direction"] == "inbound"] == ["hi", "YES", SECRET_WORDS]
    assert record["link_clicks"][0]["url"] == "https://example.org/tickets"
    assert record["conversation"] is not None
    assert "America/New_York" in record["time_zones"]
    # Plain JSON (dates as text), so it can be handed to the person as it is.
    assert json.loads(json.dumps(record)) == record


async def test_erasure_leaves_no_trace_of_the_number_or_the_texts(runtime: Runtime) -> None:
    member_id = await _a_member_with_history(runtime, US)
    await _a_member_with_history(runtime, IT)  # someone else, who stays
    before = _everything(runtime)
    with runtime.db.read_engine.connect() as conn:
        sent_to_them = conn.execute(sa.select(sa.func.count()).where(schema.messages.c.phone == US)).scalar_one()
    assert US in before and SECRET_WORDS in before and "Giulia" in before
    key = runtime.key_for("suppression")
    with runtime.db.write_engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # erasure must not lean on ON DELETE CASCADE, which SQLite only honours when told to
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                community_id = get_community(conn).id
                erase_member(conn, community_id, member_id, key=key, now=datetime.now(UTC), reason="asked by email")
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
    after = _everything(runtime)
    # The other member's data is untouched, so a scan that finds nothing is meaningful.
    assert IT in after and SECRET_WORDS in after
    with runtime.db.read_engine.connect() as conn:
        m = schema.messages.c
        theirs = conn.execute(sa.select(schema.messages).where(m.phone == ERASED_PHONE)).mappings().all()
        assert is_suppressed(conn, community_id, key, US)
        assert not is_suppressed(conn, community_id, key, IT)
        assert find_member_id(conn, community_id, US) is None
        others = conn.execute(sa.select(schema.messages).where(m.phone == IT)).mappings().all()
    for needle in (US, US.lstrip("+"), f"SM-{US[-4:]}", f"key-{US[-4:]}"):
        assert needle not in after, needle
    for needle in (
        SECRET_WORDS,
        TEAM_NOTE,
        "Giulia",
        "giulia@example.org",
        "B12",
        "milan",
        "https://example.org/tickets",
    ):
        assert after.count(needle) == before.count(needle) // 2, needle  # only the other member's copies
    # Every message stays, anonymised (statistics do not change); the queued one is cancelled.
    assert len(theirs) == sent_to_them == 5
    assert all(row["body"] == "" and row["member_id"] is None for row in theirs)
    assert MessageState.queued not in {row["state"] for row in theirs}
    assert "erased" in {row["error_code"] for row in theirs}
    assert {row["state"] for row in others} >= {MessageState.queued}


async def test_erasure_is_idempotent_and_lifted_by_opting_in_again(runtime: Runtime) -> None:
    member_id = await _a_member_with_history(runtime, US)
    key = runtime.key_for("suppression")
    now = datetime.now(UTC)
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        erase_member(conn, community_id, member_id, key=key, now=now, reason="request")
        with pytest.raises(MemberNotFound):
            erase_member(conn, community_id, member_id, key=key, now=now, reason="again")
        assert erase_phone(conn, community_id, US, key=key, now=now, reason="again") is False
        rows = conn.execute(sa.select(schema.suppressions)).mappings().all()
        assert [(r["phone_hash"], r["reason"]) for r in rows] == [(phone_hash(key, US), "request")]
        assert lift_suppression(conn, community_id, key, US) is True
        assert lift_suppression(conn, community_id, key, US) is False
        assert not is_suppressed(conn, community_id, key, US)


def test_phone_hash_depends_on_the_key_and_the_number() -> None:
    assert phone_hash(b"k1", US) == phone_hash(b"k1", US)
    assert phone_hash(b"k1", US) != phone_hash(b"k2", US)
    assert phone_hash(b"k1", US) != phone_hash(b"k1", IT)
    assert len(phone_hash(b"k1", US)) == 64


def _message(conn: sa.Connection, body: str, state: MessageState, created_at: datetime) -> None:
    community_id = get_community(conn).id
    sender_id = conn.execute(sa.select(schema.senders.c.id)).scalar()
    inbound = state in (MessageState.received, MessageState.processed)
    conn.execute(
        sa.insert(schema.messages).values(
            community_id=community_id,
            direction=Direction.inbound if inbound else Direction.outbound,
            kind=MessageKind.text if inbound else MessageKind.system,
            state=state,
            sender_id=sender_id,
            phone=US,
            body=body,
            media=[{"url": "https://example.org/a.jpg", "content_type": "image/jpeg"}] if "photo" in body else None,
            segments=1,
            provider="sandbox",
            created_at=created_at,
            updated_at=created_at,
        )
    )


def test_retention_blanks_old_finished_bodies_in_batches(runtime: Runtime) -> None:
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=40)
    with runtime.db.write_engine.begin() as conn:
        for i in range(4):
            _message(conn, f"old text {i}", MessageState.processed, long_ago)
        _message(conn, "old photo", MessageState.delivered, long_ago)
        _message(conn, "old but still queued", MessageState.queued, long_ago)
        _message(conn, "old, not read yet", MessageState.received, long_ago)
        _message(conn, "new text", MessageState.processed, now)
    cutoff = now - timedelta(days=30)
    blanked = []
    with runtime.db.write_engine.begin() as conn:
        while done := erase_old_message_bodies(conn, cutoff, limit=2):
            blanked.append(done)
    assert blanked == [2, 2, 1]
    m = schema.messages.c
    with runtime.db.read_engine.connect() as conn:
        rows = conn.execute(sa.select(m.body, m.media, m.state, m.segments).order_by(m.id)).all()
    assert [body for body, *_ in rows] == ["", "", "", "", "", "old but still queued", "old, not read yet", "new text"]
    assert [state for _, _, state, _ in rows][:5] == [MessageState.processed] * 4 + [MessageState.delivered]
    assert all(media is None and segments == 1 for _, media, _, segments in rows[:5])
