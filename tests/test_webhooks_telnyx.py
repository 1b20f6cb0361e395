"""Telnyx through the app: an Ed25519-signed inbound text is stored; a signed status event is not."""

from __future__ import annotations

import base64
import dataclasses
import json
import time

import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from openline.communities import get_community
from openline.db import schema
from openline.providers import inbound_webhooks
from openline.runtime import Runtime
from openline.senders import add_sender
from openline.web import create_app

from .conftest import count

NUMBER = "+14155550123"


def event(event_type: str, message_id: str) -> bytes:
    payload = {
        "id": message_id,
        "direction": "inbound",
        "type": "SMS",
        "from": {"phone_number": "+12025550143"},
        "to": [{"phone_number": NUMBER}],
        "text": "hello from telnyx",
        "media": [],
    }
    return json.dumps({"data": {"event_type": event_type, "id": "evt-" + message_id, "payload": payload}}).encode()


async def test_signed_events_through_the_app(runtime: Runtime) -> None:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    settings = runtime.settings.model_copy(update={"telnyx_public_key": public})
    with_telnyx = dataclasses.replace(runtime, settings=settings, webhooks=inbound_webhooks(settings, b"k"))
    with runtime.db.write_engine.begin() as conn:
        add_sender(conn, get_community(conn).id, NUMBER, provider="telnyx")
    runtime.senders.reload()

    def signed(body: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        signature = key.sign(stamp.encode() + b"|" + body)
        return {
            "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
            "telnyx-timestamp": stamp,
            "content-type": "application/json",
        }

    transport = httpx.ASGITransport(app=create_app(with_telnyx, own_runtime=False))
    async with httpx.AsyncClient(transport=transport, base_url="https://sms.example.org") as http:
        inbound = event("message.received", "m-1")
        assert (await http.post("/webhooks/telnyx", content=inbound, headers=signed(inbound))).status_code == 200
        status = event("message.finalized", "m-2")
        assert (await http.post("/webhooks/telnyx", content=status, headers=signed(status))).status_code == 200
        forged = event("message.received", "m-3")
        assert (await http.post("/webhooks/telnyx", content=forged, headers=signed(inbound))).status_code == 403
    m = schema.messages.c
    with runtime.db.read_engine.connect() as conn:
        stored = conn.execute(sa.select(m.provider, m.provider_message_id, m.body)).all()
    assert stored == [("telnyx", "m-1", "hello from telnyx")]
    assert count(runtime.db, schema.messages) == 1
