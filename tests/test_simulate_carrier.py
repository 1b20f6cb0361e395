"""The carrier simulator, driven by openline's real outbound adapters: pacing, opt-outs, failures, expiry,
daily caps, full queues, and status callbacks that openline's own webhooks accept."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typer.testing import CliRunner

from openline.cli_simulate import app as simulate_app
from openline.db import schema
from openline.providers.base import IgnoredEvent, WebhookRequest
from openline.providers.outbound import OutboundSms, SendFailed
from openline.providers.telnyx import TelnyxWebhook
from openline.providers.telnyx_send import TelnyxSender
from openline.providers.twilio import TwilioWebhook
from openline.providers.twilio_send import TwilioSender
from openline.runtime import Runtime
from openline.settings import Settings
from openline.simulate.carrier import Carrier, CarrierOptions
from openline.simulate.carriers import TelnyxCarrier, TwilioCarrier, public_key
from openline.web import create_app

from .conftest import count

ACCOUNT = "AC" + "5e" * 16
TOKEN = "carrier-test-token-0123456789abcd"
NUMBER = "+14155550100"
PUBLIC = "https://sms.example.org"  # openline's public URL: callbacks are signed for it, posted locally
CALLBACK = f"{PUBLIC}/webhooks/twilio/status"
LOCAL = "http://127.0.0.1:8000/webhooks/twilio/status"
API = "http://127.0.0.1:8089"
FAILURE_CODES = {"30003", "30005", "30006", "30007", "30008"}


@dataclass
class Posted:
    url: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))


@dataclass
class Inbox:
    """Where the carrier's callbacks land in these tests (instead of openline)."""

    posts: list[Posted] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.posts.append(Posted(str(request.url), dict(request.headers), await request.body()))
            return Response("<Response></Response>", media_type="application/xml")

        return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])

    def finals(self) -> dict[str, tuple[str, str | None]]:
        """Each message's last status and error code."""
        out: dict[str, tuple[str, str | None]] = {}
        for post in self.posts:
            form = post.form()
            out[form["MessageSid"]] = (form["MessageStatus"], form.get("ErrorCode"))
        return out


def sms(n: int, to: str | None = None, body: str = "Hey, it's the band. Reply YES to get my texts.") -> OutboundSms:
    return OutboundSms(n, to or f"+1202555{n:04d}", NUMBER, body, status_callback=CALLBACK)


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@asynccontextmanager
async def rig(inbox: Inbox, **options: Any) -> AsyncIterator[tuple[Carrier, httpx.AsyncClient]]:
    """A Twilio carrier whose callbacks land in ``inbox``, and an API client on it."""
    chosen: dict[str, Any] = {"latency": 0, "delivery_delay": 0, "callback_url": LOCAL, **options}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=inbox.app())) as callbacks:
        carrier = Carrier(TwilioCarrier(ACCOUNT, TOKEN), CarrierOptions(**chosen), callbacks)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=carrier.app)) as api:
            try:
                yield carrier, api
            finally:
                await carrier.aclose()


def twilio(api: httpx.AsyncClient, validity_period: int | None = None) -> TwilioSender:
    return TwilioSender(api, api_url=API, account_sid=ACCOUNT, auth_token=TOKEN, validity_period=validity_period)


def most_in_one_second(times: list[float]) -> int:
    """The most releases in any half-open window [t, t + 1 s)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_paces_each_number_at_its_mps_and_posts_signed_callbacks(inbox: Inbox) -> None:
    async with rig(inbox, mps=5) as (carrier, api):
        started = time.monotonic()
        sids = await asyncio.gather(*(twilio(api).send(sms(n)) for n in range(11)))
        assert len(set(sids)) == 11 and time.monotonic() - started < 0.5  # accepted at once, as Twilio does
        await asyncio.wait_for(carrier.idle(), 10)

    times = [t for number, t in carrier.releases if number == NUMBER]
    assert len(times) == 11
    assert most_in_one_second(times) == 5  # at the rate, never above it
    assert times[-1] - times[0] >= 2.0  # 11 segments at 5/s: the last leaves 2 s after the first
    assert all(b - a >= 0.2 for a, b in itertools.pairwise(times))

    finals = inbox.finals()
    assert set(finals) == set(sids) and set(finals.values()) == {("delivered", None)}
    checker = TwilioWebhook(TOKEN, ACCOUNT)
    for post in inbox.posts:
        # Posted to this machine, signed for openline's public URL: what /webhooks/twilio/status checks.
        assert post.url == LOCAL
        checker.verify(WebhookRequest("POST", CALLBACK, post.headers, post.body), datetime.now(UTC))
    assert [p.form()["MessageStatus"] for p in inbox.posts if p.form()["MessageSid"] == sids[0]] == [
        "sent",
        "delivered",
    ]


async def test_a_long_text_takes_one_slot_per_segment(inbox: Inbox) -> None:
    body = "Hey, it's the band. " * 12  # 240 GSM-7 characters: 2 segments
    async with rig(inbox, mps=2) as (carrier, api):
        await asyncio.gather(*(twilio(api).send(sms(n, body=body)) for n in range(2)))
        await asyncio.wait_for(carrier.idle(), 10)
    times = [t for _, t in carrier.releases]
    assert len(times) == 4 and most_in_one_second(times) == 2
    assert times[-1] - times[0] >= 1.5


async def test_stop_then_21610(inbox: Inbox) -> None:
    fan = "+12025550142"
    async with rig(inbox) as (carrier, api):
        assert (await api.post(f"{API}/_sim/stop", data={"From": fan})).status_code == 200
        with pytest.raises(SendFailed) as caught:
            await twilio(api).send(sms(1, to=fan))
        assert caught.value.code == "21610" and caught.value.opted_out
        await api.post(f"{API}/_sim/start", data={"From": fan})
        assert (await twilio(api).send(sms(2, to=fan))).startswith("SM")
        assert carrier.counts["opt-outs"] == 1


async def test_every_message_fails_with_realistic_codes(inbox: Inbox) -> None:
    async with rig(inbox, mps=100, fail=1.0, seed=3) as (carrier, api):
        sids = await asyncio.gather(*(twilio(api).send(sms(n)) for n in range(40)))
        await asyncio.wait_for(carrier.idle(), 10)
    finals = inbox.finals()
    assert {finals[sid][0] for sid in sids} == {"undelivered"}
    codes = {finals[sid][1] for sid in sids}
    assert codes <= FAILURE_CODES and len(codes) >= 3


async def test_a_message_queued_past_its_validity_fails_30036(inbox: Inbox) -> None:
    async with rig(inbox, mps=1) as (carrier, api):
        assert carrier.validity(None) == 36_000  # Twilio's default ValidityPeriod: 10 hours
        # ValidityPeriod=1: at 1 segment/s the first leaves at once, the last ones wait too long.
        sids = await asyncio.gather(*(twilio(api, validity_period=1).send(sms(n)) for n in range(4)))
        await asyncio.wait_for(carrier.idle(), 10)
    finals = inbox.finals()
    assert finals[sids[0]] == ("delivered", None)
    expired = [sid for sid in sids if finals[sid] == ("failed", "30036")]
    assert sids[2] in expired and sids[3] in expired
    assert len(carrier.releases) == 4 - len(expired)  # an expired message never left
    for sid in expired:  # failed with 30036, never "sent"
        assert [p.form()["MessageStatus"] for p in inbox.posts if p.form()["MessageSid"] == sid] == ["failed"]


async def test_daily_cap(inbox: Inbox) -> None:
    async with rig(inbox, mps=20, daily_cap=2) as (carrier, api):
        sids = [await twilio(api).send(sms(n)) for n in range(3)]
        await asyncio.wait_for(carrier.idle(), 10)
    finals = inbox.finals()
    assert [finals[sid] for sid in sids] == [("delivered", None), ("delivered", None), ("undelivered", "30023")]


async def test_a_full_queue_refuses_with_21611(inbox: Inbox) -> None:
    # More than the queue may hold (here 1 s of traffic; Twilio: 10 hours): 21611 when creating, retried later.
    async with rig(inbox, mps=1, queue_limit=1.0) as (carrier, api):
        await twilio(api).send(sms(10))
        await asyncio.sleep(0.05)  # it leaves at once
        await twilio(api).send(sms(11))  # 1 s queued
        await twilio(api).send(sms(12))  # 2 s queued: more than the limit
        with pytest.raises(SendFailed) as caught:
            await twilio(api).send(sms(13))
        assert caught.value.code == "21611" and caught.value.transient
        assert carrier.stats()["counts"]["refused 21611"] == 1


@pytest.fixture
def openline(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(
        database_url=database_url,
        public_url=PUBLIC,
        twilio_auth_token=TOKEN,
        twilio_account_sid=ACCOUNT,
        spool_dir=tmp_path / "spool",
    )
    runtime = Runtime.open(settings, migrate=False)
    yield runtime
    runtime.close()


async def test_openline_accepts_the_callbacks(openline: Runtime) -> None:
    """Callbacks posted into openline's real app are accepted and stored as delivery receipts."""
    app = create_app(openline, own_runtime=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as into_openline:
        carrier = Carrier(
            TwilioCarrier(ACCOUNT, TOKEN),
            CarrierOptions(mps=50, latency=0, delivery_delay=0, callback_url=LOCAL, fail=0.5, seed=1),
            into_openline,
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=carrier.app)) as api:
            sids = await asyncio.gather(*(twilio(api).send(sms(n)) for n in range(6)))
        await asyncio.wait_for(carrier.idle(), 10)
        await carrier.aclose()
    assert carrier.counts["callbacks answered 2xx"] == 12  # sent + final, for each
    receipts = schema.message_receipts.c
    assert count(openline.db, schema.message_receipts, receipts.provider_message_id.in_(sids)) == 12
    undelivered = sum(n for key, n in carrier.counts.items() if key.startswith("undelivered "))
    assert 0 < undelivered < 6
    assert count(openline.db, schema.message_receipts, receipts.status == "undelivered") == undelivered


async def test_telnyx_carrier_paces_and_signs_with_ed25519() -> None:
    inbox: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: Request) -> Response:
        inbox.append((dict(request.headers), await request.body()))
        return Response(b"")

    key = Ed25519PrivateKey.generate()
    sink = Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sink)) as callbacks:
        carrier = Carrier(
            TelnyxCarrier("KEY-telnyx", key),
            CarrierOptions(
                mps=4, latency=0, delivery_delay=0, callback_url="http://127.0.0.1:8000/webhooks/telnyx/status"
            ),
            callbacks,
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=carrier.app)) as api:
            sender = TelnyxSender(api, api_url=API, api_key="KEY-telnyx")
            ids = await asyncio.gather(*(sender.send(sms(n)) for n in range(6)))
            await api.post(f"{API}/_sim/stop", data={"From": "+12025550999"})
            with pytest.raises(SendFailed) as caught:
                await sender.send(sms(99, to="+12025550999"))
            assert caught.value.opted_out
        await asyncio.wait_for(carrier.idle(), 10)
        await carrier.aclose()
    assert most_in_one_second([t for _, t in carrier.releases]) == 4
    hook = TelnyxWebhook(public_key(key))
    reports = []
    for headers, body in inbox:
        request = WebhookRequest("POST", "http://127.0.0.1:8000/webhooks/telnyx/status", headers, body)
        hook.verify(request, datetime.now(UTC))
        try:
            reports.append(hook.parse_status(request))
        except IgnoredEvent:
            continue
    assert {report.provider_message_id for report in reports} == set(ids)
    assert sorted(report.status for report in reports) == ["delivered"] * 6 + ["sent"] * 6


def test_cli_refuses_a_non_loopback_callback_url() -> None:
    result = CliRunner().invoke(
        simulate_app,
        ["carrier", "--account-sid", ACCOUNT, "--auth-token", TOKEN, "--callback-url", "https://sms.example.org/x"],
    )
    assert result.exit_code != 0
    assert "callbacks only go to this machine" in result.output
