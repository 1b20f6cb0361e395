"""PostgreSQL scale-out under faults: two `openline web` and three `openline worker` processes on a
PostgreSQL cluster of the test's own, a launch-night flood of signed Twilio webhooks at both web
processes, a broadcast fanning out, and meanwhile a worker killed with SIGKILL and the database server
crashed (``pg_ctl stop -m immediate``) and started again.

Afterwards nothing acknowledged is lost, nothing is stored or sent twice, every sender kept its pace
across workers, the dead worker's senders went to the survivors, the broadcast finished with one text
per recipient, and every first-time texter got one autotext.

The one loss allowed is the designed one (docs/sending.md): a text the killed worker had claimed may be
marked ambiguous by the worker taking its sender over, and is never sent again, whether or not it had
reached the carrier. A live worker that merely lost the database for a while records every outcome.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from openline.broadcasts import create_broadcast, get_broadcast, start
from openline.communities import bootstrap
from openline.db import Database, schema, upgrade
from openline.engine.config import set_text
from openline.engine.keywords import Intent, classify
from openline.engine.texts import SystemText
from openline.installation import purpose_key
from openline.members_io import import_members
from openline.providers.fake_twilio import FakeTwilio, SentMessage
from openline.senders import add_sender
from openline.simulate import Story, TwilioInbound, post_all, write_story
from openline.simulate.traffic import Answer
from openline.states import BroadcastState, Direction, MessageKind, MessageState

from .pg_cluster import PgCluster, PgUnavailable, find_bindir
from .test_cli import free_port

pytestmark = pytest.mark.scaleout

SID, TOKEN = "AC" + "5c" * 16, "scaleout-test-token"
SECRET = "scaleout-test-secret-key-0123456789abcdef"
SENDERS = [f"+1415555{i:04d}" for i in range(200, 204)]
# People text the first three; the fourth only sends the broadcast (spread over all four), so broadcast
# texts are leaving while the worker dies and while the database is down.
TEXTED = SENDERS[:3]
RATE = 5.0  # segments/s of every sender: low, so a second sender loop for one of them would show
# Arrival times are stamped at the fake in this process, which shares two cores with five openline
# processes and PostgreSQL: grant a slot of jitter, as tests/test_dispatcher_workers.py does. Two
# workers sending for one sender would double the rate, far beyond it.
JITTER = 1 / RATE
LEASE_SECONDS = 1.5
PEOPLE, TEXTS, REPLAYS = 300, 600, 0.05
LANGUAGES = ("en", "it", "es", "hi")
MEMBERS = 200
POSTS_PER_SECOND = 45.0  # both web processes together: the flood lasts about 14 s
OUTAGE_SECONDS = 2.5  # longer than a lease: every lease expires while the database is away
TEST_SECONDS = 120.0  # the whole scenario, start to settled

# Openline's own texts, one segment each and each with a marker the fake carrier can see.
SHORT_TEXTS = {
    SystemText.autotext: "{programme} #auto: got it! Reply YES to join, STOP to opt out.",
    SystemText.confirmed: "{programme} #in: you're in! Reply STOP to opt out.",
    SystemText.stopped: "{programme} #stop: you're out. Reply START to rejoin.",
    SystemText.help: "{programme} #help: reply STOP to opt out.",
}
AUTO = "#auto"
BROADCAST_BODY = "Tour news for {{ first_name }}: doors open at 8."


# -- the cluster, the fake carrier, the processes --------------------------------------------------


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    reason = None
    if find_bindir() is None:
        reason = "PostgreSQL's server programs (initdb, pg_ctl under /usr/lib/postgresql/*/bin) are not installed"
    else:
        try:
            created = PgCluster.create()
        except PgUnavailable as exc:
            reason = str(exc)
    if reason is not None:
        if os.environ.get("OPENLINE_TEST_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        created.start()
        yield created
    finally:
        created.destroy()


@pytest.fixture
def fake() -> Iterator[tuple[FakeTwilio, str]]:
    carrier = FakeTwilio(SID, TOKEN)
    # Twilio takes a moment to answer: when the database crashes, some texts are with the carrier and
    # their answers not yet recorded.
    carrier.latency = 0.25
    for address in SENDERS:
        carrier.add_number(address)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(carrier.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the fake Twilio did not start"
        time.sleep(0.02)
    yield carrier, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]
    spool: Path

    def tail(self, lines: int = 25) -> str:
        if not self.handle.closed:
            self.handle.flush()
        # Without httpx's line per request to the carrier: what is left is what went wrong.
        text = [line for line in self.log.read_text(errors="replace").splitlines() if " INFO httpx: " not in line]
        return f"--- {self.name} (pid {self.popen.pid}, exit {self.popen.poll()}) ---\n" + "\n".join(text[-lines:])


@dataclass
class Fleet:
    """The openline processes this test started (and only those), with their logs."""

    root: Path
    env: dict[str, str]
    cluster: PgCluster
    processes: list[Process] = field(default_factory=list)

    def spawn(self, name: str, *args: str, **env: str) -> Process:
        home = self.root / name
        home.mkdir()
        log = home / "output.log"
        handle = log.open("wb")
        spool = home / "spool"
        popen = subprocess.Popen(
            [sys.executable, "-m", "openline", *args],
            cwd=home,
            env={**self.env, "OPENLINE_SPOOL_DIR": str(spool), **env},
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        process = Process(name, popen, log, handle, spool)
        self.processes.append(process)
        return process

    def diagnostics(self) -> str:
        tails = [p.tail() for p in self.processes]
        return "\n".join([*tails, "--- PostgreSQL ---", self.cluster.log_tail(15)])

    def stop_all(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.terminate()
        for process in self.processes:
            try:
                process.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.popen.kill()  # ours, and stuck: diagnostics still show its log
                process.popen.wait(timeout=10)
            process.handle.close()


@pytest.fixture
def fleet(tmp_path: Path, cluster: PgCluster, fake: tuple[FakeTwilio, str]) -> Iterator[Fleet]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINE_")}
    env.update(
        OPENLINE_DATABASE_URL=cluster.url(),
        OPENLINE_SECRET_KEY=SECRET,
        OPENLINE_TWILIO_ACCOUNT_SID=SID,
        OPENLINE_TWILIO_AUTH_TOKEN=TOKEN,
        OPENLINE_TWILIO_API_URL=fake[1],
        OPENLINE_DISPATCHER_LEASE_SECONDS=str(LEASE_SECONDS),
        OPENLINE_SIMULATOR="false",
        OPENLINE_LOG_LEVEL="info",
    )
    running = Fleet(tmp_path, env, cluster)
    try:
        yield running
    finally:
        running.stop_all()


def wait_until(missing: Callable[[], str | None], within: float, what: str, diagnostics: Callable[[], str]) -> None:
    """Poll ``missing`` (what is still missing, or None once there) until it is None or ``within`` s pass."""
    deadline = time.monotonic() + within
    while True:
        left = missing()
        if left is None:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}: {left}\n{diagnostics()}")
        time.sleep(0.1)


# -- the data ----------------------------------------------------------------------------------------


def prepare(db: Database, tmp_path: Path) -> int:
    """Schema, community, four Twilio senders, short texts, 200 subscribed members; returns the draft
    broadcast's id."""
    upgrade(db)
    with db.write_engine.begin() as conn:
        community = bootstrap(conn, "Scaleout")
        assert community is not None
        # Only the Twilio senders: the broadcast spreads over every sender of the community.
        conn.execute(sa.delete(schema.senders).where(schema.senders.c.provider == "sandbox"))
        for address in SENDERS:
            add_sender(conn, community.id, address, provider="twilio", mps=RATE)
        for language in LANGUAGES:
            for name, template in SHORT_TEXTS.items():
                set_text(conn, community.id, language, name, template)
        key = purpose_key(conn, SECRET, "suppression")
    # Italian numbers: no legal sending hours, so the broadcast may go whatever the time of day.
    members = tmp_path / "members.csv"
    with members.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["phone", "first_name", "tags", "consent_source", "consent_at"])
        for i in range(MEMBERS):
            writer.writerow([f"+39320555{i:04d}", f"Fan{i:03d}", "seeded", "paper form", "2024-01-01T00:00:00Z"])

    def transact(work: Callable[[sa.Connection], Any]) -> Any:
        with db.write_engine.begin() as conn:
            return work(conn)

    summary = import_members(
        members,
        community_id=community.id,
        key=key,
        transact=transact,
        dialect="postgresql",
        now=datetime.now(UTC),
        workers=0,
    )
    assert (summary.created, summary.subscribed, summary.errors) == (MEMBERS, MEMBERS, 0)
    with db.write_engine.begin() as conn:
        draft = create_broadcast(
            conn, community.id, "tour-news", {"variants": [{"body": BROADCAST_BODY}]}, segment={"tag": "seeded"}
        )
    return draft.id


def start_broadcast(db: Database, broadcast_id: int) -> None:
    with db.write_engine.begin() as conn:
        start(conn, get_broadcast(conn, broadcast_id), datetime.now(UTC))


def leases(db: Database) -> dict[int, int]:
    """sender id -> the pid of the worker holding its lease (owners are ``host:pid:random``)."""
    c = schema.sender_leases.c
    with db.read_engine.connect() as conn:
        return {
            row.sender_id: int(row.owner.rsplit(":", 2)[1]) for row in conn.execute(sa.select(c.sender_id, c.owner))
        }


def sender_ids(db: Database) -> dict[int, str]:
    s = schema.senders.c
    with db.read_engine.connect() as conn:
        return {row.id: row.address for row in conn.execute(sa.select(s.id, s.address))}


def unsettled(db: Database, broadcast_id: int, fleet: Fleet, survivors: set[int]) -> str | None:
    """What is still under way (None when nothing is): texts not processed or not sent, the broadcast,
    spooled texts, leases not yet with the surviving workers."""
    m = schema.messages.c
    with db.read_engine.connect() as conn:
        waiting = conn.execute(
            sa.select(m.direction, m.state, sa.func.count())
            .where(
                sa.or_(
                    sa.and_(m.direction == Direction.inbound, m.state == MessageState.received),
                    sa.and_(
                        m.direction == Direction.outbound, m.state.in_((MessageState.queued, MessageState.sending))
                    ),
                )
            )
            .group_by(m.direction, m.state)
        ).all()
        broadcast = get_broadcast(conn, broadcast_id)
    spooled = [str(f) for p in fleet.processes if p.spool.is_dir() for f in p.spool.glob("inbound-*.jsonl")]
    held = leases(db)
    left = [f"{n} {direction} {state}" for direction, state, n in waiting]
    if broadcast.state is not BroadcastState.done:
        left.append(f"broadcast {broadcast.state.value}")
    if spooled:
        left.append(f"spooled {spooled}")
    if len(held) != len(SENDERS) or not set(held.values()) <= survivors:
        left.append(f"leases {held} (survivors {sorted(survivors)})")
    return ", ".join(left) or None


# -- the flood ---------------------------------------------------------------------------------------


@dataclass
class Flood:
    """The project's flood simulator's people and signed Twilio webhooks, posted alternately to the two
    web processes, and which texts were acknowledged (2xx)."""

    story: Story
    webs: list[TwilioInbound]
    posts: list[list[tuple[str, bytes]]]  # per web process: (message id, request), in story order
    acknowledged: set[str] = field(default_factory=set)
    answers: list[Answer] = field(default_factory=list)

    @classmethod
    def of(cls, story: Story, web_ports: list[int], public_url: str) -> Flood:
        # Both web processes check signatures against the public URL, as behind a load balancer.
        signed = public_url + "/webhooks/twilio"
        webs = [
            TwilioInbound(f"http://127.0.0.1:{p}/webhooks/twilio", TOKEN, SID, signed_url=signed) for p in web_ports
        ]
        posts: list[list[tuple[str, bytes]]] = [[] for _ in webs]
        for k, index in enumerate(story.sends):
            text = story.texts[index]
            to = TEXTED[text.person % len(TEXTED)]  # each person texts one of the numbers
            web = webs[k % len(webs)]
            posts[k % len(webs)].append(
                (text.message_id, web.request(text.message_id, story.people[text.person].number, to, text.body))
            )
        return cls(story, webs, posts)

    async def post(self, which: int, batch: list[tuple[str, bytes]], rate: float | None) -> None:
        web = self.webs[which]
        answers = await post_all(web.host, web.port, [raw for _, raw in batch], connections=8, rate=rate)
        for (message_id, _), answer in zip(batch, answers, strict=True):
            if answer is None:
                continue
            self.answers.append(answer)
            if 200 <= answer.status < 300:
                self.acknowledged.add(message_id)

    async def run(self) -> None:
        rate = POSTS_PER_SECOND / len(self.webs)
        await asyncio.gather(*(self.post(i, batch, rate) for i, batch in enumerate(self.posts)))

    async def retry_unacknowledged(self, within: float) -> None:
        """Post again what was never acknowledged, as a provider retries, to the other web process."""
        deadline = time.monotonic() + within
        for attempt in itertools.count(1):
            left = [[(i, raw) for i, raw in batch if i not in self.acknowledged] for batch in self.posts]
            if not any(left) or time.monotonic() > deadline:
                return
            await asyncio.gather(*(self.post((i + attempt) % 2, batch, None) for i, batch in enumerate(left) if batch))
            await asyncio.sleep(0.5)

    def refused(self) -> Counter[int]:
        return Counter(a.status for a in self.answers if not 200 <= a.status < 300)


# -- the faults --------------------------------------------------------------------------------------


@dataclass
class Faults:
    """What was done to the installation, and when (wall clock, as the database records times)."""

    victim: Process | None = None
    dead_senders: set[int] = field(default_factory=set)  # the senders the killed worker held
    survivors: set[int] = field(default_factory=set)  # the pids of the other workers
    killed_at: datetime | None = None
    crashed_at: datetime | None = None
    outage: tuple[float, float] | None = None  # time.monotonic() from the crash until the server is back

    async def inflict(
        self, db: Database, cluster: PgCluster, workers: list[Process], broadcast_id: int, fleet: Fleet
    ) -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(start_broadcast, db, broadcast_id)
        await asyncio.sleep(1.0)
        # The worker holding the most senders dies without a chance to give anything back.
        held = await asyncio.to_thread(leases, db)
        by_pid = Counter(held.values())
        victim = max(workers, key=lambda w: by_pid.get(w.popen.pid, 0))
        self.victim, self.killed_at = victim, datetime.now(UTC)
        self.dead_senders = {sender for sender, pid in held.items() if pid == victim.popen.pid}
        self.survivors = {w.popen.pid for w in workers if w is not victim}
        os.kill(victim.popen.pid, signal.SIGKILL)
        await asyncio.to_thread(victim.popen.wait, 10)

        def taken_over() -> str | None:
            now = leases(db)
            if all(now.get(sender) in self.survivors for sender in self.dead_senders):
                return None
            return f"leases {now}, survivors {sorted(self.survivors)}"

        await asyncio.to_thread(wait_until, taken_over, 15, "the survivors to take over", fleet.diagnostics)
        # The survivors send for a while; then the database crashes while texts keep coming and some are
        # with the carrier: the web processes spool what they acknowledge, the workers wait.
        await asyncio.sleep(1.5)
        crash = time.monotonic()
        self.crashed_at = datetime.now(UTC)
        await asyncio.to_thread(cluster.stop, "immediate")
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(cluster.start)
        self.outage = (crash, time.monotonic())

    def killed_worker_settled(self, row: Any) -> bool:
        """Whether ``row`` was marked ambiguous because the killed worker stopped mid-send: one of its
        senders, settled by the takeover (after the kill, before the crash)."""
        assert self.killed_at is not None and self.crashed_at is not None
        return (
            row.state == MessageState.failed
            and row.error_code == "ambiguous"
            and row.sender_id in self.dead_senders
            and self.killed_at <= row.updated_at <= self.crashed_at
        )


# -- the scenario --------------------------------------------------------------------------------------


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


async def test_scale_out_survives_a_killed_worker_and_a_database_crash(
    tmp_path: Path, cluster: PgCluster, fake: tuple[FakeTwilio, str], fleet: Fleet
) -> None:
    began = time.monotonic()
    carrier, _ = fake
    db = Database(cluster.url())
    try:
        broadcast_id = await asyncio.to_thread(prepare, db, tmp_path)
        web_ports = [free_port(), free_port()]
        public_url = f"http://127.0.0.1:{web_ports[0]}"
        for i, port in enumerate(web_ports):
            fleet.spawn(f"web{i}", "web", "--port", str(port), OPENLINE_PUBLIC_URL=public_url)
        workers = [fleet.spawn(f"worker{i}", "worker", OPENLINE_PUBLIC_URL=public_url) for i in range(3)]

        def ready() -> str | None:
            for process in fleet.processes:
                assert process.popen.poll() is None, f"{process.name} exited\n{fleet.diagnostics()}"
            waiting = [w.name for w in workers if "background work started" not in w.log.read_text(errors="replace")]
            waiting += [f"web on {port}" for port in web_ports if not _healthy(port)]
            if len(leases(db)) < len(SENDERS):
                waiting.append("sender leases")
            return ", ".join(waiting) or None

        await asyncio.to_thread(wait_until, ready, 60, "two web and three worker processes", fleet.diagnostics)

        flood = Flood.of(
            write_story(PEOPLE, TEXTS, languages=LANGUAGES, replays=REPLAYS, seed=20_251_125), web_ports, public_url
        )
        faults = Faults()
        await asyncio.gather(flood.run(), faults.inflict(db, cluster, workers, broadcast_id, fleet))
        await flood.retry_unacknowledged(within=20)
        assert faults.outage is not None
        during = sum(1 for a in flood.answers if faults.outage[0] <= a.sent_at <= faults.outage[1])
        assert during > 0, "the flood was over before the database crashed: slow it down"

        def settled() -> str | None:
            return unsettled(db, broadcast_id, fleet, faults.survivors)

        left = TEST_SECONDS - (time.monotonic() - began)
        await asyncio.to_thread(wait_until, settled, left, "everything to settle", fleet.diagnostics)
        await asyncio.sleep(1.0)  # anything sent twice would show up now
        held = await asyncio.to_thread(leases, db)  # before the survivors stop and give their leases back
        fleet.stop_all()
        await asyncio.to_thread(check, db, flood, faults, list(carrier.sent), held, broadcast_id, fleet)
    finally:
        db.dispose()


# -- the checks --------------------------------------------------------------------------------------


def busiest_second(times: list[tuple[float, int]]) -> int:
    """The most segments sent in any window of one second less the jitter."""
    return max(sum(s for t, s in times if start <= t < start + 1.0 - JITTER) for start, _ in times)


def check_pace(sent: list[SentMessage]) -> list[str]:
    problems = []
    by_sender: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for record in sent:
        by_sender[str(record.from_)].append((record.received_at, record.num_segments))
    for address, times in sorted(by_sender.items()):
        times.sort()
        gaps = [round(b[0] - a[0], 3) for a, b in itertools.pairwise(times)]
        busiest = busiest_second(times)
        if busiest > RATE:
            problems.append(f"{address} sent {busiest} segments in one second (limit {RATE:g}): {gaps}")
        segments = sum(s for _, s in times)
        if times[-1][0] - times[0][0] < (segments - times[-1][1]) / RATE - JITTER:
            problems.append(f"{address} sent {segments} segments faster than {RATE:g}/s: {gaps}")
    return problems


def check(
    db: Database,
    flood: Flood,
    faults: Faults,
    sent: list[SentMessage],
    held: dict[int, int],
    broadcast_id: int,
    fleet: Fleet,
) -> None:
    m = schema.messages.c
    with db.read_engine.connect() as conn:
        inbound = conn.execute(
            sa.select(m.id, m.provider_message_id, m.phone, m.body, m.state)
            .where(m.direction == Direction.inbound)
            .order_by(m.id)
        ).all()
        outbound = conn.execute(
            sa.select(m.id, m.kind, m.phone, m.body, m.state, m.error_code, m.provider_message_id)
            .add_columns(m.sender_id, m.broadcast_id, m.updated_at)
            .where(m.direction == Direction.outbound)
            .order_by(m.id)
        ).all()
        broadcast = get_broadcast(conn, broadcast_id)
    story = flood.story

    # No acknowledged text lost, none stored twice (every text was acknowledged in the end: what was not
    # at first was posted again, as a provider retries).
    every = {t.message_id for t in story.texts}
    assert flood.acknowledged == every, f"{len(every - flood.acknowledged)} texts never acknowledged"
    stored = Counter(row.provider_message_id for row in inbound)
    lost = flood.acknowledged - set(stored)
    assert not lost, f"{len(lost)} acknowledged texts lost: {sorted(lost)[:10]}\n{fleet.diagnostics()}"
    twice = {k: n for k, n in stored.items() if n > 1}
    assert not twice, f"stored more than once: {twice}"
    assert set(stored) == every
    assert {row.state for row in inbound} == {MessageState.processed}, Counter(row.state for row in inbound)

    # Nothing submitted twice: no (sender, recipient, text) twice at the carrier, and every text recorded
    # as sent is the carrier's message with that SID.
    submissions = Counter((r.from_, r.to, r.body) for r in sent)
    again = {k: n for k, n in submissions.items() if n > 1}
    assert not again, f"submitted more than once: {list(again.items())[:5]}"
    by_sid = {r.sid: r for r in sent}
    recorded = Counter(row.provider_message_id for row in outbound if row.provider_message_id)
    assert all(n == 1 for n in recorded.values())
    for row in outbound:
        if row.state == MessageState.sent:
            record = by_sid.get(row.provider_message_id)
            assert record is not None, f"text {row.id} recorded as sent, never reached the carrier"
            assert (record.to, record.body) == (row.phone, row.body)
    # Ambiguous only where the killed worker left a text mid-send; at the carrier without a recorded
    # answer only those.
    ambiguous = [row for row in outbound if row.error_code == "ambiguous"]
    wrong = [(row.id, row.sender_id, row.updated_at) for row in ambiguous if not faults.killed_worker_settled(row)]
    assert not wrong, f"marked ambiguous, not because of the killed worker: {wrong} (killed {faults.killed_at})"
    senders = sender_ids(db)
    abandoned = {(senders[row.sender_id], row.phone, row.body) for row in ambiguous}
    unrecorded = [r for r in sent if r.sid not in recorded]
    strays = [r for r in unrecorded if (r.from_, r.to, r.body) not in abandoned]
    assert not strays, f"at the carrier for no text of openline's: {strays[:3]}"

    # Every sender's pace held across workers, the takeover and the crash.
    problems = check_pace(sent)
    assert not problems, "\n".join(problems)

    # The killed worker's senders went to the survivors (seen before the crash, and still so at the end).
    assert faults.dead_senders, "the killed worker held no sender"
    assert len(held) == len(SENDERS) and set(held.values()) <= faults.survivors, (held, faults.survivors)

    # The broadcast is done: one text per recipient, settled, at the carrier exactly once (the killed
    # worker's abandoned text at most once).
    texts = [row for row in outbound if row.broadcast_id == broadcast_id]
    assert broadcast.state is BroadcastState.done
    assert len(texts) == MEMBERS and len({row.phone for row in texts}) == MEMBERS
    delivered = Counter(r.to for r in sent if r.body.startswith("Tour news for "))
    assert sum(delivered.values()) == sum(delivered[row.phone] for row in texts)  # to recipients only
    for row in texts:
        if faults.killed_worker_settled(row):
            assert delivered[row.phone] <= 1
        else:
            assert (row.state, delivered[row.phone]) == (MessageState.sent, 1), (row, delivered[row.phone])

    # Every first-time texter got one autotext (unless their STOP reached the engine before their first
    # text, e.g. spooled during the crash: then only the answer to STOP), queued once, submitted at most
    # once, and sent unless their STOP cancelled it or the killed worker abandoned it.
    firsts: dict[str, Any] = {}
    for row in inbound:
        firsts.setdefault(row.phone, row)
    assert set(firsts) == {p.number for p in story.people}
    autotexts: dict[str, list[Any]] = defaultdict(list)
    for row in outbound:
        if row.kind == MessageKind.system and AUTO in row.body:
            autotexts[row.phone].append(row)
    at_carrier = Counter(r.to for r in sent if AUTO in r.body)
    outcomes: Counter[str] = Counter()
    for phone, first in firsts.items():
        got = autotexts.get(phone, [])
        expected = 0 if classify(first.body).intent is Intent.stop else 1
        assert len(got) == expected, f"{phone} (first text {first.body!r}) got {len(got)} autotexts"
        assert at_carrier[phone] <= 1, f"{phone} got the autotext {at_carrier[phone]} times"
        for row in got:
            if row.state == MessageState.sent:
                assert at_carrier[phone] == 1
                outcomes["sent"] += 1
            elif row.state == MessageState.cancelled:
                outcomes["cancelled (their STOP came before it left)"] += 1
            else:
                assert faults.killed_worker_settled(row), row
                outcomes[f"abandoned by the killed worker ({at_carrier[phone]} at the carrier)"] += 1

    spooled = sum(p.log.read_text(errors="replace").count("spooled to disk") for p in fleet.processes)
    print(
        f"\nscaleout: {len(flood.answers)} posts (refused {dict(flood.refused())}), {spooled} spooled during the "
        f"crash; {len(sent)} texts at the carrier; autotexts {dict(outcomes)}; {len(ambiguous)} ambiguous; "
        f"senders {sorted(faults.dead_senders)} of the killed worker now held by {held}"
    )
