"""A database outage loses nothing: texts wait in the fsynced local spool and are replayed once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from openline.db import Database, schema
from openline.providers.base import InboundSms, Media
from openline.runtime import Runtime
from openline.senders import SANDBOX_NUMBER
from openline.spool import Spool, replay_until_stopped

from .conftest import count
from .test_webhooks_sandbox import signed, text


@contextmanager
def writes_fail(db: Database) -> Iterator[None]:
    """Every write fails at the driver, as when the database is unreachable (reads still work, so the
    test can look)."""

    def refuse(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            raise sa.exc.OperationalError(statement, {}, Exception("server closed the connection unexpectedly"))

    sa.event.listen(db.write_engine, "before_cursor_execute", refuse)
    try:
        yield
    finally:
        sa.event.remove(db.write_engine, "before_cursor_execute", refuse)


async def test_an_outage_spools_then_replays_exactly_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    body, headers = signed(runtime, text("during-outage", "still here"))
    with writes_fail(runtime.db):
        answer = await client.post("/webhooks/sandbox", content=body, headers=headers)
        assert answer.status_code == 200  # acknowledged: it is on disk, fsynced
        assert count(runtime.db, schema.messages) == 0
        assert runtime.spool.pending()
        with pytest.raises(sa.exc.OperationalError):
            await runtime.spool.replay(runtime.ingest.receive_spooled)  # still down: the file waits
    # The provider also retries the same text after the outage: still one row.
    assert (await client.post("/webhooks/sandbox", content=body, headers=headers)).status_code == 200
    assert await runtime.spool.replay(runtime.ingest.receive_spooled) == 1
    assert not runtime.spool.pending()
    with runtime.db.read_engine.connect() as conn:
        assert conn.execute(sa.select(schema.messages.c.body)).scalars().all() == ["still here"]


async def test_without_a_usable_spool_the_provider_is_asked_to_retry(
    client: httpx.AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    (tmp_path / "not-a-dir").write_text("")
    broken = dataclasses.replace(runtime, spool=Spool(tmp_path / "not-a-dir"))
    from openline.web import create_app

    transport = httpx.ASGITransport(app=create_app(broken, own_runtime=False))
    async with httpx.AsyncClient(transport=transport, base_url="https://sms.example.org") as http:
        body, headers = signed(runtime, text("nowhere"))
        with writes_fail(runtime.db):
            answer = await http.post("/webhooks/sandbox", content=body, headers=headers)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"


def test_spool_round_trip_keeps_everything(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    sms = InboundSms("sandbox", "id-1", "+393471234567", SANDBOX_NUMBER, "नमस्ते\n👋", (Media("https://m/1", None),))
    stored: list[InboundSms] = []

    async def store(item: InboundSms) -> None:
        stored.append(item)

    async def scenario() -> None:
        await spool.put(sms)
        await spool.put(dataclasses.replace(sms, provider_message_id="id-2"))
        assert await spool.replay(store) == 2

    asyncio.run(scenario())
    assert stored[0] == sms
    assert [s.provider_message_id for s in stored] == ["id-1", "id-2"]
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    stored: list[InboundSms] = []

    async def store(item: InboundSms) -> None:
        stored.append(item)

    asyncio.run(spool.put(InboundSms("sandbox", "whole", "+393471234567", SANDBOX_NUMBER, "ok")))
    with next(tmp_path.glob("inbound-*.jsonl")).open("ab") as f:
        f.write(b'{"provider":"sandbox","provider_mess')  # a crash mid-write: never acknowledged
    asyncio.run(spool.replay(store))
    assert [s.provider_message_id for s in stored] == ["whole"]


@pytest.fixture
def pg_outage(runtime: Runtime) -> Iterator[tuple[callable, callable]]:  # type: ignore[valid-type]
    """Stop and restart this test's PostgreSQL database (others on the server are untouched)."""
    if runtime.db.is_sqlite:
        pytest.skip("stops a PostgreSQL database; SQLite outages are covered by the driver-level tests")
    name = runtime.db.url.database
    admin = Database(runtime.db.url.set(database="postgres").render_as_string(hide_password=False))

    def admin_sql(sql: str) -> None:
        with admin.write_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(sql)

    def stop() -> None:
        admin_sql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")

    def start() -> None:
        admin_sql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')

    yield stop, start
    start()
    admin.dispose()


async def test_stopping_postgresql_mid_flood_loses_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    pg_outage: tuple[callable, callable],  # type: ignore[valid-type]
) -> None:
    stop_db, start_db = pg_outage
    texts = [text(f"flood-{i}", f"text {i}", from_number=f"+3934712{i:05d}") for i in range(600)]

    async def post(sms: InboundSms) -> int:
        body, headers = signed(runtime, sms)
        return (await client.post("/webhooks/sandbox", content=body, headers=headers)).status_code

    statuses = list(await asyncio.gather(*(post(t) for t in texts[:200])))
    await asyncio.to_thread(stop_db)
    statuses += await asyncio.gather(*(post(t) for t in texts[200:400]))
    await asyncio.to_thread(start_db)
    statuses += await asyncio.gather(*(post(t) for t in texts[400:]))
    # Replays by the provider of a slice sent during the outage.
    statuses += await asyncio.gather(*(post(t) for t in texts[250:300]))
    assert set(statuses) == {200}
    assert runtime.spool.pending()
    stop = asyncio.Event()
    replayer = asyncio.create_task(replay_until_stopped(runtime.spool, runtime.ingest.receive_spooled, stop, 0.05))
    for _ in range(200):
        if not runtime.spool.pending():
            break
        await asyncio.sleep(0.05)
    stop.set()
    await replayer
    m = schema.messages.c
    with runtime.db.read_engine.connect() as conn:
        ids = conn.execute(sa.select(m.provider_message_id)).scalars().all()
    assert sorted(ids) == sorted(t.provider_message_id for t in texts)
