"""The dispatcher against a local fake Twilio (its own process, over HTTP): throughput and exact pacing.

throughput: one dispatcher, 50 Twilio senders at 50 segments/s each, 400 single-segment texts per
sender queued up front; submissions per second in aggregate, and the process's peak memory before and
after (flat memory means nothing accumulates per text). Measured in the same run, the two ceilings it
sits between: the Twilio adapter alone posting to the same fake over the same connection pool (no
database, no pacing: what HTTP to this fake allows on this box, which the fake's own process shares),
and the dispatcher with the same queue to a provider that answers at once in its own process (what
the dispatcher itself allows).

pacing, measured at the fake from the arrival times of the requests:
- no sender ever exceeds its rate in any one-second window (sliding, over every request);
- a 1-segment/s sender sends 60 ± 1 single-segment texts in a minute (10 s in smoke runs: 10 ± 1);
- a 3-segment text costs three tokens: at 1 segment/s, consecutive 3-segment texts are 3 s apart.
"""

from __future__ import annotations

import asyncio
import bisect
import resource
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import ClassVar

import httpx
import sqlalchemy as sa

from bench.common import Headline, Options, Table, fresh_sqlite
from bench.ingest import _free_port
from openline.communities import bootstrap
from openline.db import Database, Writer, schema, upgrade
from openline.dispatcher import Dispatcher
from openline.providers.outbound import OutboundProvider, OutboundSms
from openline.providers.twilio_send import TwilioSender
from openline.senders import add_sender
from openline.states import Direction, MessageKind, MessageState

__all__ = ["run"]

SID, TOKEN = "AC" + "b" * 32, "bench-dispatch-token"
CONNECTIONS = 32  # the dispatcher's HTTP client: connections kept open to the provider


@contextmanager
def _fake(numbers: list[str]) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_twilio_server", str(port), SID, TOKEN, *numbers],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(f"{url}/bench/sent", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _queue(db: Database, plan: list[tuple[str, float, int, int]]) -> None:
    """plan: (sender address, segments/s, texts, segments per text); the community and senders are made on
    first use."""
    with db.write_engine.begin() as conn:
        bootstrap(conn, "Bench")
        community_id = conn.execute(sa.select(schema.communities.c.id)).scalar_one()
        now = schema.utcnow()
        for address, mps, texts, segments in plan:
            known = sa.select(schema.senders.c.id).where(schema.senders.c.address == address)
            sender_id = conn.execute(known).scalar_one_or_none()
            if sender_id is None:
                sender_id = add_sender(conn, community_id, address, provider="twilio", mps=mps).id
            body = "x" * (160 if segments == 1 else 153 * (segments - 1) + 1)
            conn.execute(
                sa.insert(schema.messages),
                [
                    {
                        "community_id": community_id,
                        "direction": Direction.outbound,
                        "kind": MessageKind.reply,
                        "state": MessageState.queued,
                        "sender_id": sender_id,
                        "phone": f"+1202555{i % 10_000:04d}",
                        "body": body,
                        "segments": segments,
                        "encoding": "gsm7",
                        "provider": "twilio",
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(texts)
                ],
            )


class _Accepting:
    """A provider that takes every text at once, in this process: the dispatcher's own ceiling."""

    name: ClassVar[str] = "twilio"

    async def send(self, sms: OutboundSms) -> str:
        await asyncio.sleep(0)
        return f"SM{sms.message_id:032x}"


def _client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    return httpx.AsyncClient(limits=limits, timeout=10)


async def _adapter_alone(api_url: str, senders: list[str], total: int) -> float:
    """Submissions/s of the Twilio adapter to the fake with nothing else in the way (no database, no
    pacing), as many at once as the dispatcher's connection pool allows: the HTTP ceiling."""
    async with _client() as client:
        adapter = TwilioSender(client, api_url=api_url, account_sid=SID, auth_token=TOKEN)
        numbers = iter(range(total))

        async def submit() -> None:
            for i in numbers:
                to = f"+1202555{i % 10_000:04d}"
                await adapter.send(OutboundSms(i, to, senders[i % len(senders)], "x" * 160))

        started = time.monotonic()
        await asyncio.gather(*(submit() for _ in range(CONNECTIONS)))
        return total / (time.monotonic() - started)


async def _dispatch(db: Database, api_url: str | None, total: int, within: float) -> float:
    """Run one dispatcher until ``total`` texts are sent (or ``within`` seconds); returns the seconds.
    ``api_url`` None: to :class:`_Accepting` instead of the fake."""
    writer = Writer(db.write_engine)
    async with _client() as client:
        sender: OutboundProvider = (
            _Accepting()
            if api_url is None
            else TwilioSender(client, api_url=api_url, account_sid=SID, auth_token=TOKEN)
        )
        dispatcher = Dispatcher(db, writer, {"twilio": sender}, lease=timedelta(seconds=15))
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        m = schema.messages.c
        started = time.monotonic()
        try:
            while time.monotonic() - started < within:
                with db.read_engine.connect() as conn:
                    sent = conn.execute(sa.select(sa.func.count()).where(m.state == "sent")).scalar_one()
                if sent >= total:
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await task
            writer.close()
    return time.monotonic() - started


def _arrivals(api_url: str) -> dict[str, list[tuple[float, int]]]:
    by_sender: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for sender, segments, at in httpx.get(f"{api_url}/bench/sent", timeout=30).json():
        by_sender[sender].append((at, segments))
    for arrivals in by_sender.values():
        arrivals.sort()
    return by_sender


def _max_in_one_second(arrivals: list[tuple[float, int]]) -> int:
    """The most segments whose requests arrived within any one-second window (slack: 5 ms of jitter)."""
    times = [t for t, _ in arrivals]
    best = 0
    for i, (start, _) in enumerate(arrivals):
        end = bisect.bisect_left(times, start + 1.0 - 0.005)
        best = max(best, sum(s for _, s in arrivals[i:end]))
    return best


def run(options: Options) -> Table:
    """dispatcher submissions/s to a local fake Twilio across 50 senders, and exact pacing at the fake"""
    table = Table()
    per_sender = 40 if options.smoke else 400
    minute = 10 if options.smoke else 60
    throughput = [(f"+1415555{i:04d}", 50.0, per_sender, 1) for i in range(50)]
    senders = [address for address, *_ in throughput]
    total = 50 * per_sender
    slow, triple = "+14155559998", "+14155559999"
    with fresh_sqlite(options.tmp_dir) as path:
        db = Database(f"sqlite:///{path}")
        upgrade(db)
        # The dispatcher alone: the same queue to a provider that answers at once, in this process.
        _queue(db, throughput)
        alone = total / asyncio.run(_dispatch(db, None, total, within=120))
        with db.write_engine.begin() as conn:
            conn.execute(sa.delete(schema.messages))
        _queue(db, throughput)
        with _fake([*senders, slow, triple]) as api_url:
            ceiling = asyncio.run(_adapter_alone(api_url, senders, total))
            httpx.post(f"{api_url}/bench/reset", timeout=30).raise_for_status()
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            seconds = asyncio.run(_dispatch(db, api_url, total, within=120))
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            arrivals = _arrivals(api_url)
            sent = sum(len(a) for a in arrivals.values())
            worst = max((_max_in_one_second(a), address) for address, a in arrivals.items())
            table.rows.append(
                {
                    "run": "ceiling: Twilio adapter alone to the fake",
                    "texts": f"{total:,}",
                    "submissions/s": f"{ceiling:,.0f}",
                }
            )
            table.rows.append(
                {
                    "run": "dispatcher to the fake, 50 senders x 50 seg/s",
                    "texts": f"{sent:,}",
                    "seconds": f"{seconds:.1f}",
                    "submissions/s": f"{sent / seconds:,.0f} ({sent / seconds / ceiling:.0%} of the ceiling)",
                    "busiest 1-s window": f"{worst[0]} seg (limit 50)",
                    "peak RSS MiB before/after": f"{before / 1024:.0f} / {after / 1024:.0f}",
                }
            )
            table.rows.append(
                {
                    "run": "dispatcher to an in-process provider (no HTTP)",
                    "texts": f"{total:,}",
                    "submissions/s": f"{alone:,.0f}",
                }
            )
            if worst[0] > 50:
                raise AssertionError(f"{worst[1]} sent {worst[0]} segments in one second, over its 50")
            # Pacing: a 1-segment/s sender for a minute, and 3-segment texts at 1 segment/s.
            _queue(db, [(slow, 1.0, minute + 20, 1), (triple, 1.0, minute // 3 + 5, 3)])
            asyncio.run(_dispatch(db, api_url, 10**9, within=minute + 2))
            arrivals = _arrivals(api_url)
        db.dispose()
    slow_times = [t for t, _ in arrivals[slow]]
    in_minute = bisect.bisect_left(slow_times, slow_times[0] + minute)
    gaps = [b - a for a, b in zip([t for t, _ in arrivals[triple]], [t for t, _ in arrivals[triple]][1:], strict=False)]
    table.rows.append(
        {
            "run": f"1 seg/s sender, {minute} s",
            "texts": f"{in_minute}",
            "seconds": f"{minute}",
            "submissions/s": f"{in_minute / minute:.2f}",
            "busiest 1-s window": f"{_max_in_one_second(arrivals[slow])} seg (limit 1)",
        }
    )
    table.rows.append(
        {
            "run": "3-segment texts at 1 seg/s",
            "texts": f"{len(gaps) + 1}",
            "seconds": "-",
            "submissions/s": f"gap {min(gaps):.2f}..{max(gaps):.2f} s",
            "busiest 1-s window": f"{_max_in_one_second(arrivals[triple])} seg",
        }
    )
    table.headlines += [
        Headline(
            "dispatcher submissions/s to the fake Twilio vs the adapter alone",
            "sqlite",
            sent / seconds,
            "submissions/s",
            ceiling=ceiling,
        ),
        Headline("dispatcher submissions/s to an in-process provider", "sqlite", alone, "submissions/s"),
        Headline(
            f"1 seg/s sender: texts in {minute} s",
            "sqlite",
            in_minute,
            "texts",
            target=f"{minute} ± 1",
            met=abs(in_minute - minute) <= 1,
        ),
        Headline(
            "3-segment texts at 1 seg/s: shortest gap",
            "sqlite",
            min(gaps),
            "s",
            target="≥ 3 s",
            met=min(gaps) >= 3.0 - 0.01,  # the slack the check below allows
        ),
    ]
    if abs(in_minute - minute) > 1:
        raise AssertionError(f"the 1-segment/s sender sent {in_minute} texts in {minute} s")
    if min(gaps) < 3.0 - 0.01:
        raise AssertionError(f"3-segment texts only {min(gaps):.3f} s apart at 1 segment/s")
    table.notes.append(
        "fake Twilio in its own process over HTTP/1.1 keep-alive; dispatcher on SQLite; arrival times read at the fake"
    )
    return table
