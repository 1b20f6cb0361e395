"""Rehearse launch night: thousands of people text a running openline at once, through its real webhook.

:func:`run_flood` writes the story (:mod:`openline.simulate.story`), posts every text as the correctly
signed webhook Twilio would send, paced and bounded in count and time, to an openline on this machine
(loopback addresses only: a rehearsal must never reach someone else's server), and measures what a
provider would see: how many answers were 2xx and how fast. With the database it then checks what openline
kept (no acknowledged text lost, none stored twice), waits a bounded time for the engine and dispatcher to
catch up, times each person's autotext, and projects the night from the sender's real throughput.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa

from openline.db import Database, describe_url
from openline.phone import classify_sender_address
from openline.simulate.audit import (
    AutotextTimes,
    Pending,
    SenderFacts,
    StoredTexts,
    autotext_times,
    find_sender,
    percentile,
    settle,
    stored_texts,
)
from openline.simulate.projection import Projection, describe, project
from openline.simulate.story import LANGUAGES, Story, write_story
from openline.simulate.traffic import NOT_ANSWERED, Answer, TwilioInbound, post_all

__all__ = [
    "LOOPBACK_HOSTS",
    "DatabaseFindings",
    "FloodPlan",
    "FloodReport",
    "Latency",
    "check_loopback",
    "render",
    "run_flood",
]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
PROVIDERS = ("twilio",)  # the providers whose inbound webhooks a flood can sign


def check_loopback(url: str) -> str:
    """``url`` without a trailing slash, if it is an http:// URL on this machine; else ValueError saying why."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"expected a URL like http://127.0.0.1:8000 (got {url!r})")
    if parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(
            f"refusing to flood {parts.hostname}: a rehearsal only goes to an openline on this machine "
            f"({', '.join(LOOPBACK_HOSTS)}); run openline locally and pass --url http://127.0.0.1:PORT"
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class FloodPlan:
    url: str  # the running openline, e.g. http://127.0.0.1:8000
    to: str  # the community's number everyone texts
    auth_token: str  # the Twilio auth token openline checks signatures with
    account_sid: str  # the AccountSid the webhooks carry (openline's, when it checks it)
    people: int = 40_000
    texts: int = 100_000
    rate: float | None = 2_000.0  # requests/s; None: as fast as the connections go
    replays: float = 0.05
    languages: tuple[str, ...] = LANGUAGES
    time_limit: float = 600.0  # seconds of sending at most
    public_url: str | None = None  # OPENLINE_PUBLIC_URL: what openline checks signatures against
    provider: str = "twilio"
    connections: int = 64
    seed: int | None = None


@dataclass(frozen=True)
class Latency:
    p50: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True)
class DatabaseFindings:
    texts: StoredTexts
    pending: Pending  # what the engine and dispatcher still had to do when the settle time ended
    waited: float
    sender: SenderFacts | None
    autotexts: AutotextTimes | None
    projection: Projection | None

    @property
    def caught_up(self) -> bool:
        return self.pending.texts == 0 and self.pending.replies == 0


@dataclass(frozen=True)
class FloodReport:
    plan: FloodPlan
    story: Story
    requests: int
    posted: int
    seconds: float  # from the first request to the last answer
    acknowledged: int  # 2xx answers
    latency: Latency | None  # of answered requests
    refused: dict[int, int]  # non-2xx answers by status (NOT_ANSWERED: no answer at all)
    database: DatabaseFindings | None
    database_error: str | None = None

    @property
    def acknowledged_rate(self) -> float:
        return self.acknowledged / self.seconds if self.seconds > 0 else 0.0


async def run_flood(plan: FloodPlan, database_url: str | None = None, settle_seconds: float = 60.0) -> FloodReport:
    """Flood the openline at ``plan.url``; with ``database_url``, audit what it stored and project the night."""
    base = check_loopback(plan.url)
    if plan.provider not in PROVIDERS:
        raise ValueError(f"a flood can sign {', '.join(PROVIDERS)} webhooks, not {plan.provider!r}")
    to, _kind = classify_sender_address(plan.to)
    story = write_story(plan.people, plan.texts, languages=plan.languages, replays=plan.replays, seed=plan.seed)
    path = f"/webhooks/{plan.provider}"
    inbound = TwilioInbound(
        base + path, plan.auth_token, plan.account_sid, signed_url=(plan.public_url or base).rstrip("/") + path
    )
    requests = [
        inbound.request(text.message_id, story.people[text.person].number, to, text.body)
        for text in (story.texts[i] for i in story.sends)
    ]
    # Rows created from here on belong to this run (a margin for clocks that disagree by a little).
    since = datetime.now(UTC) - timedelta(seconds=2)
    answers = await post_all(
        inbound.host, inbound.port, requests, connections=plan.connections, rate=plan.rate, time_limit=plan.time_limit
    )
    report = _traffic(plan, story, answers)
    if database_url is None:
        return report
    acknowledged = {
        story.texts[story.sends[i]].message_id
        for i, answer in enumerate(answers)
        if answer is not None and 200 <= answer.status < 300
    }
    db = Database(database_url)
    try:
        findings = await _audit(db, plan, story, to, acknowledged, since, settle_seconds)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        error = f"could not read {describe_url(database_url)}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        return replace(report, database_error=error)
    finally:
        db.dispose()
    return replace(report, database=findings)


def _traffic(plan: FloodPlan, story: Story, answers: list[Answer | None]) -> FloodReport:
    done = [a for a in answers if a is not None]
    answered = sorted(a.latency for a in done if a.status != NOT_ANSWERED)
    seconds = max(a.sent_at + a.latency for a in done) - min(a.sent_at for a in done) if done else 0.0
    refused = Counter(a.status for a in done if not 200 <= a.status < 300)
    latency = (
        Latency(percentile(answered, 0.50), percentile(answered, 0.95), percentile(answered, 0.99), answered[-1])
        if answered
        else None
    )
    return FloodReport(
        plan=plan,
        story=story,
        requests=len(answers),
        posted=len(done),
        seconds=seconds,
        acknowledged=sum(1 for a in done if 200 <= a.status < 300),
        latency=latency,
        refused=dict(sorted(refused.items())),
        database=None,
    )


async def _audit(
    db: Database, plan: FloodPlan, story: Story, to: str, acknowledged: set[str], since: datetime, settle_for: float
) -> DatabaseFindings:
    sender = await asyncio.to_thread(find_sender, db, plan.provider, to)
    left, waited = await settle(db, plan.provider, story.id_prefix, sender.id if sender else None, since, settle_for)
    texts = await asyncio.to_thread(stored_texts, db, plan.provider, story.id_prefix, acknowledged)
    autotexts = projection = None
    if sender is not None:
        numbers = [person.number for person in story.people]
        autotexts = await asyncio.to_thread(
            autotext_times, db, plan.provider, story.id_prefix, sender.id, numbers, since
        )
        projection = project(len(story.people), sender.mps, segments_per_text=autotexts.segments or 1.0)
    return DatabaseFindings(texts, left, waited, sender, autotexts, projection)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.1f} s"


def render(report: FloodReport) -> list[str]:
    """The report as lines for a terminal."""
    plan, story = report.plan, report.story
    replays = len(story.sends) - len(story.texts)
    lines = [
        f"flood: {len(story.texts):,} texts + {replays:,} replays from {len(story.people):,} people "
        f"({', '.join(plan.languages)}) to {plan.to} at {f'{plan.rate:,.0f}/s' if plan.rate else 'full speed'}",
        f"posted {report.posted:,} of {report.requests:,} requests in {report.seconds:.1f} s"
        + (f" (stopped by the {plan.time_limit:g} s limit)" if report.posted < report.requests else ""),
        f"acknowledged (2xx): {report.acknowledged:,} = {report.acknowledged_rate:,.0f} texts/s",
    ]
    if report.latency is not None:
        lat = report.latency
        lines.append(f"latency: p50 {_ms(lat.p50)}  p95 {_ms(lat.p95)}  p99 {_ms(lat.p99)}  max {_ms(lat.max)}")
    refused = ", ".join(
        f"{'no answer' if status == NOT_ANSWERED else status}: {count:,}" for status, count in report.refused.items()
    )
    lines.append(f"non-2xx answers: {refused or 'none'}")
    if report.database_error is not None:
        lines.append(report.database_error)
    findings = report.database
    if findings is None:
        return lines
    texts = findings.texts
    lines.append(
        f"stored: {texts.stored:,} texts; lost (acknowledged, not stored): {texts.lost:,}; "
        f"stored twice: {texts.duplicated:,}"
        + (f"; stored though unacknowledged: {texts.unacknowledged_stored:,}" if texts.unacknowledged_stored else "")
    )
    if findings.caught_up:
        lines.append(f"engine and dispatcher caught up after {findings.waited:.1f} s")
    else:
        left = findings.pending
        lines.append(
            f"after waiting {findings.waited:.0f} s: {left.texts:,} texts not yet processed by the engine, "
            f"{left.replies:,} replies ({left.reply_segments:,} segments) not yet sent (what follows is so far)"
        )
    if findings.sender is None:
        lines.append(f"{plan.to} is not a {plan.provider} sender in this database: no autotext times, no projection")
        return lines
    auto = findings.autotexts
    if auto is not None:
        lines.append(
            f"autotexts: {auto.answered:,} of {auto.people:,} people ({auto.sent:,} sent, "
            f"{auto.answered - auto.sent - auto.dropped:,} waiting, {auto.dropped:,} cancelled or failed, "
            f"{auto.none_yet:,} none yet); answered more than once: {auto.more_than_once:,}"
        )
        for label, spread in (
            ("first text -> autotext queued", auto.queued),
            ("first text -> autotext sent", auto.sent_after),
            ("waiting so far (not yet sent)", auto.waiting),
        ):
            if spread is not None:
                lines.append(
                    f"  {label}: p50 {_duration(spread.p50)}  p95 {_duration(spread.p95)}  max {_duration(spread.max)}"
                )
    if findings.projection is not None:
        sender = findings.sender
        lines.append(f"launch night on {sender.address} ({sender.mps:g} segments/s), all first texts at once:")
        lines += [f"  {line}" for line in describe(findings.projection, sender.mps)]
        left = findings.pending
        if left.replies:
            lines.append(
                f"  Right now {left.replies:,} replies of every kind ({left.reply_segments:,} segments) wait for this "
                f"sender: {_duration(left.reply_segments / sender.mps)} more at its rate."
            )
        if sender.daily_cap is not None:
            lines.append(f"  (its daily cap of {sender.daily_cap:,} segments also holds texts back; not counted above)")
    return lines
