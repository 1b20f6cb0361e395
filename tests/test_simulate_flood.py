"""The launch-night flood: its story, its signed requests, and a real run against openline served on a loopback
port (web, conversation engine and dispatcher), sending its replies through the carrier simulator."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from starlette.types import ASGIApp
from typer.testing import CliRunner

from openline.cli_simulate import DEFAULT_LANGUAGES, share
from openline.cli_simulate import app as simulate_app
from openline.db import schema
from openline.engine.keywords import Intent, classify
from openline.phone import to_e164
from openline.providers.base import WebhookRequest
from openline.providers.twilio import TwilioWebhook
from openline.runtime import Runtime
from openline.settings import Settings
from openline.simulate.carrier import Carrier, CarrierOptions
from openline.simulate.carriers import TwilioCarrier
from openline.simulate.flood import FloodPlan, check_loopback, render, run_flood
from openline.simulate.story import CHATTER, GREETINGS, LANGUAGES, write_story
from openline.simulate.traffic import TwilioInbound
from openline.web import create_app
from openline.worker import run_background

ACCOUNT = "AC" + "f1" * 16
TOKEN = "flood-test-token-0123456789abcdef"
SENDER = "+14155550100"


def test_the_story_is_what_the_engine_understands() -> None:
    story = write_story(300, 700, languages=("en", "it", "hi", "es"), replays=0.05, seed=11)
    assert len(story.people) == 300 and len(story.texts) == 700
    assert len({p.number for p in story.people}) == 300
    assert all(to_e164(p.number) == p.number for p in story.people)  # valid numbers, already E.164
    assert len({t.message_id for t in story.texts}) == 700
    assert all(t.message_id.startswith(story.id_prefix) and len(t.message_id) == 34 for t in story.texts)
    # Everyone texts first with a greeting, before any of their other texts.
    firsts = [t for t in story.texts if t.first]
    assert len(firsts) == 300 and story.texts[:300] == tuple(firsts)
    for text in story.texts:
        intent = classify(text.body).intent
        language = story.people[text.person].language
        if text.first:
            assert text.body in GREETINGS[language] and intent is Intent.text
        elif text.body in CHATTER[language]:
            assert intent is Intent.text, text.body
        else:
            assert intent in (Intent.yes, Intent.stop), text.body
    by_language = {lang: [t for t in story.texts if story.people[t.person].language == lang] for lang in GREETINGS}
    for texts in by_language.values():
        intents = {classify(t.body).intent for t in texts}
        assert {Intent.yes, Intent.stop, Intent.text} <= intents
    # 5 % replays: the texts go out in story order, and a replay is a second post of one already sent.
    assert len(story.sends) == 700 + 35
    assert list(dict.fromkeys(story.sends)) == list(range(700))
    assert max(story.sends.count(i) for i in range(700)) == 2
    assert write_story(300, 700, seed=11) == write_story(300, 700, seed=11)
    assert write_story(300, 700).id_prefix != write_story(300, 700).id_prefix


def test_story_refuses_impossible_plans() -> None:
    with pytest.raises(ValueError, match="at least --people"):
        write_story(10, 5)
    with pytest.raises(ValueError, match="unknown language"):
        write_story(10, 10, languages=("en", "fr"))


def test_requests_are_signed_as_twilio_signs() -> None:
    inbound = TwilioInbound(
        "http://127.0.0.1:8000/webhooks/twilio", TOKEN, ACCOUNT, signed_url="https://sms.example.org/webhooks/twilio"
    )
    raw = inbound.request("SM" + "a" * 32, "+393471234567", SENDER, "Ciao! Ti seguo")
    head, body = raw.split(b"\r\n\r\n", 1)
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    assert int(headers["Content-Length"]) == len(body)
    request = WebhookRequest(
        "POST", "https://sms.example.org/webhooks/twilio", {k.lower(): v for k, v in headers.items()}, body
    )
    hook = TwilioWebhook(TOKEN, ACCOUNT)
    hook.verify(request, datetime.now(UTC))
    sms = hook.parse(request)
    assert (sms.from_number, sms.to, sms.body) == ("+393471234567", SENDER, "Ciao! Ti seguo")


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://sms.example.org", "https://127.0.0.1:8000"])
def test_only_loopback_urls_are_flooded(url: str) -> None:
    with pytest.raises(ValueError):
        check_loopback(url)
    assert check_loopback("http://[::1]:8000/") == "http://[::1]:8000"
    assert check_loopback("http://localhost:8000") == "http://localhost:8000"


def test_the_command_refuses_a_remote_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINE_TWILIO_AUTH_TOKEN", TOKEN)
    result = CliRunner().invoke(simulate_app, ["flood", "--to", SENDER, "--url", "http://203.0.113.9:8000"])
    assert result.exit_code == 1
    assert "refusing to flood 203.0.113.9" in result.output


def test_the_command_refuses_to_text_real_phones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINE_TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("OPENLINE_TWILIO_ACCOUNT_SID", ACCOUNT)
    result = CliRunner().invoke(simulate_app, ["flood", "--to", SENDER])
    assert result.exit_code == 1
    assert "real texts" in result.output and "OPENLINE_TWILIO_API_URL" in result.output


def test_the_command_offers_every_language() -> None:
    assert DEFAULT_LANGUAGES.split(",") == list(LANGUAGES)


def test_shares() -> None:
    assert share("5%") == 0.05 and share("0.02") == 0.02 and share("100%") == 1.0
    with pytest.raises(Exception, match="share"):
        share("5")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(app: ASGIApp, port: int) -> AsyncIterator[None]:
    """``app`` on 127.0.0.1:``port`` in this event loop, lifespan included."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def test_a_small_flood_is_acknowledged_stored_once_and_answered_once(tmp_path: Path) -> None:
    port, carrier_port = _free_port(), _free_port()
    database_url = f"sqlite:///{tmp_path / 'openline.db'}"
    settings = Settings(
        database_url=database_url,
        public_url=f"http://127.0.0.1:{port}",
        twilio_auth_token=TOKEN,
        twilio_account_sid=ACCOUNT,
        twilio_api_url=f"http://127.0.0.1:{carrier_port}",
        simulator=False,
        log_level="warning",
        spool_dir=tmp_path / "spool",
    )
    runtime = Runtime.open(settings, migrate=True)
    with runtime.db.write_engine.begin() as conn:
        conn.execute(
            sa.insert(schema.senders).values(
                community_id=1, provider="twilio", address=SENDER, kind="long_code", mps=400.0
            )
        )
    runtime.senders.reload()
    carrier = Carrier(TwilioCarrier(ACCOUNT, TOKEN), CarrierOptions(mps=400, latency=0.002, delivery_delay=0.05))
    plan = FloodPlan(
        url=f"http://127.0.0.1:{port}",
        to=SENDER,
        auth_token=TOKEN,
        account_sid=ACCOUNT,
        people=200,
        texts=400,
        rate=500,
        replays=0.05,
        languages=("en", "it", "hi"),
        public_url=settings.public_url,
        connections=16,
        seed=5,
    )
    async with serving(carrier.app, carrier_port), serving(create_app(runtime, background=run_background), port):
        report = await asyncio.wait_for(run_flood(plan, database_url, settle_seconds=15), 60)
        await carrier.aclose()

    assert report.requests == 420 and report.posted == 420
    assert report.acknowledged == 420 and report.refused == {}
    assert report.latency is not None and 0 < report.latency.p50 <= report.latency.p99 <= report.latency.max
    # How fast the box answers is the bench's to measure; here the figure must agree with its parts, and the
    # open schedule (500/s) must have spread 420 requests over at least ~0.84 s rather than firing them at once.
    assert report.seconds > 0.75 and report.acknowledged_rate == pytest.approx(420 / report.seconds)
    findings = report.database
    assert findings is not None and findings.caught_up
    assert (findings.texts.stored, findings.texts.lost, findings.texts.duplicated) == (400, 0, 0)
    auto = findings.autotexts
    assert auto is not None
    assert (auto.people, auto.answered, auto.none_yet, auto.more_than_once) == (200, 200, 0, 0)
    # Sent, or cancelled because the person's STOP came in before their autotext left: never both, never twice.
    assert auto.sent + auto.dropped == 200 and auto.sent > 150
    assert auto.queued is not None and auto.sent_after is not None and auto.waiting is None
    assert 0 <= auto.queued.p50 <= auto.queued.p95 <= auto.queued.max < 30
    assert auto.queued.p50 <= auto.sent_after.p50 <= auto.sent_after.p95 <= auto.sent_after.max < 30
    assert findings.projection is not None and findings.projection.first_texts == 200
    assert findings.projection.enough  # 200 autotexts at 400 segments/s
    assert carrier.counts["accepted"] >= 200  # the real adapter sent them through the carrier
    lines = "\n".join(render(report))
    assert "lost (acknowledged, not stored): 0" in lines and "first text -> autotext sent: p50" in lines
    assert "launch night on +14155550100" in lines
