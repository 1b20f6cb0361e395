"""The conversation engine on SQLite and PostgreSQL: first contact, double opt-in, STOP/START/HELP."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading

import httpx
import pytest
import sqlalchemy as sa

from openline.communities import get_community
from openline.db import schema
from openline.engine import Engine
from openline.engine.config import CommunityConfig, KeywordRule, load_config, save_config
from openline.engine.process import ENGINE_LOCK
from openline.inbox import View, list_conversations
from openline.providers.base import InboundSms
from openline.runtime import Runtime
from openline.senders import SANDBOX_NUMBER
from openline.states import MemberState

from .conftest import count

IT, IN, US = "+393471234567", "+919876543210", "+12025550143"
_ids = itertools.count()


async def send(runtime: Runtime, phone: str, body: str) -> None:
    await runtime.ingest.receive(InboundSms("sandbox", f"t{next(_ids)}", phone, SANDBOX_NUMBER, body))


def engine(runtime: Runtime) -> Engine:
    return Engine(
        link_key=runtime.key_for("member-link"),
        base_url="https://sms.example.org",
        profile_key=runtime.key_for("member-profile"),
        suppression_key=runtime.key_for("suppression"),
    )


async def process(runtime: Runtime, batch: int = 7) -> None:
    e = engine(runtime)
    while await runtime.writer.run(lambda conn: e.process_pending(conn, batch)):
        pass


def replies(runtime: Runtime, phone: str) -> list[str]:
    m = schema.messages.c
    with runtime.db.read_engine.connect() as conn:
        return list(
            conn.execute(sa.select(m.body).where(m.phone == phone, m.direction == "outbound").order_by(m.id)).scalars()
        )


def member(runtime: Runtime, phone: str) -> sa.RowMapping:
    with runtime.db.read_engine.connect() as conn:
        return conn.execute(sa.select(schema.members).where(schema.members.c.phone == phone)).mappings().one()


def ledger(runtime: Runtime, phone: str) -> list[tuple[str | None, str]]:
    e = schema.consent_events.c
    with runtime.db.read_engine.connect() as conn:
        rows = conn.execute(
            sa.select(e.previous_state, e.new_state)
            .join_from(schema.consent_events, schema.members)
            .where(schema.members.c.phone == phone)
            .order_by(e.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_twenty_texts_during_the_flood_get_one_autotext(runtime: Runtime) -> None:
    for i in range(20):
        await send(runtime, US, f"omg hi {i}")
    await process(runtime)
    assert len(replies(runtime, US)) == 1
    assert replies(runtime, US)[0].startswith("Hey, it's My community. This is an autotext")
    assert "Reply YES" in replies(runtime, US)[0] and "Msg & data rates may apply" in replies(runtime, US)[0]
    assert member(runtime, US)["state"] == "pending"
    assert ledger(runtime, US) == [(None, "pending")]
    await send(runtime, US, "one more")
    await process(runtime)
    assert len(replies(runtime, US)) == 1
    m = schema.messages.c
    assert count(runtime.db, schema.messages, m.state == "received") == 0


async def test_yes_subscribes_with_evidence_and_a_working_link(runtime: Runtime, client: httpx.AsyncClient) -> None:
    await send(runtime, US, "hello!")
    await process(runtime)
    await send(runtime, US, "Yes!")
    await process(runtime)
    assert member(runtime, US)["state"] == "subscribed"
    assert ledger(runtime, US) == [(None, "pending"), ("pending", "subscribed")]
    with runtime.db.read_engine.connect() as conn:
        evidence = conn.execute(
            sa.select(schema.consent_events.c.evidence).order_by(schema.consent_events.c.id.desc())
        ).first()
    assert evidence is not None and evidence[0]["text"] == "Yes!" and evidence[0]["provider"] == "sandbox"
    confirmation = replies(runtime, US)[-1]
    link = re.search(r"https://sms\.example\.org(/join/\S+)", confirmation)
    assert link, confirmation
    page = await client.get(link.group(1))
    assert page.status_code == 200
    assert 'name="first_name"' in page.text
    assert (await client.get("/join/1.1.forged")).status_code == 404


async def test_stop_confirms_once_then_silence_until_start(runtime: Runtime) -> None:
    await send(runtime, US, "hi")
    await send(runtime, US, "YES")
    await send(runtime, US, "STOP")
    await process(runtime)
    assert member(runtime, US)["state"] == "unsubscribed"
    assert replies(runtime, US)[-1].startswith("My community: you're unsubscribed")
    before = len(replies(runtime, US))
    for text in ("stop", "please answer", "HELP me with this", "Stop."):
        await send(runtime, US, text)
    await process(runtime)
    assert len(replies(runtime, US)) == before  # silence
    await send(runtime, US, "START")
    await process(runtime)
    assert member(runtime, US)["state"] == "subscribed"
    assert ledger(runtime, US) == [
        (None, "pending"),
        ("pending", "subscribed"),
        ("subscribed", "unsubscribed"),
        ("unsubscribed", "subscribed"),
    ]


async def test_a_first_text_that_is_stop_gets_no_autotext(runtime: Runtime) -> None:
    await send(runtime, US, "STOP")
    await process(runtime)
    assert member(runtime, US)["state"] == "unsubscribed"
    assert len(replies(runtime, US)) == 1 and "unsubscribed" in replies(runtime, US)[0]


async def test_help_is_answered_in_the_members_language(runtime: Runtime) -> None:
    await send(runtime, IT, "Ciao Ashton, ti seguo da sempre!")
    await process(runtime)
    assert member(runtime, IT)["language"] == "it"
    assert replies(runtime, IT)[0].startswith("Ciao, sono My community")
    await send(runtime, IT, "AIUTO")
    await process(runtime)
    assert "Assistenza" in replies(runtime, IT)[-1]


async def test_three_people_in_three_languages(runtime: Runtime) -> None:
    await send(runtime, US, "hey it's me, huge fan of your music")
    await send(runtime, IT, "Ciao! Sono un grande fan della tua musica")
    await send(runtime, IN, "नमस्ते, मैं आपका बहुत बड़ा प्रशंसक हूँ")
    await process(runtime)
    assert [member(runtime, p)["language"] for p in (US, IT, IN)] == ["en", "it", "hi"]
    for phone, yes, stop, start in (
        (US, "yes", "STOP", "START"),
        (IT, "Sì", "BASTA", "START"),
        (IN, "हाँ", "रोकें", "START"),
    ):
        await send(runtime, phone, yes)
        await process(runtime)
        assert member(runtime, phone)["state"] == "subscribed"
        await send(runtime, phone, stop)
        await process(runtime)
        assert member(runtime, phone)["state"] == "unsubscribed"
        await send(runtime, phone, start)
        await process(runtime)
        assert member(runtime, phone)["state"] == "subscribed"
        assert len(replies(runtime, phone)) == 4  # autotext, confirmed, stopped, confirmed
    assert "नमस्ते" in replies(runtime, IN)[0] and "सदस्यता बंद" in replies(runtime, IN)[2]


async def test_keywords_tag_members_and_may_answer(runtime: Runtime) -> None:
    with runtime.db.write_engine.begin() as conn:
        community = get_community(conn)
        config = load_config(conn, community.id).model_copy(
            update={"keywords": {"MILAN": KeywordRule(tag="milan", reply="See you in Milan!", language="it")}}
        )
        save_config(conn, community.id, CommunityConfig.model_validate(config.model_dump()))
    await send(runtime, US, "MILAN")
    await process(runtime)
    assert member(runtime, US)["language"] == "it"
    assert len(replies(runtime, US)) == 1  # pending: the autotext only, in Italian
    await send(runtime, US, "si")
    await send(runtime, US, "milan")
    await process(runtime)
    assert replies(runtime, US)[-1] == "See you in Milan!"
    with runtime.db.read_engine.connect() as conn:
        tags = conn.execute(sa.select(schema.member_tags.c.tag)).scalars().all()
    assert tags == ["milan"]


async def test_pending_people_stay_out_of_the_inbox(runtime: Runtime) -> None:
    await send(runtime, US, "hi")
    await send(runtime, IT, "ciao a tutti quanti")
    await send(runtime, IT, "si")
    await send(runtime, IT, "quando vieni in Italia?")
    await process(runtime)
    with runtime.db.read_engine.connect() as conn:
        community_id = get_community(conn).id
        inbox = list_conversations(conn, community_id, View.inbox)
        pending = list_conversations(conn, community_id, View.pending)
    assert [(c.phone, c.unread) for c in inbox] == [(IT, 3)]
    assert [c.phone for c in pending] == [US]


async def test_a_text_the_engine_cannot_handle_does_not_block_the_rest(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Engine._handle

    def fragile(self: Engine, conn: sa.Connection, text: object) -> None:
        if getattr(text, "body", "") == "poison":
            now = schema.utcnow()
            conn.execute(  # half-done work that must not survive
                sa.insert(schema.members).values(
                    community_id=text.community_id,
                    phone="+12025550177",
                    state="new",  # type: ignore[attr-defined]
                    custom={},
                    created_at=now,
                    updated_at=now,
                )
            )
            raise RuntimeError("cannot handle this")
        original(self, conn, text)

    monkeypatch.setattr(Engine, "_handle", fragile)
    await send(runtime, US, "poison")
    await send(runtime, IT, "ciao come stai oggi")
    await process(runtime)
    m = schema.messages.c
    with runtime.db.read_engine.connect() as conn:
        failed = conn.execute(sa.select(m.state, m.error_reason).where(m.body == "poison")).one()
    assert failed.state == "failed" and "cannot handle this" in failed.error_reason
    assert count(runtime.db, schema.members, schema.members.c.phone == "+12025550177") == 0  # rolled back
    assert member(runtime, IT)["state"] == MemberState.pending


async def test_only_one_engine_runs_at_a_time_on_postgresql(runtime: Runtime) -> None:
    if runtime.db.is_sqlite:
        pytest.skip("SQLite has one writer; the advisory lock is PostgreSQL's")
    await send(runtime, US, "hello")
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with runtime.db.write_engine.begin() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ENGINE_LOCK)))
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(10)
    try:
        with runtime.db.write_engine.begin() as conn:
            assert engine(runtime).process_pending(conn) == 0  # another engine holds the lock
    finally:
        release.set()
        thread.join()
    await process(runtime)
    assert len(replies(runtime, US)) == 1


async def test_the_worker_loop_answers_texts_as_they_arrive(runtime: Runtime) -> None:
    from openline.worker import run_engine

    stop = asyncio.Event()
    loop = asyncio.create_task(run_engine(runtime, stop))
    try:
        await send(runtime, US, "hello there")
        for _ in range(100):
            if replies(runtime, US):
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await loop
    assert len(replies(runtime, US)) == 1


async def test_owner_words_and_texts_are_used(runtime: Runtime) -> None:
    from openline.engine.config import add_word, set_text, update_config
    from openline.engine.keywords import Intent
    from openline.engine.texts import SystemText

    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        update_config(conn, community_id, programme="Ashton")
        add_word(conn, community_id, Intent.stop, "it", "FERMATI")
        set_text(conn, community_id, "en", SystemText.autotext, "Yo from {programme}! YES to join, STOP to stop.")
    await send(runtime, US, "hello there friend")
    await send(runtime, US, "Fermati!")
    await process(runtime)
    assert replies(runtime, US)[0] == "Yo from Ashton! YES to join, STOP to stop."
    assert member(runtime, US)["state"] == "unsubscribed"
    assert replies(runtime, US)[1].startswith("Ashton: ")


async def test_a_sender_can_have_its_own_texts(runtime: Runtime) -> None:
    from openline.engine.config import set_text
    from openline.engine.texts import SystemText
    from openline.senders import add_sender

    second = "+12025550101"
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        add_sender(conn, community_id, second, provider="sandbox")
        set_text(conn, community_id, "en", SystemText.autotext, "Milan line of {programme}: reply YES.", sender=second)
        with pytest.raises(ValueError, match="not one of this community's senders"):
            set_text(conn, community_id, "en", SystemText.autotext, "x", sender="+12025550199")
    runtime.senders.reload()
    await runtime.ingest.receive(InboundSms("sandbox", "s2-1", US, second, "hello there friend"))
    await send(runtime, IN, "hello there friend")
    await process(runtime)
    assert replies(runtime, US) == ["Milan line of My community: reply YES."]
    assert replies(runtime, IN)[0].startswith("Hey, it's My community")


async def test_a_smart_encoding_sender_straightens_its_texts(runtime: Runtime) -> None:
    from openline.engine.config import set_text
    from openline.engine.texts import SystemText
    from openline.senders import add_sender

    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        add_sender(conn, community_id, "+12025550101", provider="sandbox", smart_encoding=True)
        set_text(
            conn,
            community_id,
            "en",
            SystemText.autotext,
            "It\u2019s {programme} \u2014 reply YES",
            sender="+12025550101",
        )
    runtime.senders.reload()
    await runtime.ingest.receive(InboundSms("sandbox", "smart-1", US, "+12025550101", "hello there friend"))
    await process(runtime)
    assert replies(runtime, US) == ["It's My community - reply YES"]
