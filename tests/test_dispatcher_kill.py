"""SIGKILL mid-send: the worker dies after Twilio took the text but before its answer was recorded.
The next worker must not submit it again; it marks it ambiguous, visibly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn

from openline.db import Database, schema
from openline.providers.fake_twilio import FakeTwilio

from .test_cli import free_port

SID, TOKEN, NUMBER = "AC" + "2" * 32, "kill-test-token", "+14155550100"


@pytest.fixture
def fake_twilio() -> Iterator[tuple[FakeTwilio, str]]:
    fake = FakeTwilio(SID, TOKEN)
    fake.add_number(NUMBER)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield fake, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def worker(tmp_path: Path, database_url: str, api_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINE_")}
    env.update(
        OPENLINE_DATABASE_URL=database_url,
        OPENLINE_TWILIO_ACCOUNT_SID=SID,
        OPENLINE_TWILIO_AUTH_TOKEN=TOKEN,
        OPENLINE_TWILIO_API_URL=api_url,
        OPENLINE_DISPATCHER_LEASE_SECONDS=os.environ.get("OPENLINE_TEST_LEASE_SECONDS", "1.5"),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "openline", "worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait(condition: object, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_killed_worker_never_causes_a_second_send(
    tmp_path: Path, database_url: str, fake_twilio: tuple[FakeTwilio, str]
) -> None:
    fake, api_url = fake_twilio
    fake.latency = 60  # Twilio takes the text, then its answer never arrives in time
    subprocess.run(
        [sys.executable, "-m", "openline", "senders", "add", NUMBER, "--provider", "twilio", "--mps", "5"],
        cwd=tmp_path,
        env={**os.environ, "OPENLINE_DATABASE_URL": database_url},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [sys.executable, "-m", "openline", "send", "--to", "+12025550143", "--body", "only once", "--sender", NUMBER],
        cwd=tmp_path,
        env={**os.environ, "OPENLINE_DATABASE_URL": database_url},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    first = worker(tmp_path, database_url, api_url)
    try:
        wait(lambda: fake.requests == 1, within=20)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    second = worker(tmp_path, database_url, api_url)
    db = Database(database_url)
    m = schema.messages.c
    try:

        def settled() -> bool:
            with db.read_engine.connect() as conn:
                return conn.execute(sa.select(m.state).where(m.direction == "outbound")).scalar_one() == "failed"

        wait(settled, within=20)
        time.sleep(1.0)  # give the second worker every chance to (wrongly) send it again
    finally:
        second.terminate()
        second.wait(timeout=10)
    with db.read_engine.connect() as conn:
        row = conn.execute(sa.select(m.state, m.error_code, m.error_reason).where(m.direction == "outbound")).one()
    db.dispose()
    assert fake.requests == 1  # submitted once, never again
    assert (row.state, row.error_code) == ("failed", "ambiguous")
    assert "not sent again" in row.error_reason
