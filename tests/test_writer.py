from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.db import Database, Writer, WriterClosed

from .conftest import count

notes = sa.Table(
    "writer_notes",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("text", sa.String(50), nullable=False, unique=True),
)
INSERT = sa.insert(notes)


@pytest.fixture
def notes_db(db: Database) -> Iterator[Database]:
    notes.create(db.write_engine)
    yield db
    notes.drop(db.write_engine)


@pytest.fixture
def writer(notes_db: Database) -> Iterator[Writer]:
    w = Writer(notes_db.write_engine, max_batch=500)
    yield w
    w.close()


async def test_a_write_is_committed_when_it_returns(notes_db: Database, writer: Writer) -> None:
    await writer.execute(INSERT, {"text": "one"})
    # Another connection sees it: the await returned after COMMIT, not before.
    assert count(notes_db, notes) == 1


async def test_concurrent_writes_commit_in_groups(notes_db: Database, writer: Writer) -> None:
    transactions = 0

    def on_commit(_conn: sa.Connection) -> None:
        nonlocal transactions
        transactions += 1

    sa.event.listen(notes_db.write_engine, "commit", on_commit)
    try:
        await asyncio.gather(*(writer.execute(INSERT, {"text": f"n{i}"}) for i in range(2000)))
    finally:
        sa.event.remove(notes_db.write_engine, "commit", on_commit)
    assert count(notes_db, notes) == 2000
    assert transactions < 200  # thousands of writes, a handful of commits


async def test_run_returns_the_function_result_after_commit(notes_db: Database, writer: Writer) -> None:
    def insert_two(conn: sa.Connection) -> int:
        conn.execute(INSERT, [{"text": "a"}, {"text": "b"}])
        return int(conn.execute(sa.select(sa.func.count()).select_from(notes)).scalar_one())

    assert await writer.run(insert_two) == 2
    assert count(notes_db, notes) == 2


async def test_one_bad_write_fails_alone(notes_db: Database, writer: Writer) -> None:
    await writer.execute(INSERT, {"text": "taken"})
    results = await asyncio.gather(
        writer.execute(INSERT, {"text": "fine-1"}),
        writer.execute(INSERT, {"text": "taken"}),  # violates the unique key
        writer.execute(INSERT, {"text": "fine-2"}),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], sa.exc.IntegrityError)
    assert count(notes_db, notes) == 3


async def test_an_exception_in_a_function_fails_only_that_function(notes_db: Database, writer: Writer) -> None:
    def broken(conn: sa.Connection) -> None:
        conn.execute(INSERT, {"text": "rolled back"})
        raise ValueError("boom")

    results = await asyncio.gather(writer.run(broken), writer.execute(INSERT, {"text": "kept"}), return_exceptions=True)
    assert isinstance(results[0], ValueError)
    assert count(notes_db, notes) == 1


async def test_closing_finishes_queued_writes_then_refuses(notes_db: Database) -> None:
    w = Writer(notes_db.write_engine)
    pending = [asyncio.ensure_future(w.execute(INSERT, {"text": f"q{i}"})) for i in range(50)]
    await asyncio.sleep(0)
    await asyncio.to_thread(w.close)
    await asyncio.gather(*pending)
    assert count(notes_db, notes) == 50
    with pytest.raises(WriterClosed):
        await w.execute(INSERT, {"text": "late"})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), min_size=1, max_size=40))
async def test_exactly_the_first_of_each_duplicate_survives(notes_db: Database, texts: list[str]) -> None:
    with notes_db.write_engine.begin() as conn:
        conn.execute(sa.delete(notes))
    w = Writer(notes_db.write_engine, max_batch=7)
    try:
        results = await asyncio.gather(*(w.execute(INSERT, {"text": t}) for t in texts), return_exceptions=True)
    finally:
        w.close()
    failures = [r for r in results if r is not None]
    assert all(isinstance(f, sa.exc.IntegrityError) for f in failures)
    assert len(failures) == len(texts) - len(set(texts))
    assert count(notes_db, notes) == len(set(texts))
