"""End to end with requests signed like Twilio's (by the official package): stored once, answered once."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from openline.communities import get_community
from openline.db import schema
from openline.providers import inbound_webhooks
from openline.providers.twilio import EMPTY_TWIML
from openline.runtime import Runtime
from openline.senders import add_sender
from openline.web import create_app

from .test_engine import process, replies

TOKEN = "twilio-test-auth-token"
NUMBER = "+14155550100"
URL = "https://sms.example.org/webhooks/twilio"


@pytest.fixture
async def twilio(runtime: Runtime) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    settings = runtime.settings.model_copy(update={"twilio_auth_token": SecretStr(TOKEN)})
    with_twilio = dataclasses.replace(runtime, settings=settings, webhooks=inbound_webhooks(settings, b"k"))
    with runtime.db.write_engine.begin() as conn:
        add_sender(conn, get_community(conn).id, NUMBER, provider="twilio")
    runtime.senders.reload()
    transport = httpx.ASGITransport(app=create_app(with_twilio, own_runtime=False))
    async with httpx.AsyncClient(transport=transport, base_url="https://sms.example.org") as http:
        yield http, with_twilio


def twilio_post(sid: str, phone: str, body: str, token: str = TOKEN) -> tuple[bytes, dict[str, str]]:
    fields = {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC" + "1" * 32,
        "From": phone,
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(token).compute_signature(URL, fields)
    return urlencode(fields).encode(), {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def test_a_twilio_text_is_stored_once_and_answered_once(twilio: tuple[httpx.AsyncClient, Runtime]) -> None:
    http, runtime = twilio
    body, headers = twilio_post("SM" + "a" * 32, "+12025550143", "hey! love the show")
    for _ in range(3):  # Twilio retrying (connection overrides) or a replayed request
        answer = await http.post("/webhooks/twilio", content=body, headers=headers)
        assert answer.status_code == 200
        assert answer.content == EMPTY_TWIML
        assert answer.headers["content-type"].startswith("application/xml")
    await process(runtime)
    m = schema.messages.c
    with runtime.db.read_engine.connect() as conn:
        inbound = conn.execute(sa.select(m.provider, m.provider_message_id).where(m.direction == "inbound")).all()
    assert inbound == [("twilio", "SM" + "a" * 32)]
    assert len(replies(runtime, "+12025550143")) == 1


async def test_twilio_signed_stop_and_start(twilio: tuple[httpx.AsyncClient, Runtime]) -> None:
    http, runtime = twilio
    for i, text in enumerate(["Ciao! sono una tua grande fan", "Sì", "BASTA", "START"]):
        body, headers = twilio_post(f"SM{i:032d}", "+393471234567", text)
        assert (await http.post("/webhooks/twilio", content=body, headers=headers)).status_code == 200
        await process(runtime)
    with runtime.db.read_engine.connect() as conn:
        state = conn.execute(sa.select(schema.members.c.state)).scalar_one()
    assert state == "subscribed"
    assert len(replies(runtime, "+393471234567")) == 4


async def test_a_request_signed_with_another_token_is_refused(twilio: tuple[httpx.AsyncClient, Runtime]) -> None:
    http, _ = twilio
    body, headers = twilio_post("SM" + "b" * 32, "+12025550143", "hi", token="someone-elses-token")
    answer = await http.post("/webhooks/twilio", content=body, headers=headers)
    assert answer.status_code == 403
