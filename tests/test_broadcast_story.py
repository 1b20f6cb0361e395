"""An owner's broadcast, whole: composed and estimated over the API, fanned out and sent by the running
background work through the sandbox provider, a member clicks the tracked link, the stats say so."""

from __future__ import annotations

import asyncio
import time

import httpx
import sqlalchemy as sa

from openline.db import schema
from openline.runtime import Runtime
from openline.worker import run_background

from .test_api import make_token
from .test_broadcasts import add_people

MILAN = [
    {"phone": f"+3934712345{i:02d}", "state": "subscribed", "first_name": name, "city": "Milano", "country": "IT",
     "language": "it", "time_zone": "Europe/Rome"}
    for i, name in enumerate(["Giulia", "Marco", None])
] + [
    {"phone": "+393471234599", "state": "pending", "city": "Milano", "country": "IT", "time_zone": "Europe/Rome"}
]  # fmt: skip


async def test_a_broadcast_from_compose_to_click(client: httpx.AsyncClient, runtime: Runtime) -> None:
    add_people(runtime.db, MILAN)
    auth = {"Authorization": f"Bearer {make_token(runtime)}"}
    message = {
        "variants": [
            {
                "body": 'Hi {{ first_name | default("friend") }}: tickets at https://example.org/milano',
                "translations": {
                    "it": 'Ciao {{ first_name | default("amico") }}: biglietti su https://example.org/milano'
                },
            }
        ]
    }
    created = await client.post(
        "/api/v1/broadcasts", json={"name": "milano", "message": message, "segment": "city = Milano"}, headers=auth
    )
    assert created.status_code == 201, created.text
    estimate = (await client.get("/api/v1/broadcasts/milano/estimate", headers=auth)).json()
    assert (estimate["recipients"], estimate["segments"]) == (3, 3)
    assert (await client.post("/api/v1/broadcasts/milano/send", headers=auth)).status_code == 200

    stop = asyncio.Event()
    background = asyncio.create_task(run_background(runtime, stop))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            state = (await client.get("/api/v1/broadcasts/milano", headers=auth)).json()["state"]
            if state == "done":
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await background
    assert state == "done"

    m = schema.messages.c
    with runtime.db.read_engine.connect() as conn:
        sent = dict(
            conn.execute(sa.select(m.phone, m.body).where(m.broadcast_id.is_not(None), m.state == "sent")).all()
        )
    assert sorted(sent) == ["+393471234500", "+393471234501", "+393471234502"]
    giulia = sent["+393471234500"]
    assert giulia.startswith("Ciao Giulia: biglietti su https://sms.example.org/l/")
    assert sent["+393471234502"].startswith("Ciao amico:")

    link = giulia.rsplit(" ", 1)[1].removeprefix("https://sms.example.org")
    opened = await client.get(link, headers={"User-Agent": "Mozilla/5.0 (iPhone)"})
    assert (opened.status_code, opened.headers["location"]) == (302, "https://example.org/milano")
    stats = (await client.get("/api/v1/broadcasts/milano/stats", headers=auth)).json()
    assert stats["texts"] == {"sent": 3}
    assert stats["clicks"] == {"total": 1, "unique": 1}
    assert stats["skipped"] == {"never confirmed (pending)": 1}
    story = (await client.get("/api/v1/broadcasts/milano/why?phone=%2B393471234599", headers=auth)).json()
    assert story["why"] == "no text was written for them at fan-out; as of now: skipped: never confirmed (pending)"
