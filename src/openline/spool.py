"""The local spool: where an inbound text waits on disk while the database is unavailable.

Twilio does not retry an inbound webhook that fails (unless connection overrides are configured),
so answering "try again" during a database outage would lose texts. Instead the text is appended to a
local file and fsynced, and only then acknowledged; a background task feeds the spool back through
ingest once the database answers again. Replays are idempotent (the provider message id is unique),
so a text spooled twice, or spooled and also retried by the provider, is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path

from prometheus_client import Counter, Gauge

from openline.providers.base import InboundSms, Media, StatusReport

__all__ = ["Spool", "Spooled", "replay_until_stopped"]

log = logging.getLogger(__name__)

SPOOLED = Counter("openline_spooled_texts", "Inbound texts written to the local spool during a database outage.")
REPLAYED = Counter("openline_spool_replayed_texts", "Spooled texts stored in the database after an outage.")
WAITING = Gauge("openline_spool_files", "Spool files waiting to be replayed.")


Spooled = InboundSms | StatusReport


def _encode(item: Spooled) -> bytes:
    record = {"receipt" if isinstance(item, StatusReport) else "text": asdict(item)}
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _decode(line: bytes) -> Spooled:
    record = json.loads(line)
    if "receipt" in record:
        return StatusReport(**record["receipt"])
    raw = record["text"]
    raw["media"] = tuple(Media(**m) for m in raw.get("media", ()))
    return InboundSms(**raw)


class Spool:
    """Append-only files in ``directory``, one per process and outage; replayed then deleted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._file: int | None = None
        self._path: Path | None = None

    def _open(self) -> int:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path = self.directory / f"inbound-{os.getpid()}-{time.time_ns()}.jsonl"
            self._file = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            # The new name must survive a crash too.
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return self._file

    def _append(self, data: bytes) -> None:
        with self._lock:
            fd = self._open()
            os.write(fd, data)
            os.fsync(fd)

    async def put(self, item: Spooled) -> None:
        """Write a text or a receipt durably to disk; returns once it is synced."""
        await asyncio.to_thread(self._append, _encode(item))
        SPOOLED.inc()

    def _seal(self) -> list[Path]:
        """Close the current file (new texts start a new one) and list every file to replay."""
        with self._lock:
            if self._file is not None:
                os.close(self._file)
                self._file = None
        if not self.directory.is_dir():
            return []
        files = sorted(self.directory.glob("inbound-*.jsonl"))
        WAITING.set(len(files))
        return files

    def pending(self) -> bool:
        return self._file is not None or (self.directory.is_dir() and any(self.directory.glob("inbound-*.jsonl")))

    async def replay(self, store: Callable[[Spooled], Awaitable[object]]) -> int:
        """Store every spooled text with ``store`` (ingest), oldest first, deleting each file when done.

        Stops at the first failure (the database is still away), leaving that file for next time.
        Only files this process does not write to are replayed, so several processes may share a
        directory.
        """
        replayed = 0
        for path in await asyncio.to_thread(self._seal):
            if not _owned_or_orphaned(path):
                continue
            lines = await asyncio.to_thread(path.read_bytes)
            for line in lines.splitlines(keepends=True):
                if not line.endswith(b"\n"):
                    log.warning("spool %s ends in a torn write (never acknowledged); skipped", path.name)
                    break
                await store(_decode(line))
                replayed += 1
                REPLAYED.inc()
            await asyncio.to_thread(path.unlink)
        if replayed:
            log.info("replayed %d spooled texts", replayed)
        WAITING.set(0)
        return replayed


def _owned_or_orphaned(path: Path) -> bool:
    """A spool file is ours to replay if this process wrote it or the process that did is gone."""
    try:
        pid = int(path.name.split("-")[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def replay_until_stopped(
    spool: Spool, store: Callable[[Spooled], Awaitable[object]], stop: asyncio.Event, interval: float = 1.0
) -> None:
    """Replay the spool whenever it holds texts, every ``interval`` seconds, until ``stop`` is set."""
    while not stop.is_set():
        if spool.pending():
            try:
                await spool.replay(store)
            except Exception as exc:  # the database is still away; the files wait
                log.info("spool replay deferred: %s", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
