from __future__ import annotations

import dataclasses

import httpx

from openline.db import schema
from openline.runtime import Runtime
from openline.senders import SANDBOX_NUMBER

from .conftest import count


async def test_the_page_is_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/simulator")
    assert page.status_code == 200
    assert "Phone simulator" in page.text
    senders = (await client.get("/simulator/senders")).json()
    assert [s["address"] for s in senders] == [SANDBOX_NUMBER]


async def test_a_simulated_text_is_stored_once_and_shown(client: httpx.AsyncClient, runtime: Runtime) -> None:
    text = {"from": "+919876543210", "to": SANDBOX_NUMBER, "body": "नमस्ते", "message_id": "sim-1"}
    assert (await client.post("/simulator/send", json=text)).status_code == 200
    assert (await client.post("/simulator/send", json=text)).status_code == 200  # a retry
    assert count(runtime.db, schema.messages) == 1
    thread = (await client.get("/simulator/thread", params={"phone": "+919876543210", "to": SANDBOX_NUMBER})).json()
    assert [(m["direction"], m["body"]) for m in thread] == [("inbound", "नमस्ते")]


async def test_simulator_errors_are_clear(client: httpx.AsyncClient) -> None:
    bad_phone = await client.post("/simulator/send", json={"from": "555", "to": SANDBOX_NUMBER, "body": "x"})
    assert bad_phone.status_code == 400
    assert "field 'from'" in bad_phone.json()["error"]
    unknown = await client.get("/simulator/thread", params={"phone": "+919876543210", "to": "+12025550111"})
    assert unknown.status_code == 404


async def test_the_simulator_can_be_turned_off(runtime: Runtime) -> None:
    from openline.web import create_app

    off = dataclasses.replace(runtime, settings=runtime.settings.model_copy(update={"simulator": False}))
    transport = httpx.ASGITransport(app=create_app(off, own_runtime=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/simulator")).status_code == 404
