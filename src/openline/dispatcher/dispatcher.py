"""The dispatcher: claims due texts, paces each sender exactly, submits, records, retries.

One worker owns a sender at a time (a lease), paces it with :class:`Pacer` and enforces its daily cap.
A text is marked ``sending`` (committed) before it is submitted and ``sent`` once the provider answered,
so a text the provider confirmed is never submitted again; one left in ``sending`` by a worker that
died is settled as ambiguous by the next owner (see ``leases.settle_abandoned``), never resent.
Replies and openline's own texts go before broadcast traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import math
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter, Gauge

from openline.db import Database, Writer, schema
from openline.db.sql import claim
from openline.dispatcher.checks import DEFAULT_VALIDITY, Due, SendRules, Verdict, final_checks
from openline.dispatcher.leases import AMBIGUOUS, acquire, release, settle_abandoned
from openline.dispatcher.pacing import Pacer
from openline.providers.outbound import OutboundProvider, OutboundSms, SendFailed
from openline.senders import Sender, list_senders
from openline.states import BroadcastState, ConsentSource, MemberState, MessageKind, MessageState

__all__ = ["MAX_ATTEMPTS", "Dispatcher", "backoff"]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
# While the database is away, how often to try again to record what became of a text (see _until_recorded).
RECORD_RETRY_SECONDS = 0.5

SENT = Counter("openline_sent_texts", "Texts the provider accepted.", ["provider"])
FAILED = Counter("openline_failed_texts", "Texts that will not be sent, by reason.", ["provider", "reason"])
RETRIED = Counter("openline_retried_texts", "Send attempts that will be tried again.", ["provider"])
LEASED = Gauge("openline_leased_senders", "Senders this worker is sending for.")

m = schema.messages.c
b = schema.broadcasts.c

# Texts of a paused or cancelled broadcast stay where they are: the dispatcher does not claim them.
_HELD_BROADCASTS = sa.select(b.id).where(b.state.in_((BroadcastState.paused, BroadcastState.cancelled)))


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds before attempt ``attempt + 1``: exponential from 2 s, capped at 10 minutes, with full jitter
    in its upper half so retries from many texts do not arrive together."""
    ceiling = min(600.0, 2.0**attempt)
    return ceiling / 2 + (rng or random).random() * ceiling / 2


# Queued texts are due from their retry or deferral time, else from when they were queued; the partial
# index ix_messages_queue keeps them in that order per sender and kind, so a claim reads only due rows
# (a broadcast deferred to tomorrow costs nothing now). The condition is written out, not bound, so the
# databases can see it is the index's.
_QUEUED = sa.text("messages.state = 'queued'")
_DUE = sa.func.coalesce(m.next_attempt_at, m.created_at)
_FIRST_KINDS = (MessageKind.reply, MessageKind.system)


def _claim_statement(kinds: tuple[MessageKind, ...]) -> sa.Update:
    now = sa.bindparam("now", type_=schema.UTCDateTime())
    return claim(
        schema.messages,
        where=sa.and_(
            m.sender_id == sa.bindparam("sender"),
            _QUEUED,
            m.kind.in_(kinds),
            now >= _DUE,
            sa.or_(m.broadcast_id.is_(None), m.broadcast_id.not_in(_HELD_BROADCASTS)),
        ),
        order_by=[_DUE, m.id],
        limit=sa.bindparam("limit", type_=sa.Integer()),
        values={"state": MessageState.sending, "attempts": m.attempts + 1, "updated_at": now},
        returning=[
            m.id,
            m.community_id,
            m.sender_id,
            m.phone,
            m.member_id,
            m.kind,
            m.body,
            m.segments,
            m.media,
            m.attempts,
            m.created_at,
            m.expires_at,
            m.broadcast_id,
        ],
    )


_CLAIM_FIRST = _claim_statement(_FIRST_KINDS)
_CLAIM_BROADCASTS = _claim_statement((MessageKind.broadcast,))


def _claim(conn: sa.Connection, sender_id: int, limit: int, now: datetime) -> list[Any]:
    """Claim up to ``limit`` due texts of a sender: replies and openline's own texts first, then broadcasts."""
    claimed = list(conn.execute(_CLAIM_FIRST, {"sender": sender_id, "limit": limit, "now": now}).all())
    if len(claimed) < limit:
        more = {"sender": sender_id, "limit": limit - len(claimed), "now": now}
        claimed += conn.execute(_CLAIM_BROADCASTS, more).all()
    return claimed


class Dispatcher:
    def __init__(
        self,
        db: Database,
        writer: Writer,
        providers: dict[str, OutboundProvider],
        *,
        status_callback: Callable[[str], str | None] = lambda _provider: None,
        rules: SendRules | None = None,
        max_in_flight: int = 32,
        owner: str | None = None,
        lease: timedelta = timedelta(seconds=15),
    ) -> None:
        self._db = db
        self._writer = writer
        self._providers = providers
        self._status_callback = status_callback
        if rules is None:
            # Sending windows are the law in places: on unless a caller passes other rules. (Imported here:
            # broadcasts build on the dispatcher, not the other way round.)
            from openline.broadcasts.sendtime import broadcast_rules

            rules = broadcast_rules
        self._rules = rules
        self._lease = lease
        self._held_until = 0.0  # monotonic time until which this worker's leases are surely its own
        self._renewed = asyncio.Event()
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._stopping = False
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self.wake = asyncio.Event()  # set when new texts are queued in this process

    # -- leases --------------------------------------------------------------------------------

    def _renew(self) -> tuple[dict[int, Sender], set[int]]:
        now = datetime.now(UTC)
        with self._db.write_engine.begin() as conn:
            held, taken = acquire(conn, self.owner, self._lease, now)
            for sender_id in taken:
                settled = settle_abandoned(conn, sender_id, now)
                if settled:
                    log.warning(
                        "sender %s: %d texts left mid-send by a stopped worker marked ambiguous", sender_id, settled
                    )
            senders = {s.id: s for s in list_senders(conn) if s.id in held}
        return senders, taken

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    asked = time.monotonic()
                    senders, _ = await asyncio.to_thread(self._renew)
                    # Our own deadline is earlier than the lease's: stop sending well before another
                    # worker may take the senders over, even if this process stalls.
                    self._held_until = asked + self._lease.total_seconds() * 0.6
                    self._renewed.set()
                except sa.exc.DBAPIError as exc:
                    log.error("could not renew sender leases: %s", exc)
                    senders = {}  # stop sending: another worker may take the senders over
                for sender_id in list(self._loops):
                    if sender_id not in senders:
                        self._loops.pop(sender_id).cancel()
                for sender_id, sender in senders.items():
                    if sender.provider in self._providers and (
                        sender_id not in self._loops or self._loops[sender_id].done()
                    ):
                        self._loops[sender_id] = asyncio.create_task(self._sender_loop(sender))
                LEASED.set(len(self._loops))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._lease.total_seconds() / 3)
        finally:
            self._stopping = True  # outcomes not recorded by now are left for the next owner to settle
            for task in self._loops.values():
                task.cancel()
            await asyncio.gather(*self._loops.values(), return_exceptions=True)
            await asyncio.gather(*self._sends, return_exceptions=True)  # let submitted texts be recorded
            with contextlib.suppress(sa.exc.DBAPIError):  # else the leases expire by themselves
                await asyncio.to_thread(self._release)

    def _release(self) -> None:
        with self._db.write_engine.begin() as conn:
            release(conn, self.owner)

    # -- one sender ----------------------------------------------------------------------------

    def _sent_today(self, sender_id: int) -> int:
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        with self._db.read_engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(m.segments), 0)).where(
                        m.sender_id == sender_id, m.sent_at >= midnight
                    )
                ).scalar_one()
            )

    async def _sender_loop(self, sender: Sender) -> None:
        """Send for ``sender`` until cancelled; an unexpected error (the database briefly away) restarts
        the loop after a pause instead of silently ending it."""
        while True:
            try:
                await self._send_for(sender)
            except Exception:
                log.exception("sending for %s failed; starting again in a second", sender.address)
                await asyncio.sleep(1.0)

    async def _send_for(self, sender: Sender) -> None:
        provider = self._providers[sender.provider]
        pacer = Pacer(sender.mps)
        # A sender just taken over may have sent a moment ago from its previous owner: start one slot on.
        pacer.reserve(1)
        # Claim about a tenth of a second of work at a time: texts spend as little time as possible
        # in "sending" before they are submitted.
        batch = max(1, math.floor(sender.mps * 0.1))
        day, used = datetime.now(UTC).date(), await asyncio.to_thread(self._sent_today, sender.id)
        while True:
            await asyncio.sleep(max(0.0, pacer.ready_at() - time.monotonic()))
            await self._until_held()
            if sender.daily_cap is not None:
                if datetime.now(UTC).date() != day:
                    day, used = datetime.now(UTC).date(), 0
                if used >= sender.daily_cap:
                    await asyncio.sleep(30)  # the cap resets at midnight UTC
                    continue
            claimed = await self._writer.run(lambda conn: _claim(conn, sender.id, batch, datetime.now(UTC)))
            if not claimed:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=0.25)
                continue
            # Claimed texts not yet handed to _submit; given back if this loop is stopped (those already
            # settled are left alone: giving back only touches texts still "sending").
            unsent = [row.id for row in claimed]
            try:
                dues = [
                    Due(
                        row.id,
                        row.community_id,
                        row.sender_id,
                        row.phone,
                        row.member_id,
                        MessageKind(row.kind),
                        row.body,
                        row.segments or 1,
                        row.media,
                        row.attempts,
                        row.created_at,
                        row.expires_at,
                        row.broadcast_id,
                    )
                    for row in sorted(claimed, key=lambda r: (r.kind == MessageKind.broadcast, r.id))
                ]
                # Checked together, within a tenth of a second of being sent.
                verdicts = await asyncio.to_thread(self._check, dues)
                for due, (verdict, reason, not_before) in zip(dues, verdicts, strict=True):
                    if sender.daily_cap is not None and used + due.segments > sender.daily_cap:
                        await self._writer.run(functools.partial(_requeue, due=due, not_before=None, reason=None))
                        continue
                    if verdict is not Verdict.send:
                        await self._writer.run(
                            functools.partial(_settle, due=due, verdict=verdict, reason=reason, not_before=not_before)
                        )
                        continue
                    await self._in_flight.acquire()
                    try:
                        await asyncio.sleep(max(0.0, pacer.ready_at() - time.monotonic()))
                        await self._until_held()
                    except BaseException:
                        self._in_flight.release()
                        raise
                    # The slot starts now, not when it was due: a late wake-up pushes the next text
                    # back instead of crowding it closer to this one.
                    pacer.reserve(due.segments)
                    used += due.segments
                    unsent.remove(due.id)  # from here on its outcome is recorded by _submit
                    task = asyncio.create_task(self._submit(provider, sender, due))
                    self._sends.add(task)
                    task.add_done_callback(self._sends.discard)
            except BaseException:
                # Stopping (or failing): what was claimed but not submitted goes back to the queue, not to
                # "ambiguous".
                if unsent:
                    give_back = functools.partial(_give_back, ids=tuple(unsent))
                    await asyncio.shield(self._until_recorded(functools.partial(self._writer.run, give_back)))
                raise

    async def _until_held(self) -> None:
        """Wait while this worker cannot be sure its leases are still its own (a renewal is late)."""
        while time.monotonic() >= self._held_until:
            self._renewed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._renewed.wait(), timeout=0.25)

    async def _until_recorded(self, write: Callable[[], Awaitable[object]]) -> None:
        """Run ``write``, and again while the database is unavailable, until it commits (or this worker stops).

        Only this worker knows what became of a text it claimed: the provider took it, refused it, or it
        was never submitted. Losing that to a database restart left the text in ``sending`` for good when
        this worker kept its senders (a broadcast never finished), or had a worker taking a sender over
        mark it ambiguous though it was sent, or never sent at all. Recorded late, the outcome stands.
        """
        for attempt in itertools.count():
            try:
                await write()
                return
            except sa.exc.DBAPIError as exc:
                unavailable = isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
                if self._stopping or not (unavailable or exc.connection_invalidated):
                    raise
                if attempt == 0:
                    log.warning("could not record what became of a text, trying until the database is back: %s", exc)
            await asyncio.sleep(RECORD_RETRY_SECONDS)

    def _check(self, batch: list[Due]) -> list[tuple[Verdict, str | None, datetime | None]]:
        with self._db.read_engine.connect() as conn:
            return final_checks(conn, batch, datetime.now(UTC), self._rules)

    async def _submit(self, provider: OutboundProvider, sender: Sender, due: Due) -> None:
        try:
            sms = OutboundSms(
                message_id=due.id,
                to=due.phone,
                sender=sender.address,
                body=due.body,
                media_urls=tuple(str(item["url"]) for item in due.media or ()),
                status_callback=self._status_callback(sender.provider),
            )
            try:
                provider_id = await provider.send(sms)
            except SendFailed as failed:
                outcome = functools.partial(_failed, due=due, sender=sender, failure=failed)
            except Exception as exc:  # a bug in an adapter must not leave the text in "sending"
                log.exception("provider %s raised on text %s", sender.provider, due.id)
                unknown = SendFailed(f"{type(exc).__name__}: {exc}", ambiguous=True)
                outcome = functools.partial(_failed, due=due, sender=sender, failure=unknown)
            else:
                SENT.labels(sender.provider).inc()
                # The common case, as one prebuilt statement: the writer runs a group of them as one executemany.
                now = datetime.now(UTC)
                sent = {"_id": due.id, "pid": provider_id, "now": now}
                await self._until_recorded(lambda: self._writer.execute(_SENT, sent))
                return
            await self._until_recorded(lambda: self._writer.run(outcome))
        finally:
            self._in_flight.release()


# -- recording outcomes (run by the writer) ------------------------------------------------------


_SENT = (
    sa.update(schema.messages)
    # A text a new lease owner already settled as ambiguous was sent after all: say so.
    .where(m.id == sa.bindparam("_id"), sa.or_(m.state == MessageState.sending, m.error_code == "ambiguous"))
    .values(
        state=MessageState.sent,
        provider_message_id=sa.bindparam("pid"),
        sent_at=sa.bindparam("now", type_=schema.UTCDateTime()),
        updated_at=sa.bindparam("now", type_=schema.UTCDateTime()),
        error_code=None,
        error_reason=None,
    )
)


def _give_back(conn: sa.Connection, ids: tuple[int, ...]) -> None:
    now = datetime.now(UTC)
    conn.execute(
        sa.update(schema.messages)
        .where(m.id.in_(ids), m.state == MessageState.sending)
        .values(state=MessageState.queued, attempts=m.attempts - 1, updated_at=now)
    )
    # Never submitted, so queued again even if a worker that took the sender over while the database was
    # away from this one already settled them as ambiguous: nobody can have texted them, nobody is twice.
    conn.execute(
        sa.update(schema.messages)
        .where(m.id.in_(ids), m.state == MessageState.failed, m.error_code == AMBIGUOUS)
        .values(state=MessageState.queued, attempts=m.attempts - 1, error_code=None, error_reason=None, updated_at=now)
    )


def _requeue(conn: sa.Connection, due: Due, not_before: datetime | None, reason: str | None) -> None:
    values: dict[str, Any] = {}
    if due.kind is MessageKind.broadcast and not_before is not None:
        # Held back by its window or cap, not by a failure: it stays good as long after it may go again.
        values["expires_at"] = not_before + DEFAULT_VALIDITY
    conn.execute(
        sa.update(schema.messages)
        .where(m.id == due.id)
        # The attempt was not made: give it back.
        .values(
            state=MessageState.queued,
            attempts=m.attempts - 1,
            next_attempt_at=not_before,
            error_reason=reason,
            updated_at=datetime.now(UTC),
            **values,
        )
    )


def _settle(conn: sa.Connection, due: Due, verdict: Verdict, reason: str | None, not_before: datetime | None) -> None:
    if verdict is Verdict.later:
        _requeue(conn, due, not_before, reason)
        return
    state = MessageState.cancelled if verdict is Verdict.cancel else MessageState.failed
    conn.execute(
        sa.update(schema.messages)
        .where(m.id == due.id)
        .values(state=state, error_code=verdict.value, error_reason=reason, updated_at=datetime.now(UTC))
    )
    FAILED.labels("-", verdict.value).inc()


def _failed(conn: sa.Connection, due: Due, sender: Sender, failure: SendFailed) -> None:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "error_code": failure.code or ("ambiguous" if failure.ambiguous else None),
        "error_reason": failure.reason,
        "updated_at": now,
    }
    if failure.transient and due.attempts < MAX_ATTEMPTS:
        delay = failure.retry_after if failure.retry_after is not None else backoff(due.attempts)
        values.update(state=MessageState.queued, next_attempt_at=now + timedelta(seconds=delay))
        RETRIED.labels(sender.provider).inc()
    else:
        if failure.transient:
            values["error_reason"] = f"gave up after {due.attempts} attempts: {failure.reason}"
        values["state"] = MessageState.failed
        FAILED.labels(sender.provider, "ambiguous" if failure.ambiguous else (failure.code or "error")).inc()
    conn.execute(sa.update(schema.messages).where(m.id == due.id).values(**values))
    if failure.opted_out and due.member_id is not None:
        _opted_out_at_carrier(conn, due, sender, failure, now)


def _opted_out_at_carrier(conn: sa.Connection, due: Due, sender: Sender, failure: SendFailed, now: datetime) -> None:
    """The carrier holds a STOP we never saw: record it, so nothing else is queued for this person."""
    mem = schema.members.c
    previous = conn.execute(sa.select(mem.state).where(mem.id == due.member_id)).scalar_one_or_none()
    if previous is None or previous == MemberState.unsubscribed:
        return
    conn.execute(
        sa.update(schema.members).where(mem.id == due.member_id).values(state=MemberState.unsubscribed, updated_at=now)
    )
    conn.execute(
        sa.insert(schema.consent_events).values(
            community_id=due.community_id,
            member_id=due.member_id,
            previous_state=previous,
            new_state=MemberState.unsubscribed,
            source=ConsentSource.sms,
            occurred_at=now,
            evidence={
                "provider": sender.provider,
                "error_code": failure.code,
                "reason": failure.reason,
                "message_id": due.id,
                "note": "opted out at the carrier",
            },
        )
    )
