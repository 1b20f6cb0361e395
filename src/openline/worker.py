"""Background work, run by `openline serve` (beside the web server) and `openline worker`.

The conversation engine, broadcast fan-out, the dispatcher, the delivery-receipt applier and message retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from openline.broadcasts import advance, fan_out_batch
from openline.broadcasts.fanout import FANOUT_BATCH
from openline.dispatcher import Dispatcher
from openline.engine import Engine
from openline.erasure import erase_old_message_bodies
from openline.providers import explain_error, outbound_providers
from openline.receipts import apply_receipts
from openline.runtime import Runtime

__all__ = ["ENGINE_BATCH", "run_background", "run_broadcasts", "run_engine", "run_receipts", "run_retention"]

log = logging.getLogger(__name__)

# Texts per engine transaction: large enough to share a commit, small enough (~10 ms) that ingest
# commits queued behind it are not held up.
ENGINE_BATCH = 64
# How long an idle engine waits before looking again, when no ingest in this process wakes it
# (texts received by another process, e.g. `openline web` beside `openline worker`).
IDLE_POLL_SECONDS = 0.25
ERROR_BACKOFF_SECONDS = 1.0
RECEIPTS_BATCH = 500
# Retention blanks old message bodies hourly, this many per transaction (short, so ingest never waits long).
RETENTION_BATCH = 1000
RETENTION_INTERVAL_SECONDS = 3600.0


async def _batches(
    runtime: Runtime,
    stop: asyncio.Event,
    work: Callable[[sa.Connection], int],
    *,
    full: int,
    done: Callable[[], object] = lambda: None,
) -> None:
    """Run ``work`` in a transaction, again at once while it reports ``full`` batches, else when this
    process stores something new or after a short poll, until ``stop``. On SQLite the transaction is
    one of the group-commit writer's (no second writer contends for the lock); on PostgreSQL it is
    its own, so ingest never waits behind it."""

    def own_transaction() -> int:
        with runtime.db.write_engine.begin() as conn:
            return work(conn)

    while not stop.is_set():
        runtime.arrivals.clear()
        try:
            done_now = await (runtime.writer.run(work) if runtime.db.is_sqlite else asyncio.to_thread(own_transaction))
        except Exception as exc:
            log.error("%s failed, retrying: %s", getattr(work, "__name__", "background work"), exc)
            done_now, delay = 0, ERROR_BACKOFF_SECONDS
        else:
            delay = IDLE_POLL_SECONDS
        if done_now:
            done()
        if done_now >= full:
            continue  # more are waiting
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_first(stop.wait(), runtime.arrivals.wait()), timeout=delay)


async def run_engine(runtime: Runtime, stop: asyncio.Event, queued: Callable[[], object] = lambda: None) -> None:
    """Process received texts until ``stop``; ``queued`` is told whenever a batch may have queued replies."""
    engine = Engine(
        link_key=runtime.key_for("member-link"),
        base_url=runtime.base_url,
        profile_key=runtime.key_for("member-profile"),
        suppression_key=runtime.key_for("suppression"),
    )

    def conversation_engine(conn: sa.Connection) -> int:
        return engine.process_pending(conn, ENGINE_BATCH)

    await _batches(runtime, stop, conversation_engine, full=ENGINE_BATCH, done=queued)


async def run_receipts(runtime: Runtime, stop: asyncio.Event) -> None:
    """Apply stored delivery receipts to their messages until ``stop``."""

    def delivery_receipts(conn: sa.Connection) -> int:
        return apply_receipts(conn, datetime.now(UTC), limit=RECEIPTS_BATCH, explain=explain_error)

    await _batches(runtime, stop, delivery_receipts, full=RECEIPTS_BATCH)


async def run_broadcasts(runtime: Runtime, stop: asyncio.Event, queued: Callable[[], object] = lambda: None) -> None:
    """Move broadcasts along until ``stop``: start those whose time has come, fan out a batch per
    transaction (``queued`` wakes the dispatcher after each), mark finished ones done."""
    link_key, join_key = runtime.key_for("tracked-link"), runtime.key_for("member-link")

    def broadcast_fan_out(conn: sa.Connection) -> int:
        now = datetime.now(UTC)
        looked_at = 0
        for broadcast_id in advance(conn, now):
            looked_at += fan_out_batch(
                conn, broadcast_id, now=now, base_url=runtime.base_url, link_key=link_key, join_key=join_key
            )
        return looked_at

    # One batch of one broadcast per transaction keeps each short; a full batch means look again at once.
    await _batches(runtime, stop, broadcast_fan_out, full=FANOUT_BATCH, done=queued)


async def run_retention(runtime: Runtime, stop: asyncio.Event, interval: float = RETENTION_INTERVAL_SECONDS) -> None:
    """Every ``interval``, blank the text and media of messages older than OPENLINE_RETENTION_DAYS, a
    batch per transaction, until ``stop``. Does nothing when the setting is unset."""
    days = runtime.settings.retention_days
    if days is None:
        return
    while not stop.is_set():
        cutoff = datetime.now(UTC) - timedelta(days=days)

        def old_bodies(conn: sa.Connection, cutoff: datetime = cutoff) -> int:
            return erase_old_message_bodies(conn, cutoff, RETENTION_BATCH)

        def own_transaction() -> int:
            with runtime.db.write_engine.begin() as conn:
                return old_bodies(conn)

        blanked = 0
        try:
            while not stop.is_set():
                done = await (
                    runtime.writer.run(old_bodies) if runtime.db.is_sqlite else asyncio.to_thread(own_transaction)
                )
                blanked += done
                if done < RETENTION_BATCH:
                    break
        except Exception as exc:
            log.error("message retention failed, retrying in %.0f s: %s", interval, exc)
        if blanked:
            log.info("message retention: blanked %d message bodies older than %d days", blanked, days)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def _first(*waits: object) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def run_background(runtime: Runtime, stop: asyncio.Event) -> None:
    """Run every background loop until ``stop`` is set: the conversation engine, broadcasts and the dispatcher."""
    public_url = runtime.settings.public_url
    # Idle keep-alive connections are dropped early: sending on one the provider already closed fails
    # after the request left, which counts as ambiguous (never retried). As many connections as sends in
    # flight (the dispatcher's max_in_flight): requests queued inside httpx's pool cost CPU per request.
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32, keepalive_expiry=5.0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0), limits=limits) as client:
        dispatcher = Dispatcher(
            runtime.db,
            runtime.writer,
            outbound_providers(runtime.settings, client, on_status=runtime.ingest.receive_status),
            status_callback=lambda provider: f"{public_url}/webhooks/{provider}/status" if public_url else None,
            lease=timedelta(seconds=runtime.settings.dispatcher_lease_seconds),
        )
        log.info("background work started: conversation engine and dispatcher (%s)", dispatcher.owner)
        await asyncio.gather(
            run_engine(runtime, stop, queued=dispatcher.wake.set),
            run_receipts(runtime, stop),
            run_broadcasts(runtime, stop, queued=dispatcher.wake.set),
            dispatcher.run(stop),
            run_retention(runtime, stop),
        )
