"""SQLite WAL checkpoints off the commit path.

By default SQLite checkpoints inside whichever commit pushes the WAL past 1,000 pages, and with
``synchronous=FULL`` that commit then waits for the database file's fsync: a stall of tens of
milliseconds for every caller in that group commit. openline turns automatic checkpoints off on its
write connections and checkpoints from a thread of its own instead (PASSIVE: it never blocks writers).
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa

__all__ = ["Checkpointer"]

log = logging.getLogger(__name__)


class Checkpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` every ``interval`` seconds until closed."""

    def __init__(self, engine: sa.Engine, *, interval: float = 1.0) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openline-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except sa.exc.DBAPIError as exc:  # busy or briefly unavailable: the next round catches up
                log.debug("checkpoint skipped: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
