"""A text to a Twilio number is answered through (a local fake of) Twilio, delivered, and explained."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from openline.communities import get_community
from openline.db import schema
from openline.dispatcher import Dispatcher
from openline.providers import explain_error, inbound_webhooks
from openline.providers.fake_twilio import FakeTwilio
from openline.providers.twilio_send import TwilioSender
from openline.receipts import apply_receipts
from openline.runtime import Runtime
from openline.senders import add_sender
from openline.web import create_app

from .test_api import make_token
from .test_engine import process
from .test_webhooks_twilio import NUMBER, TOKEN, twilio_post

SID = "AC" + "1" * 32
m = schema.messages.c


@dataclass
class Setup:
    http: httpx.AsyncClient
    runtime: Runtime
    fake: FakeTwilio
    sender: TwilioSender


@pytest.fixture
async def setup(runtime: Runtime) -> AsyncIterator[Setup]:
    settings = runtime.settings.model_copy(update={"twilio_auth_token": SecretStr(TOKEN), "twilio_account_sid": SID})
    with_twilio = dataclasses.replace(runtime, settings=settings, webhooks=inbound_webhooks(settings, b"k"))
    with runtime.db.write_engine.begin() as conn:
        add_sender(conn, get_community(conn).id, NUMBER, provider="twilio", mps=10)
    runtime.senders.reload()
    fake = FakeTwilio(SID, TOKEN)
    fake.add_number(NUMBER)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="https://api.twilio.com") as api,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(with_twilio, own_runtime=False)),
            base_url="https://sms.example.org",
        ) as http,
    ):
        yield Setup(http, with_twilio, fake, TwilioSender(api, account_sid=SID, auth_token=TOKEN))


async def dispatch_until(setup: Setup, done: int) -> None:
    dispatcher = Dispatcher(
        setup.runtime.db,
        setup.runtime.writer,
        {"twilio": setup.sender},
        status_callback=lambda provider: f"https://sms.example.org/webhooks/{provider}/status",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    for _ in range(200):
        with setup.runtime.db.read_engine.connect() as conn:
            settled = conn.execute(
                sa.select(sa.func.count()).where(m.direction == "outbound", m.state.in_(["sent", "failed"]))
            ).scalar_one()
        if settled >= done:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task


async def test_from_inbound_text_to_delivered_reply(setup: Setup) -> None:
    body, headers = twilio_post("SM" + "c" * 32, "+12025550143", "hey, love your work")
    assert (await setup.http.post("/webhooks/twilio", content=body, headers=headers)).status_code == 200
    await process(setup.runtime)
    await dispatch_until(setup, 1)
    assert len(setup.fake.sent) == 1
    record = setup.fake.sent[0]
    assert record.to == "+12025550143" and record.from_ == NUMBER and "autotext" in record.body
    assert record.status_callback == "https://sms.example.org/webhooks/twilio/status"
    url, callback, callback_headers = setup.fake.status_callback_request(
        record, "delivered", url=record.status_callback
    )
    answer = await setup.http.post(
        url.removeprefix("https://sms.example.org"), content=callback, headers=callback_headers
    )
    assert answer.status_code == 200
    with setup.runtime.db.write_engine.begin() as conn:
        assert apply_receipts(conn, schema.utcnow(), explain=explain_error) == 1
    auth = {"Authorization": f"Bearer {make_token(setup.runtime)}"}
    with setup.runtime.db.read_engine.connect() as conn:
        reply_id = conn.execute(sa.select(m.id).where(m.direction == "outbound")).scalar_one()
    shown = (await setup.http.get(f"/api/v1/messages/{reply_id}", headers=auth)).json()
    assert (shown["status"], shown["sender"], shown["encoding"]) == ("delivered", NUMBER, "GSM-7")


async def test_a_refused_text_says_why(setup: Setup) -> None:
    auth = {"Authorization": f"Bearer {make_token(setup.runtime)}"}
    created = await setup.http.post(
        "/api/v1/messages", headers=auth, json={"to": "+12025550143", "body": "hi", "sender": NUMBER}
    )
    setup.fake.fail_next(1, 400, 21211, "The 'To' number +12025550143 is not a valid phone number.")
    await dispatch_until(setup, 1)
    shown = (await setup.http.get(f"/api/v1/messages/{created.json()['id']}", headers=auth)).json()
    assert shown["status"] == "failed"
    assert shown["error_code"] == "21211"
    assert shown["reason"]


async def test_an_undelivered_receipt_says_why(setup: Setup) -> None:
    auth = {"Authorization": f"Bearer {make_token(setup.runtime)}"}
    created = (
        await setup.http.post(
            "/api/v1/messages", headers=auth, json={"to": "+12025550143", "body": "hi", "sender": NUMBER}
        )
    ).json()
    await dispatch_until(setup, 1)
    record = setup.fake.sent[0]
    _, callback, headers = setup.fake.status_callback_request(
        record, "undelivered", "30003", url="https://sms.example.org/webhooks/twilio/status"
    )
    assert (await setup.http.post("/webhooks/twilio/status", content=callback, headers=headers)).status_code == 200
    with setup.runtime.db.write_engine.begin() as conn:
        apply_receipts(conn, schema.utcnow(), explain=explain_error)
    shown = (await setup.http.get(f"/api/v1/messages/{created['id']}", headers=auth)).json()
    assert (shown["status"], shown["error_code"]) == ("undelivered", "30003")
    assert "unreachable" in shown["reason"].lower()
