"""A local carrier: what happens to a text after the provider's API said yes, for openline's real adapters.

A provider's fake (:mod:`openline.providers.fake_twilio`, :mod:`openline.providers.fakes`) answers the API
exactly as the provider does; :class:`Carrier` adds what the provider and the networks behind it do next:

- **queueing and throughput**: a message is accepted at once and queued per sender number; the number lets
  out ``mps`` segments per second (a US long code: 1), never more in any one-second window;
- **status callbacks**, signed as the provider signs them: ``sent`` as a message leaves, then ``delivered``
  (or ``undelivered`` with an error code) ``delivery_delay`` seconds later; to the message's own callback
  URL, or to ``callback_url``, which also reaches an openline whose public URL is not this machine;
- **expiry**: a message still queued when its validity period ends fails with the provider's code;
- **a daily cap** per sender number (segments per day, the day as US carriers count it: Pacific time);
- **failures**: a share of messages is undelivered with realistic carrier codes;
- **opt-outs**: once a number texted STOP, the API refuses new messages to it (Twilio 21610).

Everything is in memory. Callbacks only go to loopback addresses: a rehearsal never posts elsewhere.
``POST /_sim/stop`` (form field ``From``) records an opt-out, ``POST /_sim/start`` lifts it, ``GET /_sim/stats``
shows the counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from openline.phone import InvalidAddress, to_e164

__all__ = ["Carrier", "CarrierOptions", "Dialect", "Job"]

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# US carriers' daily limits reset at midnight Pacific time.
CARRIER_DAY = ZoneInfo("America/Los_Angeles")
_CLOCK_RESOLUTION = time.get_clock_info("monotonic").resolution


@dataclass(frozen=True)
class CarrierOptions:
    mps: float = 1.0  # segments per second per sender number
    daily_cap: int | None = None  # segments per sender number per (Pacific) day
    fail: float = 0.0  # share of messages the network does not deliver
    latency: float = 0.05  # seconds the API takes to answer
    delivery_delay: float = 1.0  # seconds from "sent" to "delivered"/"undelivered"
    validity: float | None = None  # seconds a message may wait when it asks nothing; None: the provider's default
    queue_limit: float | None = None  # seconds of backlog per number before refusing; None: the provider's
    callback_url: str | None = None  # where every callback goes (signed for the message's own URL when it has one)
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.mps <= 0:
            raise ValueError("mps must be more than 0 segments per second")
        if not 0 <= self.fail <= 1:
            raise ValueError("the failure share must be between 0 and 1 (e.g. 0.02 for 2 %)")
        if self.daily_cap is not None and self.daily_cap < 1:
            raise ValueError("the daily cap must be at least 1 segment")
        if self.callback_url is not None:
            _check_loopback(self.callback_url)


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if urlsplit(url).scheme not in ("http", "https") or host not in LOOPBACK_HOSTS:
        raise ValueError(f"callbacks only go to this machine ({', '.join(LOOPBACK_HOSTS)}), not {url!r}")


@dataclass(eq=False)
class Job:
    """One accepted message on its way through the carrier."""

    id: str
    sender: str
    to: str
    segments: int
    received_at: float  # time.monotonic()
    deadline: float  # time.monotonic() after which it expires if still queued
    callback: str | None  # the URL the provider signs the callbacks for
    record: Any  # the fake's own record of the message
    state: str = "queued"  # queued, sending, sent, delivered, undelivered, failed
    error_code: str | None = None
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)


class Dialect(Protocol):
    """What differs between providers: their API (a fake's app), their codes and their callbacks.

    The carrier speaks of ``sent``, ``delivered`` and ``undelivered``; a dialect says them its own way.
    """

    name: str
    app: ASGIApp
    expiry: tuple[str, str]  # (final status, error code) of a message that waited past its validity
    capped: str  # error code of a message over the daily cap
    failures: tuple[str, ...]  # error codes of undelivered messages
    default_validity: float
    default_queue_limit: float | None

    def bind(self, carrier: Carrier) -> None:
        """Start handing accepted messages to ``carrier.submit``."""

    def opt_out(self, number: str, stopped: bool) -> None: ...

    def callback(self, job: Job, status: str, code: str | None, url: str) -> tuple[bytes, dict[str, str]]:
        """The signed callback body and headers for ``job`` reaching ``status``, signed for ``url``."""
        ...


class Carrier:
    """Queues, paces, expires and settles the messages a provider's fake accepts; serve ``app``."""

    def __init__(self, dialect: Dialect, options: CarrierOptions, client: httpx.AsyncClient | None = None) -> None:
        self.dialect = dialect
        self.options = options
        self.releases: list[tuple[str, float]] = []  # (sender, time.monotonic()) of every segment let out
        self.counts: Counter[str] = Counter()
        self._client = client
        self._own_client = client is None
        self._rng = random.Random(options.seed)
        self._queues: dict[str, deque[Job]] = {}
        self._queued_segments: Counter[str] = Counter()
        self._next_free: dict[str, float] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}
        self._callbacks: set[asyncio.Task[None]] = set()
        self._used_today: dict[tuple[str, str], int] = {}
        self._warned: set[str] = set()
        dialect.bind(self)
        self.app = Starlette(
            routes=[
                Route("/_sim/stop", self._stop, methods=["POST"]),
                Route("/_sim/start", self._start, methods=["POST"]),
                Route("/_sim/stats", self._stats, methods=["GET"]),
                Mount("/", app=dialect.app),
            ]
        )

    # -- what the dialect calls ----------------------------------------------------------------------------------

    def backlog(self, sender: str) -> float:
        """Seconds of queued traffic ahead of a new message from ``sender``."""
        return self._queued_segments[sender] / self.options.mps

    def queue_full(self, sender: str) -> bool:
        limit = self.options.queue_limit if self.options.queue_limit is not None else self.dialect.default_queue_limit
        return limit is not None and self.backlog(sender) > limit

    def validity(self, asked: float | None) -> float:
        if asked is not None:
            return asked
        return self.options.validity if self.options.validity is not None else self.dialect.default_validity

    def submit(self, job: Job) -> None:
        """Queue an accepted message behind the others of its sender."""
        self.counts["accepted"] += 1
        self._queues.setdefault(job.sender, deque()).append(job)
        self._queued_segments[job.sender] += job.segments
        loop = asyncio.get_running_loop()
        job.expiry = loop.call_at(loop.time() + (job.deadline - time.monotonic()), self._expire, job)
        drain = self._drains.get(job.sender)
        if drain is None or drain.done():
            self._drains[job.sender] = asyncio.create_task(self._drain(job.sender))

    def refused(self, code: int | str) -> None:
        self.counts[f"refused {code}"] += 1

    # -- the queue ---------------------------------------------------------------------------------------------

    async def _slot(self, sender: str) -> None:
        """Wait until ``sender`` may let out its next segment."""
        wait = self._next_free.get(sender, 0.0) - time.monotonic()
        if wait > 0:
            # The loop may run a timer up to its clock resolution early; never release before the slot.
            await asyncio.sleep(wait + _CLOCK_RESOLUTION)

    def _release(self, sender: str) -> None:
        now = time.monotonic()
        self.releases.append((sender, now))
        self.counts["segments"] += 1
        # Spaced from the actual release: no window of one second ever holds more than mps segments.
        self._next_free[sender] = now + 1 / self.options.mps

    async def _drain(self, sender: str) -> None:
        queue = self._queues[sender]
        while queue:
            job = queue.popleft()
            if job.state != "queued":
                continue  # expired while waiting
            job.state = "sending"
            await self._slot(sender)
            if time.monotonic() > job.deadline:
                self._expire(job, sending=True)
                continue
            if job.expiry is not None:
                job.expiry.cancel()
            self._release(sender)
            for _ in range(job.segments - 1):
                await self._slot(sender)
                self._release(sender)
            self._queued_segments[sender] -= job.segments
            self._settle(job)

    def _expire(self, job: Job, sending: bool = False) -> None:
        if job.state != ("sending" if sending else "queued"):
            return
        self._queued_segments[job.sender] -= job.segments
        job.state, job.error_code = self.dialect.expiry
        self.counts[f"{job.state} {job.error_code}"] += 1
        self._callback(job, [(job.state, job.error_code)])

    def _settle(self, job: Job) -> None:
        """The network's verdict on a message that just left: delivered, over the daily cap, or failed."""
        day = (job.sender, datetime.now(CARRIER_DAY).date().isoformat())
        used = self._used_today.get(day, 0)
        if self.options.daily_cap is not None and used + job.segments > self.options.daily_cap:
            final, code = "undelivered", self.dialect.capped
        elif self.options.fail and self._rng.random() < self.options.fail:
            final, code = "undelivered", self._rng.choice(self.dialect.failures)
            self._used_today[day] = used + job.segments
        else:
            final, code = "delivered", None
            self._used_today[day] = used + job.segments
        job.state, job.error_code = final, code
        self.counts["sent"] += 1
        self.counts[final if code is None else f"{final} {code}"] += 1
        self._callback(job, [("sent", None), (final, code)])

    # -- callbacks ---------------------------------------------------------------------------------------------

    def _callback(self, job: Job, steps: list[tuple[str, str | None]]) -> None:
        signed_for = job.callback or self.options.callback_url
        target = self.options.callback_url or job.callback
        if signed_for is None or target is None:
            self.counts["callbacks without a URL"] += 1
            return
        try:
            _check_loopback(target)
        except ValueError as exc:
            self.counts["callbacks not sent (not loopback)"] += 1
            if target not in self._warned:
                self._warned.add(target)
                log.warning("%s; pass --callback-url http://127.0.0.1:PORT/webhooks/%s/status", exc, self.dialect.name)
            return
        task = asyncio.create_task(self._post(job, steps, signed_for, target))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _post(self, job: Job, steps: list[tuple[str, str | None]], signed_for: str, target: str) -> None:
        """Post the callbacks of one message in order, the final one after the delivery delay."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        for i, (status, code) in enumerate(steps):
            if i:
                await asyncio.sleep(self.options.delivery_delay)
            body, headers = self.dialect.callback(job, status, code, signed_for)
            try:
                response = await self._client.post(target, content=body, headers=headers)
            except httpx.HTTPError as exc:
                self.counts["callbacks failed"] += 1
                log.warning("status callback to %s failed: %s", target, exc)
                continue
            answered_ok = 200 <= response.status_code < 300
            self.counts["callbacks answered 2xx" if answered_ok else f"callbacks answered {response.status_code}"] += 1

    # -- control and introspection -----------------------------------------------------------------------------

    def queued(self) -> int:
        return sum(1 for queue in self._queues.values() for job in queue if job.state in ("queued", "sending"))

    async def idle(self) -> None:
        """Wait until nothing is queued and every callback has been posted."""
        while pending := [task for task in (*self._drains.values(), *self._callbacks) if not task.done()]:
            await asyncio.wait(pending)

    async def aclose(self) -> None:
        for task in [*self._drains.values(), *self._callbacks]:
            task.cancel()
        for task in [*self._drains.values(), *self._callbacks]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._own_client and self._client is not None:
            await self._client.aclose()

    def opt_out(self, number: str, stopped: bool = True) -> None:
        """Record (or, with ``stopped=False``, lift) a STOP from ``number``, written as people write it."""
        try:
            number = to_e164(number if number.strip().startswith("+") else "+" + number.strip())
        except InvalidAddress:
            number = number.strip()  # not a phone number: kept as given, as the provider would compare it
        self.dialect.opt_out(number, stopped)

    async def _number(self, request: Request) -> str | None:
        fields = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        number = (fields.get("From") or request.query_params.get("From") or "").strip()
        return number or None

    async def _stop(self, request: Request) -> Response:
        number = await self._number(request)
        if number is None:
            return JSONResponse({"error": "give the number that texted STOP as From"}, status_code=400)
        self.opt_out(number)
        self.counts["opt-outs"] += 1
        return JSONResponse({"opted_out": number})

    async def _start(self, request: Request) -> Response:
        number = await self._number(request)
        if number is None:
            return JSONResponse({"error": "give the number that texted START as From"}, status_code=400)
        self.opt_out(number, stopped=False)
        return JSONResponse({"opted_in": number})

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(self.stats())

    def stats(self) -> dict[str, Any]:
        return {
            "provider": self.dialect.name,
            "counts": dict(sorted(self.counts.items())),
            "queued": self.queued(),
            "backlog_seconds": {sender: round(self.backlog(sender), 1) for sender in sorted(self._queues)},
        }
