from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.db import schema
from openline.providers import inbound_webhooks
from openline.providers.base import InboundSms, Media
from openline.providers.sandbox import SIGNATURE_HEADER, SandboxWebhook, encode_inbound
from openline.runtime import Runtime
from openline.senders import SANDBOX_NUMBER

from .conftest import count

PHONE = "+393471234567"


def signed(runtime: Runtime, sms: InboundSms) -> tuple[bytes, dict[str, str]]:
    body = encode_inbound(sms)
    signature = SandboxWebhook(runtime.key_for("sandbox-webhook")).sign(body)
    return body, {SIGNATURE_HEADER: signature, "content-type": "application/x-www-form-urlencoded"}


def text(message_id: str = "m-1", body: str = "ciao", **changes: object) -> InboundSms:
    fields: dict[str, object] = {
        "provider": "sandbox",
        "provider_message_id": message_id,
        "from_number": PHONE,
        "to": SANDBOX_NUMBER,
        "body": body,
    }
    fields.update(changes)
    return InboundSms(**fields)  # type: ignore[arg-type]


async def test_a_text_is_stored_once_even_when_posted_twice(client: httpx.AsyncClient, runtime: Runtime) -> None:
    body, headers = signed(runtime, text())
    first = await client.post("/webhooks/sandbox", content=body, headers=headers)
    second = await client.post("/webhooks/sandbox", content=body, headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    with runtime.db.read_engine.connect() as conn:
        rows = conn.execute(sa.select(schema.messages)).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert (row["direction"], row["state"], row["kind"]) == ("inbound", "received", "text")
    assert (row["phone"], row["body"], row["provider_message_id"]) == (PHONE, "ciao", "m-1")


async def test_concurrent_replays_store_one_row(client: httpx.AsyncClient, runtime: Runtime) -> None:
    body, headers = signed(runtime, text("burst"))
    answers = await asyncio.gather(
        *(client.post("/webhooks/sandbox", content=body, headers=headers) for _ in range(20))
    )
    assert {a.status_code for a in answers} == {200}
    assert count(runtime.db, schema.messages) == 1


async def test_media_and_unusual_text_are_stored_intact(client: httpx.AsyncClient, runtime: Runtime) -> None:
    odd = "नमस्ते 👋 tab\there\r\nline" + "x" * 5000
    sms = text("mms", odd, media=(Media("https://media.example/1.jpg", "image/jpeg"), Media("https://m/2.ogg")))
    body, headers = signed(runtime, sms)
    assert (await client.post("/webhooks/sandbox", content=body, headers=headers)).status_code == 200
    with runtime.db.read_engine.connect() as conn:
        row = conn.execute(sa.select(schema.messages.c.body, schema.messages.c.media)).one()
    assert row.body == odd
    assert row.media == [
        {"url": "https://media.example/1.jpg", "content_type": "image/jpeg"},
        {"url": "https://m/2.ogg", "content_type": None},
    ]


@pytest.mark.parametrize(
    ("tamper", "error"),
    [
        (lambda h: h.pop(SIGNATURE_HEADER), "missing x-openline-signature header"),
        (lambda h: h.update({SIGNATURE_HEADER: "sha256=" + "0" * 64}), "does not match"),
    ],
)
async def test_forged_or_missing_signatures_are_refused(
    client: httpx.AsyncClient, runtime: Runtime, tamper: object, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    body, headers = signed(runtime, text())
    tamper(headers)  # type: ignore[operator]
    answer = await client.post("/webhooks/sandbox", content=body, headers=headers)
    assert answer.status_code == 403
    assert error in answer.json()["error"]
    assert count(runtime.db, schema.messages) == 0
    assert runtime.secret_key.decode() not in caplog.text


async def test_a_signature_for_another_body_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _, headers = signed(runtime, text(body="original"))
    forged_body = encode_inbound(text(body="changed"))
    assert (await client.post("/webhooks/sandbox", content=forged_body, headers=headers)).status_code == 403


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ("from=%2B393471234567&to=%2B12025550100&body=x", "missing field 'message_id'"),
        ("message_id=1&to=%2B12025550100&body=x", "missing field 'from'"),
        ("message_id=1&from=%2B393471234567&body=x", "missing field 'to'"),
        ("message_id=1&from=%2B393471234567&to=%2B12025550100", "missing field 'body'"),
        ("message_id=1&from=12345&to=%2B12025550100&body=x", "field 'from':"),
        ("message_id=1&message_id=2&from=%2B393471234567&to=%2B12025550100&body=x", "given 2 times"),
    ],
)
async def test_malformed_webhooks_name_the_field(
    client: httpx.AsyncClient, runtime: Runtime, fields: str, error: str
) -> None:
    body = fields.encode()
    headers = {SIGNATURE_HEADER: SandboxWebhook(runtime.key_for("sandbox-webhook")).sign(body)}
    answer = await client.post("/webhooks/sandbox", content=body, headers=headers)
    assert answer.status_code == 400
    assert error in answer.json()["error"]


async def test_non_utf8_body_is_a_clear_400(client: httpx.AsyncClient, runtime: Runtime) -> None:
    body = b"message_id=1&body=\xff\xfe"
    headers = {SIGNATURE_HEADER: SandboxWebhook(runtime.key_for("sandbox-webhook")).sign(body)}
    answer = await client.post("/webhooks/sandbox", content=body, headers=headers)
    assert answer.status_code == 400
    assert "not UTF-8" in answer.json()["error"]


async def test_a_text_to_an_unknown_number_is_refused_and_logged(
    client: httpx.AsyncClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    body, headers = signed(runtime, text(to="+12025550199"))
    answer = await client.post("/webhooks/sandbox", content=body, headers=headers)
    assert answer.status_code == 404
    assert "+12025550199 is not a configured sandbox sender" in answer.json()["error"]
    assert "+12025550199 is not a sandbox sender here" in caplog.text
    assert count(runtime.db, schema.messages) == 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
async def test_garbage_bodies_never_store_or_crash(client: httpx.AsyncClient, runtime: Runtime, garbage: bytes) -> None:
    headers = {SIGNATURE_HEADER: SandboxWebhook(runtime.key_for("sandbox-webhook")).sign(garbage)}
    answer = await client.post("/webhooks/sandbox", content=garbage, headers=headers)
    assert answer.status_code in {200, 400, 404}
    if answer.status_code != 200:
        assert answer.json()["error"]


async def test_signature_checks_can_be_turned_off_for_local_tests(runtime: Runtime) -> None:
    from openline.web import create_app

    settings = runtime.settings.model_copy(update={"sandbox_verify_signatures": False})
    relaxed = dataclasses.replace(runtime, settings=settings, webhooks=inbound_webhooks(settings, b"unused"))
    transport = httpx.ASGITransport(app=create_app(relaxed, own_runtime=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        answer = await http.post("/webhooks/sandbox", content=encode_inbound(text("unsigned")))
    assert answer.status_code == 200


async def test_a_nul_character_is_kept_visible(client: httpx.AsyncClient, runtime: Runtime) -> None:
    body, headers = signed(runtime, text("nul", "mail me\x00example.org"))
    assert (await client.post("/webhooks/sandbox", content=body, headers=headers)).status_code == 200
    with runtime.db.read_engine.connect() as conn:
        assert conn.execute(sa.select(schema.messages.c.body)).scalar_one() == "mail me\u2400example.org"


@pytest.mark.parametrize(
    ("path", "error"),
    [("/webhooks/twilio", "twilio is not configured here"), ("/webhooks/carrier-pigeon", "unknown provider")],
)
async def test_unconfigured_or_unknown_providers_are_refused(client: httpx.AsyncClient, path: str, error: str) -> None:
    answer = await client.post(path, content=b"From=%2B14155550100&Body=hi")
    assert answer.status_code == 404
    assert error in answer.json()["error"]


async def test_a_long_text_is_stored_whole_and_a_huge_body_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    long_text = "🎉 concatenated SMS " * 2000  # ~40,000 characters: far past any carrier's limit, still a text
    body, headers = signed(runtime, text("long", long_text))
    assert (await client.post("/webhooks/sandbox", content=body, headers=headers)).status_code == 200
    with runtime.db.read_engine.connect() as conn:
        assert conn.execute(sa.select(schema.messages.c.body)).scalar_one() == long_text
    huge, headers = signed(runtime, text("huge", "x" * 1_100_000))
    answer = await client.post("/webhooks/sandbox", content=huge, headers=headers)
    assert answer.status_code == 413
    assert "larger than 1000000 bytes" in answer.json()["error"]
