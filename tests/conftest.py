"""Shared fixtures: every storage and API test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``OPENLINE_TEST_DATABASE_URL`` (a server URL whose user may create databases);
each test session gets a fresh database of its own, dropped at the end. Without the variable the
PostgreSQL cases are skipped, saying why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from openline.db import Database, schema, upgrade
from openline.runtime import Runtime
from openline.settings import Settings
from openline.web import create_app

PG_VARIABLE = "OPENLINE_TEST_DATABASE_URL"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests see no OPENLINE_* settings of the machine and no openline.toml of the checkout."""
    for name in list(os.environ):
        if name.startswith("OPENLINE_") and not name.startswith(("OPENLINE_TEST_", "OPENLINE_BENCH_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session."""
    admin_url = os.environ.get(PG_VARIABLE)
    if not admin_url:
        reason = f"PostgreSQL tests need {PG_VARIABLE}=postgresql://USER@HOST:PORT/DB (not set)"
        if os.environ.get("OPENLINE_TEST_REQUIRE_POSTGRES"):
            pytest.fail(reason)  # CI must never skip them silently
        pytest.skip(reason)
    admin = Database(admin_url)
    name = f"openline_test_{uuid.uuid4().hex[:12]}"
    with admin.write_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin.url.set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.write_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def _migrated_postgres(postgres_server_url: str) -> str:
    db = Database(postgres_server_url)
    upgrade(db)
    db.dispose()
    return postgres_server_url


def _truncate_postgres(url: str) -> None:
    db = Database(url)
    names = ", ".join(t.name for t in schema.metadata.sorted_tables)
    with db.write_engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database URL: a new SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'openline.db'}"
        db = Database(url)
        upgrade(db)
        db.dispose()
        return url
    url = str(request.getfixturevalue("_migrated_postgres"))
    _truncate_postgres(url)
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, public_url="https://sms.example.org")


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    opened = Runtime.open(settings, migrate=False)
    yield opened
    opened.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime, own_runtime=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://sms.example.org") as http:
        yield http


def count(db: Database, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with db.read_engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())
