"""Sending one text through the API: validation, consent, idempotency, and the message resource."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from openline.communities import get_community
from openline.db import schema
from openline.runtime import Runtime
from openline.states import MemberState

from .conftest import count
from .test_api import make_token
from .test_dispatcher import member


async def test_send_one_text_and_read_it_back(client: httpx.AsyncClient, runtime: Runtime) -> None:
    auth = {"Authorization": f"Bearer {make_token(runtime)}"}
    answer = await client.post(
        "/api/v1/messages",
        headers=auth,
        json={
            "to": "+39 347 123 4567",
            "body": "Ciao! Il concerto è domani 🎉",
            "media_urls": ["https://m.example/a.jpg"],
        },
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["to"], created["status"], created["encoding"], created["segments"]) == (
        "+393471234567",
        "queued",
        "UCS-2",
        1,
    )
    assert created["sender"] == "+12025550100" and created["media_urls"] == ["https://m.example/a.jpg"]
    again = await client.get(f"/api/v1/messages/{created['id']}", headers=auth)
    assert again.status_code == 200 and again.json()["id"] == created["id"]
    assert (await client.get("/api/v1/messages/999999", headers=auth)).status_code == 404
    gsm = (await client.post("/api/v1/messages", headers=auth, json={"to": "+12025550143", "body": "a" * 161})).json()
    assert (gsm["encoding"], gsm["segments"]) == ("GSM-7", 2)


async def test_an_idempotency_key_never_sends_twice(client: httpx.AsyncClient, runtime: Runtime) -> None:
    auth = {"Authorization": f"Bearer {make_token(runtime)}", "Idempotency-Key": "order-42-shipped"}
    text = {"to": "+12025550143", "body": "Your order shipped"}
    first = await client.post("/api/v1/messages", headers=auth, json=text)
    second = await client.post("/api/v1/messages", headers=auth, json=text)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert count(runtime.db, schema.messages) == 1
    other = await client.post("/api/v1/messages", headers=auth, json={**text, "body": "something else"})
    assert other.status_code == 409


async def test_refusals_are_clear(client: httpx.AsyncClient, runtime: Runtime) -> None:
    auth = {"Authorization": f"Bearer {make_token(runtime)}"}
    member(runtime, "+12025550143", MemberState.unsubscribed)
    cases = [
        ({"to": "+12025550143", "body": "hi"}, "has opted out"),
        ({"to": "12", "body": "hi"}, "not a phone number"),
        ({"to": "+12025550144", "body": ""}, "needs a body"),
        ({"to": "+12025550144", "body": "x" * 1601}, "at most 1600"),
        ({"to": "+12025550144", "body": "hi", "sender": "+12025550199"}, "not one of this community's senders"),
        ({"to": "+12025550144", "body": "hi", "media_urls": ["ftp://x"]}, "not an http(s) URL"),
    ]
    for payload, error in cases:
        answer = await client.post("/api/v1/messages", headers=auth, json=payload)
        assert answer.status_code == 422, payload
        assert error in str(answer.json()["detail"]), (payload, answer.json())
    assert count(runtime.db, schema.messages) == 0
    assert (await client.post("/api/v1/messages", json={"to": "+12025550144", "body": "x"})).status_code == 401


async def test_the_sticky_sender_answers(client: httpx.AsyncClient, runtime: Runtime) -> None:
    from openline.senders import add_sender

    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        second = add_sender(conn, community_id, "+12025550101", provider="sandbox")
    someone = member(runtime, "+12025550143", MemberState.subscribed)
    with runtime.db.write_engine.begin() as conn:
        conn.execute(
            sa.insert(schema.conversations).values(
                community_id=community_id,
                member_id=someone,
                sender_id=second.id,
                unread=0,
                last_message_at=schema.utcnow(),
                archived=False,
            )
        )
    auth = {"Authorization": f"Bearer {make_token(runtime)}"}
    answer = await client.post("/api/v1/messages", headers=auth, json={"to": "+12025550143", "body": "hey"})
    assert answer.json()["sender"] == "+12025550101"


async def test_a_smart_encoding_sender_keeps_texts_in_gsm7(client: httpx.AsyncClient, runtime: Runtime) -> None:
    from openline.senders import add_sender

    with runtime.db.write_engine.begin() as conn:
        add_sender(conn, get_community(conn).id, "+12025550101", provider="sandbox", smart_encoding=True)
    auth = {"Authorization": f"Bearer {make_token(runtime)}", "Idempotency-Key": "curly"}
    text = {"to": "+12025550143", "body": "Don\u2019t miss it \u2014 8pm", "sender": "+12025550101"}
    first = (await client.post("/api/v1/messages", headers=auth, json=text)).json()
    assert (first["body"], first["encoding"]) == ("Don't miss it - 8pm", "GSM-7")
    again = await client.post("/api/v1/messages", headers=auth, json=text)
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    plain = (
        await client.post(
            "/api/v1/messages",
            headers={"Authorization": auth["Authorization"]},
            json={**text, "sender": "+12025550100"},
        )
    ).json()
    assert plain["encoding"] == "UCS-2"  # the sandbox sender has it off
