from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from openline._version import __version__
from openline.cli import app

runner = CliRunner()


def commands(group: typer.Typer = app, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [(*prefix, c.name or c.callback.__name__) for c in group.registered_commands]  # type: ignore[union-attr]
    for sub in group.registered_groups:
        assert sub.name and sub.typer_instance
        found += [(*prefix, sub.name), *commands(sub.typer_instance, (*prefix, sub.name))]
    return found


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_version() -> None:
    assert invoke("--version") == (0, f"openline {__version__}\n")


@pytest.mark.parametrize("command", commands())
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    code, output = invoke(*command, "--help")
    assert code == 0
    assert "Usage:" in output


def test_the_public_commands_exist() -> None:
    names = {" ".join(c) for c in commands()}
    assert {
        "serve",
        "web",
        "worker",
        "db upgrade",
        "senders add",
        "senders list",
        "tokens create",
        "tokens revoke",
    } <= names


def test_senders_and_tokens_on_the_embedded_database(tmp_path: Path) -> None:
    code, output = invoke(
        "senders", "add", "+1 415 555 0100", "--provider", "twilio", "--mps", "1", "--daily-cap", "5000"
    )
    assert code == 0, output
    assert "added long_code +14155550100 (twilio, 1 segments/s)" in output
    assert (tmp_path / "openline.db").exists()
    code, output = invoke("senders", "list")
    assert "+12025550100" in output and "+14155550100" in output and "5000" in output
    assert invoke("senders", "add", "+14155550101", "--provider", "twilio", "--smart-encoding")[0] == 0
    assert "on" in invoke("senders", "list")[1].split("+14155550101", 1)[1].splitlines()[0]
    code, output = invoke("senders", "add", "+14155550100", "--provider", "twilio")
    assert code == 1 and "+14155550100 is already a sender" in output
    code, output = invoke("senders", "add", "12", "--provider", "twilio")
    assert code == 1 and "is not a sender address" in output

    code, token = invoke("tokens", "create", "--name", "ci")
    assert code == 0 and re.fullmatch(r"ol_[\w-]{40,}\n", token)
    assert "ci" in invoke("tokens", "list")[1]
    assert invoke("tokens", "revoke", "ci") == (0, "revoked ci\n")
    code, output = invoke("tokens", "revoke", "ci")
    assert code == 1 and "no live token named 'ci'" in output


def test_db_upgrade_on_postgresql(_migrated_postgres: str) -> None:
    code, output = invoke("db", "upgrade", env={"OPENLINE_DATABASE_URL": _migrated_postgres})
    assert code == 0, output
    assert "schema at revision" in output and "(current)" in output


def test_bad_settings_stop_with_one_line() -> None:
    code, output = invoke("senders", "list", env={"OPENLINE_PORT": "eighty"})
    assert code == 2
    assert output.strip().splitlines() == [
        "error: OPENLINE_PORT: Input should be a valid integer, unable to parse string as an integer (got 'eighty')"
    ]


def test_an_unreachable_database_is_one_line() -> None:
    code, output = invoke("db", "upgrade", env={"OPENLINE_DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/x"})
    assert code == 1
    assert output.startswith("error: cannot reach the database at postgresql+psycopg://u:***@127.0.0.1:1/x")
    assert "Traceback" not in output


def test_postgresql_needs_an_explicit_upgrade(postgres_server_url: str) -> None:
    # A brand-new PostgreSQL database: commands other than `db upgrade` refuse to guess.
    fresh = postgres_server_url.rsplit("/", 1)[0] + "/" + postgres_server_url.rsplit("/", 1)[1]
    code, output = invoke("serve", env={"OPENLINE_DATABASE_URL": fresh + "_missing"})
    assert code == 1
    assert "cannot reach the database" in output and "does not exist" in output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINE_")}
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "openline", *args],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_healthy(port: int, process: subprocess.Popen[bytes], within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"no /healthz within {within} s")


def stop(process: subprocess.Popen[bytes]) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=10)
    return output.decode()


def assert_clean_exit(process: subprocess.Popen[bytes], output: str) -> None:
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells what ended it.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "Traceback" not in output


def test_serve_answers_healthz_quickly_with_a_fresh_database(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    process = start(tmp_path, "serve", "--port", str(port))
    try:
        wait_healthy(port, process, within=10)
        elapsed = time.monotonic() - started
        assert (tmp_path / "openline.db").exists()
        senders = httpx.get(f"http://127.0.0.1:{port}/simulator/senders").json()
        assert [s["address"] for s in senders] == ["+12025550100"]
    finally:
        output = stop(process)
    assert elapsed < 3.0, f"took {elapsed:.2f} s to answer /healthz\n{output}"
    assert_clean_exit(process, output)


def test_web_and_worker_on_postgresql(_migrated_postgres: str, tmp_path: Path) -> None:
    port = free_port()
    web = start(tmp_path, "web", "--port", str(port), env={"OPENLINE_DATABASE_URL": _migrated_postgres})
    worker = start(tmp_path, "worker", env={"OPENLINE_DATABASE_URL": _migrated_postgres})
    try:
        wait_healthy(port, web, within=10)
        assert worker.poll() is None
    finally:
        web_output, worker_output = stop(web), stop(worker)
    assert_clean_exit(web, web_output)
    assert worker.returncode == 0, worker_output
    assert not (tmp_path / "openline.db").exists()


def test_keywords_words_and_texts_from_the_command_line() -> None:
    assert invoke("keywords", "add", "milan", "--tag", "milan", "--language", "it")[0] == 0
    assert "MILAN" in invoke("keywords", "list")[1]
    code, output = invoke("keywords", "add", "Stop", "--tag", "x")
    assert code == 1 and "cannot be a keyword" in output
    assert invoke("community", "set", "--programme", "Ashton", "--languages", "en,it")[0] == 0
    code, output = invoke("community", "set", "--languages", "en,xx")
    assert code == 1 and "'xx' is not an ISO 639-1 language code" in output
    code, output = invoke("community", "set", "--default-language", "hi")
    assert code == 1 and "default_language 'hi' is not one of languages" in output
    assert invoke("community", "word", "stop", "fermati", "--language", "it")[0] == 0
    code, output = invoke("community", "text", "autotext", "Hi {nme}")
    assert code == 1 and "unknown placeholder {nme}" in output
    assert invoke("community", "text", "autotext", "Ciao da {programme}", "--language", "it")[0] == 0
    shown = invoke("community", "show")[1]
    assert '"programme": "Ashton"' in shown and "fermati" in shown and "Ciao da {programme}" in shown
    assert invoke("keywords", "remove", "MILAN") == (0, "removed MILAN\n")
    assert invoke("keywords", "remove", "MILAN")[0] == 1
