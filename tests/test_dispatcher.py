"""The dispatcher on SQLite and PostgreSQL: pacing, final checks, retries, leases, never twice."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
import sqlalchemy as sa

from openline.communities import get_community
from openline.db import schema
from openline.dispatcher import MAX_ATTEMPTS, Dispatcher, Pacer, backoff
from openline.providers.outbound import OutboundSms, SendFailed
from openline.runtime import Runtime
from openline.senders import add_sender
from openline.states import MemberState, MessageKind

from .conftest import count

m = schema.messages.c


class FakeProvider:
    """Records what it is asked to send; ``behaviour`` may raise SendFailed or delay."""

    name: ClassVar[str] = "sandbox"

    def __init__(self) -> None:
        self.sent: list[tuple[float, OutboundSms]] = []
        self.behaviour: Callable[[OutboundSms], Awaitable[None]] | None = None

    async def send(self, sms: OutboundSms) -> str:
        if self.behaviour is not None:
            await self.behaviour(sms)
        self.sent.append((time.monotonic(), sms))
        return f"fake-{sms.message_id}"


def test_pacer_spaces_texts_by_their_segments() -> None:
    now = [100.0]
    pacer = Pacer(1.0, clock=lambda: now[0])
    assert [pacer.reserve(1), pacer.reserve(1), pacer.reserve(3), pacer.reserve(1)] == [100.0, 101.0, 102.0, 105.0]
    now[0] = 200.0  # idle time is not banked as a burst
    assert [pacer.reserve(1), pacer.reserve(1)] == [200.0, 201.0]
    fast = Pacer(100.0, clock=lambda: 0.0)
    assert [round(fast.reserve(1), 3) for _ in range(3)] == [0.0, 0.01, 0.02]
    with pytest.raises(ValueError):
        Pacer(0)


def test_backoff_grows_and_is_bounded() -> None:
    delays = [backoff(a) for a in range(1, 15)]
    assert all(1.0 <= d <= 600.0 for d in delays)
    assert backoff(1) < backoff(5) <= 32
    assert max(delays) <= 600


def queue(
    runtime: Runtime,
    phone: str,
    body: str,
    *,
    kind: MessageKind = MessageKind.reply,
    member_id: int | None = None,
    sender: str = "+12025550100",
    created_at: datetime | None = None,
    segments: int = 1,
) -> int:
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        sender_id = conn.execute(sa.select(schema.senders.c.id).where(schema.senders.c.address == sender)).scalar_one()
        now = created_at or datetime.now(UTC)
        return int(
            conn.execute(
                sa.insert(schema.messages)
                .values(
                    community_id=community_id,
                    direction="outbound",
                    kind=kind,
                    state="queued",
                    sender_id=sender_id,
                    phone=phone,
                    member_id=member_id,
                    body=body,
                    segments=segments,
                    encoding="gsm7",
                    provider="sandbox",
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
                .returning(m.id)
            ).scalar_one()
        )


def member(runtime: Runtime, phone: str, state: MemberState) -> int:
    with runtime.db.write_engine.begin() as conn:
        now = datetime.now(UTC)
        return int(
            conn.execute(
                sa.insert(schema.members)
                .values(
                    community_id=get_community(conn).id,
                    phone=phone,
                    state=state,
                    custom={},
                    created_at=now,
                    updated_at=now,
                )
                .returning(schema.members.c.id)
            ).scalar_one()
        )


def states(runtime: Runtime) -> dict[int, tuple[str, str | None]]:
    with runtime.db.read_engine.connect() as conn:
        return {
            r.id: (r.state, r.error_code)
            for r in conn.execute(sa.select(m.id, m.state, m.error_code).where(m.direction == "outbound"))
        }


async def run_until(
    runtime: Runtime,
    provider: FakeProvider,
    done: Callable[[], bool],
    *,
    within: float = 10,
    owner: str = "test-worker",
) -> Dispatcher:
    dispatcher = Dispatcher(runtime.db, runtime.writer, {"sandbox": provider}, owner=owner)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    started = time.monotonic()
    try:
        while not done() and time.monotonic() - started < within:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    assert done(), states(runtime)
    return dispatcher


def set_rate(runtime: Runtime, mps: float, daily_cap: int | None = None) -> None:
    with runtime.db.write_engine.begin() as conn:
        conn.execute(sa.update(schema.senders).values(mps=mps, daily_cap=daily_cap))
    runtime.senders.reload()


async def test_texts_are_sent_paced_and_replies_first(runtime: Runtime) -> None:
    set_rate(runtime, 20)
    broadcast = [queue(runtime, f"+1202555{i:04d}", f"news {i}", kind=MessageKind.broadcast) for i in range(5)]
    replies = [queue(runtime, f"+1202555{i:04d}", f"reply {i}") for i in range(5)]
    provider = FakeProvider()
    await run_until(runtime, provider, lambda: len(provider.sent) == 10)
    order = [sms.message_id for _, sms in provider.sent]
    assert order[:5] == replies and sorted(order[5:]) == broadcast
    times = [t for t, _ in provider.sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 20 - 0.005  # never faster than the sender's rate
    assert all(state == ("sent", None) for state in states(runtime).values())
    with runtime.db.read_engine.connect() as conn:
        ids = conn.execute(sa.select(m.provider_message_id).where(m.direction == "outbound")).scalars().all()
    assert sorted(ids) == sorted(f"fake-{i}" for i in order)


async def test_a_stop_that_arrived_wins_over_queued_texts(runtime: Runtime) -> None:
    set_rate(runtime, 50)
    stopped = member(runtime, "+12025550143", MemberState.pending)
    queued_before = queue(
        runtime,
        "+12025550143",
        "a reply queued before the STOP",
        member_id=stopped,
        created_at=datetime.now(UTC) - timedelta(seconds=5),
    )
    autotext_before = queue(
        runtime,
        "+12025550143",
        "autotext",
        kind=MessageKind.system,
        member_id=stopped,
        created_at=datetime.now(UTC) - timedelta(seconds=5),
    )
    with runtime.db.write_engine.begin() as conn:
        conn.execute(sa.update(schema.members).values(state="unsubscribed"))
        conn.execute(
            sa.insert(schema.consent_events).values(
                community_id=get_community(conn).id,
                member_id=stopped,
                previous_state="pending",
                new_state="unsubscribed",
                source="sms",
                evidence={},
                occurred_at=datetime.now(UTC) - timedelta(seconds=1),
            )
        )
    confirmation = queue(runtime, "+12025550143", "you're unsubscribed", kind=MessageKind.system, member_id=stopped)
    blocked = member(runtime, "+12025550144", MemberState.blocked)
    to_blocked = queue(runtime, "+12025550144", "hi", member_id=blocked)
    expired = queue(runtime, "+12025550145", "too late", created_at=datetime.now(UTC) - timedelta(hours=11))
    provider = FakeProvider()
    # Settled, not merely claimed: a claimed text is "sending" until its verdict is recorded.
    unsettled = m.state.in_(("queued", "sending"))
    await run_until(runtime, provider, lambda: count(runtime.db, schema.messages, unsettled) == 0)
    result = states(runtime)
    assert result[queued_before] == ("cancelled", "cancel")
    assert result[autotext_before] == ("cancelled", "cancel")
    assert result[confirmation] == ("sent", None)
    assert result[to_blocked] == ("cancelled", "cancel")
    assert result[expired] == ("failed", "expire")
    assert [sms.message_id for _, sms in provider.sent] == [confirmation]


async def test_transient_failures_retry_then_give_up(runtime: Runtime) -> None:
    set_rate(runtime, 50)
    message = queue(runtime, "+12025550143", "hello")
    provider = FakeProvider()

    async def throttled(_sms: OutboundSms) -> None:
        raise SendFailed("Too Many Requests", code="20429", transient=True, retry_after=0)

    provider.behaviour = throttled
    with runtime.db.write_engine.begin() as conn:  # let every retry be due at once
        conn.execute(sa.update(schema.messages).values(next_attempt_at=None))
    await run_until(runtime, provider, lambda: states(runtime)[message][0] == "failed")
    with runtime.db.read_engine.connect() as conn:
        row = conn.execute(sa.select(m.attempts, m.error_code, m.error_reason).where(m.id == message)).one()
    assert row.attempts == MAX_ATTEMPTS
    assert row.error_code == "20429" and row.error_reason.startswith(f"gave up after {MAX_ATTEMPTS} attempts")


async def test_a_retry_waits_its_backoff(runtime: Runtime) -> None:
    set_rate(runtime, 50)
    message = queue(runtime, "+12025550143", "hello")
    provider = FakeProvider()
    calls = 0

    async def once(_sms: OutboundSms) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise SendFailed("Service Unavailable", code="503", transient=True)

    provider.behaviour = once
    await run_until(runtime, provider, lambda: states(runtime)[message][0] == "queued" and calls == 1)
    with runtime.db.read_engine.connect() as conn:
        row = conn.execute(sa.select(m.attempts, m.next_attempt_at).where(m.id == message)).one()
    assert row.attempts == 1
    assert row.next_attempt_at > datetime.now(UTC)  # not retried at once


async def test_carrier_opt_out_unsubscribes_the_member(runtime: Runtime) -> None:
    set_rate(runtime, 50)
    someone = member(runtime, "+12025550143", MemberState.subscribed)
    message = queue(runtime, "+12025550143", "hello", member_id=someone)
    provider = FakeProvider()

    async def opted_out(_sms: OutboundSms) -> None:
        raise SendFailed("recipient unsubscribed", code="21610", opted_out=True)

    provider.behaviour = opted_out
    await run_until(runtime, provider, lambda: states(runtime)[message][0] == "failed")
    with runtime.db.read_engine.connect() as conn:
        assert conn.execute(sa.select(schema.members.c.state)).scalar_one() == "unsubscribed"
        evidence = conn.execute(sa.select(schema.consent_events.c.evidence)).scalar_one()
    assert evidence["error_code"] == "21610"


async def test_an_ambiguous_send_is_never_repeated(runtime: Runtime) -> None:
    set_rate(runtime, 50)
    message = queue(runtime, "+12025550143", "hello")
    provider = FakeProvider()
    calls = 0

    async def timed_out(_sms: OutboundSms) -> None:
        nonlocal calls
        calls += 1
        raise SendFailed("no answer after sending", ambiguous=True)

    provider.behaviour = timed_out
    await run_until(runtime, provider, lambda: states(runtime)[message][0] == "failed")
    await asyncio.sleep(0.3)
    assert calls == 1
    assert states(runtime)[message] == ("failed", "ambiguous")


async def test_one_owner_per_sender_and_takeover_settles_half_sent_texts(runtime: Runtime) -> None:
    from openline.dispatcher.leases import acquire, settle_abandoned

    with runtime.db.write_engine.begin() as conn:
        add_sender(conn, get_community(conn).id, "+12025550101", provider="sandbox")
    now = datetime.now(UTC)
    with runtime.db.write_engine.begin() as conn:
        held_a, taken_a = acquire(conn, "a", timedelta(seconds=15), now)
        held_b, _ = acquire(conn, "b", timedelta(seconds=15), now)
    assert len(held_a) == 2 and held_a == taken_a and held_b == set()
    # Worker a dies mid-send: one text claimed, never recorded.
    message = queue(runtime, "+12025550143", "hello")
    with runtime.db.write_engine.begin() as conn:
        conn.execute(sa.update(schema.messages).where(m.id == message).values(state="sending", attempts=1))
    later = now + timedelta(seconds=16)
    with runtime.db.write_engine.begin() as conn:
        held_b, taken_b = acquire(conn, "b", timedelta(seconds=15), later)
        assert held_b == held_a
        settled = sum(settle_abandoned(conn, s, later) for s in taken_b)
    assert settled == 1
    assert states(runtime)[message] == ("failed", "ambiguous")


async def test_daily_cap_holds_texts_back(runtime: Runtime) -> None:
    set_rate(runtime, 50, daily_cap=3)
    ids = [queue(runtime, f"+1202555{i:04d}", "hi") for i in range(5)]
    provider = FakeProvider()
    await run_until(runtime, provider, lambda: len(provider.sent) == 3)
    await asyncio.sleep(0.2)
    result = states(runtime)
    assert sorted(result[i][0] for i in ids) == ["queued", "queued", "sent", "sent", "sent"]


async def test_two_workers_leasing_a_new_sender_at_once_cannot_both_win(runtime: Runtime) -> None:
    """Both see the sender unleased; the second's insert waits for the first's commit and must lose."""
    from openline.dispatcher.leases import acquire

    with runtime.db.write_engine.begin() as conn:
        add_sender(conn, get_community(conn).id, "+12025550101", provider="sandbox")
    now, results = datetime.now(UTC), {}

    def second() -> None:
        with runtime.db.write_engine.begin() as conn:
            results["b"] = acquire(conn, "b", timedelta(seconds=15), now)[0]

    with runtime.db.write_engine.begin() as conn:
        results["a"] = acquire(conn, "a", timedelta(seconds=15), now)[0]
        racer = threading.Thread(target=second)
        racer.start()
        racer.join(timeout=0.3)  # b is now waiting on a's uncommitted rows (or for SQLite's write lock)
    racer.join(timeout=10)
    assert len(results["a"]) == 2 and results["b"] == set()
