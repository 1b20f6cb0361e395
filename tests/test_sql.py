"""The work-claiming statement: concurrent claimers never take the same row."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from openline.db import Database
from openline.db.sql import claim

jobs = sa.Table(
    "claim_jobs",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("owner", sa.String(10), nullable=True),
)


def _claim(limit: int, owner: str) -> sa.Update:
    return claim(
        jobs,
        where=jobs.c.state == "queued",
        order_by=[jobs.c.id],
        limit=limit,
        values={"state": "taken", "owner": owner},
        returning=[jobs.c.id],
    )


@pytest.fixture
def job_db(db: Database) -> Database:
    jobs.create(db.write_engine)
    with db.write_engine.begin() as conn:
        conn.execute(sa.insert(jobs), [{"state": "queued"} for _ in range(100)])
    yield db  # type: ignore[misc]
    jobs.drop(db.write_engine)


def test_claim_takes_the_oldest_rows_in_order(job_db: Database) -> None:
    with job_db.write_engine.begin() as conn:
        first = sorted(conn.execute(_claim(10, "a")).scalars())
        second = sorted(conn.execute(_claim(10, "a")).scalars())
    assert first == list(range(1, 11))
    assert second == list(range(11, 21))


def test_concurrent_claimers_get_disjoint_rows(job_db: Database) -> None:
    if job_db.is_sqlite:
        pytest.skip("SQLite has one writer at a time; the lock clause is PostgreSQL's")
    # Worker A holds its claim open; worker B must skip A's rows rather than wait or take them.
    barrier = threading.Barrier(2)
    claimed: dict[str, list[int]] = {}

    def worker(owner: str) -> None:
        with job_db.write_engine.begin() as conn:
            claimed[owner] = list(conn.execute(_claim(30, owner)).scalars())
            barrier.wait(timeout=10)

    threads = [threading.Thread(target=worker, args=(o,)) for o in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(claimed["a"]) == len(claimed["b"]) == 30
    assert not set(claimed["a"]) & set(claimed["b"])
