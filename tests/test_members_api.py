"""Members in the JSON API: import, export, one member's record, erasure; and the retention loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from openline.communities import get_community
from openline.db import schema
from openline.erasure import is_suppressed
from openline.providers.base import InboundSms
from openline.runtime import Runtime
from openline.senders import SANDBOX_NUMBER
from openline.settings import Settings
from openline.states import MessageState
from openline.web import api_members
from openline.worker import run_retention

from .test_api import make_token

US, IT = "+12025550143", "+393471234567"
CSV = (
    "Mobile,First Name,Tags,consent_source,consent_at,Seat\n"
    "(202) 555-0143,Ann,vip,web form,2024-05-01T18:30:00Z,B12\n"
    "+39 347 123 4567,Giulia,,,,\n"
    "12,Bob,,,,\n"
)


def auth(runtime: Runtime) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(runtime)}"}


async def test_import_answers_with_the_summary_and_the_problems(client: httpx.AsyncClient, runtime: Runtime) -> None:
    headers = {**auth(runtime), "Content-Type": "text/csv"}
    params = {"default_country": "us", "map": "Seat=custom.seat", "filename": "spring.csv"}
    answer = await client.post("/api/v1/members/import", content=CSV, headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert {k: result[k] for k in ("file", "rows", "created", "merged", "skipped", "errors", "subscribed")} == {
        "file": "api:spring.csv",
        "rows": 3,
        "created": 2,
        "merged": 0,
        "skipped": 0,
        "errors": 1,
        "subscribed": 1,
    }
    assert result["problems"] == [
        {"line": 4, "column": "Mobile", "reason": "'12' is not a valid number in the numbering plan of +1"}
    ]
    assert result["problems_truncated"] is False
    ann = (await client.get(f"/api/v1/members/{US}", headers={"Authorization": headers["Authorization"]})).json()
    assert (ann["state"], ann["custom"], ann["tags"]) == ("subscribed", {"seat": "B12"}, ["vip"])
    assert ann["consent"][0]["evidence"]["file"] == "api:spring.csv"


async def test_import_refuses_what_it_cannot_read(client: httpx.AsyncClient, runtime: Runtime) -> None:
    headers = auth(runtime)
    wrong_type = await client.post("/api/v1/members/import", content=CSV, headers=headers)
    assert wrong_type.status_code == 415
    csv_headers = {**headers, "Content-Type": "text/csv; charset=utf-8"}
    no_phone = await client.post("/api/v1/members/import", content="name\nAnn\n", headers=csv_headers)
    assert no_phone.status_code == 422 and "no column holds the phone number" in no_phone.json()["detail"]
    bad_map = await client.post("/api/v1/members/import", content=CSV, headers=csv_headers, params={"map": "Seat"})
    assert bad_map.status_code == 422
    bad_country = await client.post(
        "/api/v1/members/import", content=CSV, headers=csv_headers, params={"default_country": "XX"}
    )
    assert bad_country.status_code == 422 and "default_country" in bad_country.json()["detail"]
    unauthenticated = await client.post("/api/v1/members/import", content=CSV, headers={"Content-Type": "text/csv"})
    assert unauthenticated.status_code == 401


async def test_import_refuses_a_body_over_the_limit_declared_or_streamed(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_members, "MAX_IMPORT_BYTES", len(CSV) - 1)
    headers = {**auth(runtime), "Content-Type": "text/csv"}
    declared = await client.post("/api/v1/members/import", content=CSV, headers=headers)
    assert declared.status_code == 413 and "openline members import" in declared.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the count while streaming decides
        for start in range(0, len(CSV), 16):
            yield CSV[start : start + 16].encode()

    streamed = await client.post("/api/v1/members/import", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    with runtime.db.read_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.members)).scalar_one() == 0
    monkeypatch.setattr(api_members, "MAX_IMPORT_BYTES", len(CSV))
    assert (await client.post("/api/v1/members/import", content=CSV, headers=headers)).status_code == 200


async def test_export_streams_json_lines_and_csv(client: httpx.AsyncClient, runtime: Runtime) -> None:
    headers = auth(runtime)
    await client.post(
        "/api/v1/members/import",
        content=CSV,
        headers={**headers, "Content-Type": "text/csv"},
        params={"default_country": "US"},
    )
    answer = await client.get("/api/v1/members/export", headers=headers)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in answer.text.splitlines()]
    assert [r["phone"] for r in records] == [US, IT]
    assert records[0]["consent"][0]["new_state"] == "subscribed"
    as_csv = await client.get("/api/v1/members/export", headers=headers, params={"format": "csv"})
    assert as_csv.text.splitlines()[0].startswith("phone,state,first_name")
    assert len(as_csv.text.splitlines()) == 3
    assert (await client.get("/api/v1/members/export", headers=headers, params={"format": "xml"})).status_code == 422


async def test_erasing_through_the_api(client: httpx.AsyncClient, runtime: Runtime) -> None:
    headers = auth(runtime)
    await runtime.ingest.receive(InboundSms("sandbox", "in-1", US, SANDBOX_NUMBER, "hello, I am Ann"))
    await client.post(
        "/api/v1/members/import",
        content=CSV,
        headers={**headers, "Content-Type": "text/csv"},
        params={"default_country": "US"},
    )
    answer = await client.delete("/api/v1/members/+1 (202) 555-0143", headers=headers)
    assert answer.status_code == 200 and answer.json() == {"phone": US, "was_member": True}
    assert (await client.get(f"/api/v1/members/{US}", headers=headers)).status_code == 404
    with runtime.db.read_engine.connect() as conn:
        community_id = get_community(conn).id
        assert is_suppressed(conn, community_id, runtime.key_for("suppression"), US)
        bodies = conn.execute(sa.select(schema.messages.c.body, schema.messages.c.phone)).all()
    assert bodies == [("", "erased")]
    # Imported again: skipped, with the reason.
    again = await client.post(
        "/api/v1/members/import",
        content=CSV,
        headers={**headers, "Content-Type": "text/csv"},
        params={"default_country": "US"},
    )
    assert (again.json()["skipped"], again.json()["created"]) == (1, 0)
    assert "erased at the person's request" in again.json()["problems"][0]["reason"]
    # A number nobody knows: suppressed all the same (nothing else to erase).
    unknown = await client.delete("/api/v1/members/+12025550199", headers=headers)
    assert unknown.json() == {"phone": "+12025550199", "was_member": False}
    assert (await client.delete("/api/v1/members/12", headers=headers)).status_code == 422


async def test_the_worker_blanks_bodies_past_the_retention(database_url: str) -> None:
    runtime = Runtime.open(
        Settings(database_url=database_url, public_url="https://sms.example.org", retention_days=30), migrate=False
    )
    try:
        for i in range(3):
            await runtime.ingest.receive(InboundSms("sandbox", f"r-{i}", US, SANDBOX_NUMBER, f"text {i}"))
        m = schema.messages.c
        with runtime.db.write_engine.begin() as conn:
            conn.execute(sa.update(schema.messages).values(state=MessageState.processed))
            old = datetime.now(UTC) - timedelta(days=31)
            conn.execute(sa.update(schema.messages).where(m.body != "text 2").values(created_at=old))
        stop = asyncio.Event()
        task = asyncio.create_task(run_retention(runtime, stop, interval=0.05))
        for _ in range(100):
            with runtime.db.read_engine.connect() as conn:
                bodies = list(conn.execute(sa.select(m.body).order_by(m.id)).scalars())
            if bodies == ["", "", "text 2"]:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await task
        assert bodies == ["", "", "text 2"]
    finally:
        runtime.close()


async def test_without_retention_the_loop_returns_at_once(runtime: Runtime) -> None:
    await asyncio.wait_for(run_retention(runtime, asyncio.Event()), timeout=1)
