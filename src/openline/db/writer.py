"""The group-commit writer: every durable write of the hot path goes through one thread.

Callers await their write; the writer thread takes everything queued so far, runs it in one
transaction, commits, and only then wakes the callers. While one commit is flushing to disk the next
batch gathers, so under load one fsync carries hundreds of writes, and at rest a lone write commits at
once (no timer). Consecutive writes of the same statement run as one ``executemany``.

One bad write does not sink its batch-mates: on a data error the batch is rolled back and each write
re-run alone, so only the faulty one fails. If the database itself is unavailable every caller gets
the error, and nothing is acknowledged that was not committed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from prometheus_client import Histogram

__all__ = ["Writer", "WriterClosed"]

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_SIZE = Histogram(
    "openline_writer_batch_size",
    "Writes committed together in one transaction by the group-commit writer.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
COMMIT_SECONDS = Histogram(
    "openline_writer_commit_seconds",
    "Time from the start of a write batch to its commit.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


class WriterClosed(RuntimeError):
    """The writer was closed before this write could be queued."""


@dataclass(eq=False)
class _Write:
    future: asyncio.Future[Any]
    statement: sa.Executable | str | None = None
    params: dict[str, Any] | tuple[Any, ...] = field(default_factory=dict)
    function: Callable[[sa.Connection], Any] | None = None


_STOP = object()


class Writer:
    """Runs writes on one connection in one thread, committing them in groups."""

    def __init__(self, engine: sa.Engine, *, max_batch: int = 1000, name: str = "openline-writer") -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Write | object] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def execute(self, statement: sa.Executable, params: dict[str, Any]) -> None:
        """Execute one statement durably; returns after its transaction committed.

        Pass the same statement object for writes of the same shape: they are grouped into one
        ``executemany``.
        """
        await self._submit(_Write(asyncio.get_running_loop().create_future(), statement, params))

    async def execute_sql(self, sql: str, params: tuple[Any, ...]) -> None:
        """Like :meth:`execute`, for SQL text in the driver's own parameter style and values the driver
        takes as they are: the hottest writes skip SQLAlchemy's per-row work."""
        await self._submit(_Write(asyncio.get_running_loop().create_future(), sql, params))

    async def run(self, function: Callable[[sa.Connection], T]) -> T:
        """Run ``function(connection)`` inside a group transaction; returns its result after commit."""
        result: T = await self._submit(_Write(asyncio.get_running_loop().create_future(), function=function))
        return result

    async def _submit(self, write: _Write) -> Any:
        if self._closed:
            raise WriterClosed("the writer is closed")
        self._queue.put(write)
        return await write.future

    def close(self) -> None:
        """Finish every queued write, then stop the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        connection: sa.Connection | None = None
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[_Write] = [first]  # type: ignore[list-item]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            live = [w for w in batch if not w.future.done()]  # skip writes whose caller gave up
            if not live:
                continue
            try:
                if connection is None or connection.invalidated:
                    connection = self._engine.connect()
                self._commit(connection, live)
            except Exception as exc:
                connection = self._recover(connection, live, exc)
        if connection is not None:
            connection.close()

    def _commit(self, connection: sa.Connection, batch: Sequence[_Write]) -> None:
        started = time.perf_counter()
        with connection.begin():
            results = _apply(connection, batch)
        COMMIT_SECONDS.observe(time.perf_counter() - started)
        BATCH_SIZE.observe(len(batch))
        _resolve(batch, results)

    def _recover(
        self, connection: sa.Connection | None, batch: Sequence[_Write], exc: Exception
    ) -> sa.Connection | None:
        if connection is None or _is_unavailable(exc):
            # The database is unreachable or locked beyond the busy timeout: fail every write
            # (callers answer "retry later"), and reconnect on the next batch.
            log.warning("database write failed for %d writes: %s", len(batch), _one_line(exc))
            _reject(batch, exc)
            if connection is not None:
                connection.close()
            return None
        for write in batch:  # isolate the faulty write
            try:
                with connection.begin():
                    results = _apply(connection, [write])
                _resolve([write], results)
            except Exception as single:
                _reject([write], single)
        return connection


def _apply(connection: sa.Connection, batch: Sequence[_Write]) -> list[Any]:
    results: list[Any] = []
    i = 0
    while i < len(batch):
        write = batch[i]
        if write.function is not None:
            results.append(write.function(connection))
            i += 1
            continue
        j = i + 1
        while j < len(batch) and batch[j].statement is write.statement and batch[j].function is None:
            j += 1
        statement = write.statement
        assert statement is not None
        if isinstance(statement, str):
            connection.exec_driver_sql(statement, [w.params for w in batch[i:j]])
        elif j - i == 1:
            connection.execute(statement, write.params)
        else:
            connection.execute(statement, [w.params for w in batch[i:j]])  # type: ignore[misc]
        results.extend([None] * (j - i))
        i = j
    return results


def _is_unavailable(exc: Exception) -> bool:
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    )


def _one_line(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in outcomes:
        if future.done():  # the caller gave up waiting
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _wake(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Hand results to each caller's event loop: one thread-safe wake-up per loop, not per write."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, group in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, group)
        except RuntimeError:  # that loop has closed; nobody is waiting any more
            log.debug("dropped %d results for a closed event loop", len(group))


def _resolve(batch: Sequence[_Write], results: Sequence[Any]) -> None:
    _wake([(w.future, r, None) for w, r in zip(batch, results, strict=True)])


def _reject(batch: Sequence[_Write], exc: BaseException) -> None:
    _wake([(w.future, None, exc) for w in batch])
