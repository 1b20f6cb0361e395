"""Three `openline worker` processes on one PostgreSQL database: each text sent once, each sender paced."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa

from openline.communities import bootstrap
from openline.db import Database, schema
from openline.providers.fake_twilio import FakeTwilio
from openline.senders import add_sender
from openline.states import Direction, MessageKind, MessageState

from .test_dispatcher_kill import fake_twilio, wait, worker  # noqa: F401

SENDERS = [f"+1415555{i:04d}" for i in range(6)]
RATE = 10.0
PER_SENDER = 25


# Arrival times at the fake carrier (stamped in this process, which shares two cores with three workers
# and PostgreSQL) carry up to a slot of jitter; the schedule itself is checked exactly on a virtual clock
# in tests/test_dispatcher.py. Here: the rate over the whole run is exact, and no one-second window holds
# more than the rate allows once that jitter is granted (two workers sending for one sender would double it).
JITTER = 1 / RATE


def add_senders(db: Database, fake: FakeTwilio) -> dict[str, int]:
    with db.write_engine.begin() as conn:
        community = bootstrap(conn, "Workers")
        assert community is not None
        ids = {}
        for address in SENDERS:
            fake.add_number(address)
            ids[address] = add_sender(conn, community.id, address, provider="twilio", mps=RATE).id
        return ids


def queue_texts(db: Database, senders: dict[str, int]) -> None:
    with db.write_engine.begin() as conn:
        community_id = conn.execute(sa.select(schema.senders.c.community_id)).scalars().first()
        now = schema.utcnow()
        for address, sender_id in senders.items():
            conn.execute(
                sa.insert(schema.messages),
                [
                    {
                        "community_id": community_id,
                        "direction": Direction.outbound,
                        "kind": MessageKind.reply,
                        "state": MessageState.queued,
                        "sender_id": sender_id,
                        "phone": f"+1202555{i:04d}",
                        "body": f"{address} text {i}",
                        "segments": 1,
                        "encoding": "gsm7",
                        "provider": "twilio",
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(PER_SENDER)
                ],
            )


def all_leased(db: Database) -> bool:
    with db.read_engine.connect() as conn:
        leases = conn.execute(sa.select(sa.func.count()).select_from(schema.sender_leases)).scalar_one()
        return bool(leases == conn.execute(sa.select(sa.func.count()).select_from(schema.senders)).scalar_one())


def check(db: Database, fake: FakeTwilio) -> None:
    bodies = [m.body for m in fake.sent]
    assert len(bodies) == len(set(bodies)) == len(SENDERS) * PER_SENDER  # each text exactly once
    by_sender: dict[str, list[float]] = defaultdict(list)
    for record in fake.sent:
        by_sender[str(record.from_)].append(record.received_at)
    for address, times in by_sender.items():
        times.sort()
        gaps = [round(later - earlier, 3) for earlier, later in itertools.pairwise(times)]
        assert times[-1] - times[0] >= (len(times) - 1) / RATE - JITTER, (
            f"{address} went faster than {RATE:g}/s: {gaps}"
        )
        busiest = max(sum(1 for t in times if start <= t < start + 1.0 - JITTER) for start in times)
        assert busiest <= RATE, f"{address} sent {busiest} texts in one second (limit {RATE:g}): {gaps}"
    with db.read_engine.connect() as conn:
        states = conn.execute(sa.select(schema.messages.c.state, sa.func.count()).group_by(schema.messages.c.state))
        assert dict(states.all()) == {"sent": len(SENDERS) * PER_SENDER}


def test_three_workers_share_senders_and_never_double_send(
    tmp_path: Path,
    database_url: str,
    fake_twilio: tuple[FakeTwilio, str],  # noqa: F811
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers share one database only on PostgreSQL")
    fake, api_url = fake_twilio
    db = Database(database_url)
    try:
        senders = add_senders(db, fake)
        workers = [worker(tmp_path, database_url, api_url) for _ in range(3)]
        try:
            # Queue once every sender is leased, so the pace is measured in steady state, not while
            # three interpreters start up on two cores.
            wait(lambda: all_leased(db), within=60)
            queue_texts(db, senders)
            wait(lambda: len(fake.sent) >= len(SENDERS) * PER_SENDER, within=60)
            time.sleep(1.0)  # anything sent twice would show up now
        finally:
            for process in workers:
                process.terminate()
            for process in workers:
                process.wait(timeout=20)
        check(db, fake)
    finally:
        db.dispose()
