"""Delivery receipts: stored once by the webhook path, applied forward-only, even before the send is recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import sqlalchemy as sa

from openline.db import schema
from openline.providers.base import StatusReport
from openline.providers.sandbox import SIGNATURE_HEADER, SandboxWebhook
from openline.receipts import apply_receipts
from openline.runtime import Runtime

from .conftest import count
from .test_dispatcher import queue

m = schema.messages.c


def mark_sent(runtime: Runtime, message_id: int, provider_id: str | None, state: str = "sent") -> None:
    with runtime.db.write_engine.begin() as conn:
        conn.execute(
            sa.update(schema.messages).where(m.id == message_id).values(state=state, provider_message_id=provider_id)
        )


def apply(runtime: Runtime, now: datetime | None = None) -> int:
    with runtime.db.write_engine.begin() as conn:
        return apply_receipts(conn, now or datetime.now(UTC), explain=lambda p, c: f"{p} says {c}")


def state_of(runtime: Runtime, message_id: int) -> tuple[str, str | None, str | None]:
    with runtime.db.read_engine.connect() as conn:
        row = conn.execute(sa.select(m.state, m.error_code, m.error_reason).where(m.id == message_id)).one()
    return row.state, row.error_code, row.error_reason


async def test_receipts_move_states_forward_only(runtime: Runtime) -> None:
    message = queue(runtime, "+12025550143", "hello")
    mark_sent(runtime, message, "sandbox-1")
    for status in ("delivered", "sent", "undelivered"):  # a late "sent" and a second final word change nothing
        await runtime.ingest.receive_status(StatusReport("sandbox", "sandbox-1", status, status))
        apply(runtime)
    assert state_of(runtime, message)[0] == "delivered"
    with runtime.db.read_engine.connect() as conn:
        assert conn.execute(sa.select(m.delivered_at).where(m.id == message)).scalar_one() is not None


async def test_a_receipt_before_the_send_is_recorded_waits_for_it(runtime: Runtime) -> None:
    message = queue(runtime, "+12025550143", "hello")
    mark_sent(runtime, message, None, state="sending")  # submitted; the provider's answer not recorded yet
    await runtime.ingest.receive_status(StatusReport("sandbox", "sandbox-9", "delivered", "delivered"))
    assert apply(runtime) == 0
    mark_sent(runtime, message, "sandbox-9")
    assert apply(runtime) == 1
    assert state_of(runtime, message)[0] == "delivered"


async def test_undelivered_says_why(runtime: Runtime) -> None:
    message = queue(runtime, "+12025550143", "hello")
    mark_sent(runtime, message, "sandbox-2")
    await runtime.ingest.receive_status(StatusReport("sandbox", "sandbox-2", "undelivered", "undelivered", "30003"))
    apply(runtime)
    assert state_of(runtime, message) == ("undelivered", "30003", "sandbox says 30003")


async def test_receipts_for_unknown_texts_are_set_aside_after_a_day(runtime: Runtime) -> None:
    await runtime.ingest.receive_status(StatusReport("sandbox", "never-sent", "delivered", "delivered"))
    apply(runtime)
    r = schema.message_receipts.c
    assert count(runtime.db, schema.message_receipts, r.applied.is_(False)) == 1
    apply(runtime, datetime.now(UTC) + timedelta(days=2))
    assert count(runtime.db, schema.message_receipts, r.applied.is_(False)) == 0


async def test_status_webhook_stores_each_receipt_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    body = urlencode({"message_id": "sandbox-5", "status": "delivered"}).encode()
    headers = {SIGNATURE_HEADER: SandboxWebhook(runtime.key_for("sandbox-webhook")).sign(body)}
    for _ in range(3):
        assert (await client.post("/webhooks/sandbox/status", content=body, headers=headers)).status_code == 200
    assert count(runtime.db, schema.message_receipts) == 1
    forged = await client.post("/webhooks/sandbox/status", content=body, headers={SIGNATURE_HEADER: "sha256=00"})
    assert forged.status_code == 403
    bad = urlencode({"message_id": "x", "status": "lost"}).encode()
    answer = await client.post(
        "/webhooks/sandbox/status",
        content=bad,
        headers={SIGNATURE_HEADER: SandboxWebhook(runtime.key_for("sandbox-webhook")).sign(bad)},
    )
    assert answer.status_code == 400 and "field 'status'" in answer.json()["error"]
