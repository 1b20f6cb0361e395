"""Importing members from CSV and exporting them, streaming: memory stays flat whatever the file's size.

Import: rows are read with the ``csv`` module in chunks, checked (in a process pool for large files:
parsing phone numbers is the costly part), merged within the chunk, and stored one chunk per
transaction. Problems are written, one per line, to ``FILE.errors.csv`` next to the input.
See docs/members.md for the rules (consent columns, merging, suppressed numbers).
"""

from __future__ import annotations

import csv
import gc
import json
import multiprocessing
import os
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import psycopg
import sqlalchemy as sa
from rbloom import Bloom
from sqlalchemy.dialects import postgresql

from openline.analytics import forget, settled_until
from openline.csv_safety import spreadsheet_safe, undo_spreadsheet_safe
from openline.db import schema
from openline.erasure import phone_hash
from openline.members import PROFILE_FIELDS
from openline.members_rows import (
    MEMBER_COLUMNS,
    ColumnMapError,
    Job,
    Prepared,
    RowError,
    evidence,
    prepare_chunk,
    resolve_columns,
    stored_time,
)
from openline.regions import member_region
from openline.states import ConsentSource, MemberState
from openline.timezones import member_zones

__all__ = [
    "ColumnMapError",
    "ImportSummary",
    "Transact",
    "error_report_path",
    "import_members",
]

# Runs a function in one write transaction and returns its result (the CLI: engine.begin(); the web
# process: its group-commit writer).
Transact = Callable[[Callable[[sa.Connection], Any]], Any]

CHUNK_ROWS = 5_000
# Below this size a process pool costs more to start than it saves.
POOL_MIN_BYTES = 4_000_000

_mem = schema.members.c
_OPTED_OUT = (MemberState.unsubscribed, MemberState.blocked)
_SUPPRESSED = "the number was erased at the person's request; it comes back only if they text in again"
_REPORT_COLUMNS = ("line", "column", "reason")
_UNDECODED = re.compile("[\udc80-\udcff]")


@dataclass
class ImportSummary:
    """What an import did, row by row (every data row is counted once, in one of the last four)."""

    file: str
    dry_run: bool = False
    rows: int = 0
    created: int = 0
    # Rows about a number seen earlier in the file or already a member: folded into that member.
    merged: int = 0
    # Rows for erased (suppressed) numbers.
    skipped: int = 0
    errors: int = 0
    # Members who became subscribed by this import (rows with consent evidence).
    subscribed: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    error_report: str | None = None


@dataclass
class _Guess:
    """What the chunks stored so far tell about the next one."""

    # Every number the import has stored or merged so far, in a Bloom filter: it may answer yes for
    # a number it never saw (about 1 % of numbers until it holds ``_SEEN_CAPACITY``, more after:
    # such a number is merely looked up), never no for one it did, and its size is fixed.
    seen: Bloom
    # Whether the last chunk met no member the import had not stored itself, as in a first import
    # into a community: then only the numbers in ``seen`` are looked up, the others inserted straight
    # away, and the unique index tells if one was a member after all. A million-row first import
    # otherwise spends a tenth of its time looking up numbers that are not there.
    all_new: bool = True


# Two million numbers fit in about 2.3 MiB at a 1 % false-positive rate.
_SEEN_CAPACITY = 2_000_000


def error_report_path(path: Path) -> Path:
    return path.with_name(path.name + ".errors.csv")


@dataclass
class _Reader:
    """CSV records with the line each starts on; tells the bytes read (for progress) and spots lines
    that are not UTF-8 or hold NUL characters (which PostgreSQL cannot store).

    Lines end at LF, CR LF or a lone CR (old spreadsheets), as in any text editor.
    """

    file: IO[str]
    _line: int = 0
    _bad: dict[int, str] = field(default_factory=dict)

    @property
    def bytes_read(self) -> int:
        return int(self.file.buffer.tell())  # type: ignore[attr-defined]

    def _lines(self) -> Iterator[str]:
        for text in self.file:
            self._line += 1
            if _UNDECODED.search(text):  # bytes that were not UTF-8 (kept by errors="surrogateescape")
                self._bad[self._line] = "the line is not UTF-8 text (save the file as UTF-8)"
                text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            if "\x00" in text:
                self._bad[self._line] = "the line contains a NUL character"
                text = text.replace("\x00", "")
            yield text

    def records(self) -> Iterator[tuple[int, list[str], str | None]]:
        """(line, fields, None) for each record, or (line, what could be read, why it is unusable)."""
        reader = csv.reader(self._lines())
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, [], f"malformed CSV: {exc}"
                continue
            if self._bad:
                read = sorted(n for n in self._bad if n <= reader.line_num)
                # This record's own lines; older ones belonged to a record csv could not read at all.
                mine = [self._bad.pop(n) for n in read if n >= start]
                for n in read:
                    self._bad.pop(n, None)
                if mine:
                    yield start, row, mine[0]
                    continue
            yield start, row, None


@dataclass
class _Report:
    """FILE.errors.csv, opened at the first problem."""

    path: Path
    header: Sequence[str]
    _file: IO[str] | None = None
    _writer: Any = None

    def write(self, line: int, column: str, reason: str, row: Sequence[str]) -> None:
        # The header and the row come from the file: the report is opened in a spreadsheet to be fixed,
        # where none of them may run as a formula. A cell the file already had escaped stays as it was,
        # so the fixed report imports as the file would have. The reason is left as it is: it quotes
        # any value with repr(), so it starts with a letter or a quote mark, never a formula (and the
        # API reads it back as it is).
        if self._writer is None:
            self._file = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow([*_REPORT_COLUMNS, *map(spreadsheet_safe, self.header)])
        echoed = (spreadsheet_safe(undo_spreadsheet_safe(value)) for value in row)
        self._writer.writerow([line, spreadsheet_safe(column), reason, *echoed])

    def close(self) -> bool:
        if self._file is None:
            return False
        self._file.close()
        return True


def import_members(
    path: Path,
    *,
    community_id: int,
    key: bytes,
    transact: Transact,
    dialect: str,
    now: datetime,
    default_country: str | None = None,
    column_map: Mapping[str, str] | None = None,
    dry_run: bool = False,
    progress: Callable[[int], object] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    workers: int | None = None,
    label: str | None = None,
) -> ImportSummary:
    """Import members from the CSV file at ``path`` into a community; see the module's docstring.

    ``key`` is the suppression key (erased numbers are skipped), ``default_country`` the region of
    numbers written without a country code, ``column_map`` column -> field overrides. ``progress`` is
    told the bytes read so far. ``workers``: processes checking rows beside this one, which stores
    them (0: this one checks too; None: one per spare CPU for large files). ``label`` names the file
    in consent evidence (default: its name); ``dialect`` names the database ``transact`` writes to
    (``sqlite`` or ``postgresql``: rows are prepared in the form its driver takes).
    Raises ColumnMapError, before anything is stored, when the header cannot be used.
    """
    summary = ImportSummary(file=label or path.name, dry_run=dry_run)
    report_path = error_report_path(path)
    if workers is None:
        workers = (os.cpu_count() or 1) - 1 if path.stat().st_size >= POOL_MIN_BYTES else 0
    with _long_lived_objects_frozen(), path.open(encoding="utf-8-sig", errors="surrogateescape") as file:
        reader = _Reader(file)
        records = reader.records()
        columns = resolve_columns(_header(records), column_map)
        summary.ignored_columns = columns.ignored
        job = Job(columns, default_country, now, key, summary.file, community_id, dialect == "sqlite")
        report = _Report(report_path, columns.header)
        guess = _Guess(Bloom(_SEEN_CAPACITY, 0.01))
        pool = _pool(workers) if workers > 0 else None
        # Chunks are stored by a thread of their own: while the database works on one chunk (the
        # driver lets go of the GIL), this thread reads the next ones and hands them to the pool.
        storer = ThreadPoolExecutor(1, thread_name_prefix="openline-import")
        checking: deque[tuple[dict[int, Sequence[str]], list[RowError], Future[Any] | tuple[Any, Any]]] = deque()
        storing: deque[Future[None]] = deque()

        def store(rows: dict[int, Sequence[str]], unreadable: list[RowError], checked: tuple[Any, Any]) -> None:
            candidates, errors = checked
            _store(
                rows,
                [Prepared._make(c) for c in candidates],
                errors,
                unreadable,
                summary,
                report,
                transact,
                job,
                guess,
                dry_run,
            )
            if progress is not None:
                progress(reader.bytes_read)

        def hand_over(limit: int) -> None:
            """Send checked chunks to the storer until at most ``limit`` are left with the pool."""
            while len(checking) > limit:
                rows, unreadable, prepared = checking.popleft()
                checked = prepared.result() if isinstance(prepared, Future) else prepared
                storing.append(storer.submit(store, rows, unreadable, checked))
                while len(storing) > 1:  # one chunk stored while the next waits: memory stays bounded
                    storing.popleft().result()

        try:
            for chunk, broken in _chunks(records, chunk_rows):
                summary.rows += len(chunk) + len(broken)  # only this thread counts rows; the storer the rest
                rows: dict[int, Sequence[str]] = dict(chunk)
                rows.update((line, row) for line, row, _ in broken)
                unreadable = [RowError(line, "", reason) for line, _, reason in broken]
                prepared = pool.submit(_prepare, chunk, job) if pool is not None else prepare_chunk(chunk, job)
                checking.append((rows, unreadable, prepared))
                hand_over(workers)  # a chunk in flight per worker keeps the pool busy; more would hold memory
            hand_over(0)
            while storing:
                storing.popleft().result()
        finally:
            for waiting in storing:
                waiting.cancel()
            storer.shutdown(wait=True)
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            wrote = report.close()
    if wrote:
        summary.error_report = str(report_path)
    elif report_path.exists():
        report_path.unlink()  # a report from an earlier run of the same file no longer applies
    return summary


@contextmanager
def _long_lived_objects_frozen() -> Iterator[None]:
    """Keep the garbage collector's full passes off the objects that were there before the import.

    An import allocates several containers per row, and every few chunks that sets off a full pass
    over every object of the process (the web app's included): a sixth of a million-row import's
    time went there. Frozen objects are still freed by reference counting; only cycles among them
    wait until the import ends. A process that froze its objects itself (a server may, before it
    forks), or an import running beside this one, is left as it is.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _prepare(rows: Sequence[tuple[int, Sequence[str]]], job: Job) -> tuple[list[tuple[Any, ...]], list[RowError]]:
    """prepare_chunk in a pool's process, which does nothing else: the collector waits until the chunk
    is done, as what a chunk allocates lives until then anyway (up to a quarter of checking time otherwise)."""
    gc.disable()
    try:
        return prepare_chunk(rows, job)
    finally:
        gc.enable()


def _pool(workers: int) -> Executor:
    # A fork server: children forked from a clean single-threaded process (forking the web server's
    # threads could deadlock), without re-running the caller's main module (``python -m openline``).
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(workers, mp_context=context)


def _header(records: Iterator[tuple[int, list[str], str | None]]) -> list[str]:
    for line, row, problem in records:
        if problem is not None:
            raise ColumnMapError(f"line {line}: the header is unusable ({problem})")
        if any(cell.strip() for cell in row):
            return row
    raise ColumnMapError("the file is empty: expected a header line, then one member per line")


def _chunks(
    records: Iterator[tuple[int, list[str], str | None]], size: int
) -> Iterator[tuple[list[tuple[int, tuple[str, ...]]], list[tuple[int, list[str], str]]]]:
    """Up to ``size`` data rows at a time (blank lines dropped), with the records that cannot be read.
    Rows become tuples: the collector soon stops tracking a tuple of strings, never a list."""
    chunk: list[tuple[int, tuple[str, ...]]] = []
    broken: list[tuple[int, list[str], str]] = []
    for line, row, problem in records:
        if problem is not None:
            broken.append((line, row, problem))
        elif any(cell.strip() for cell in row):
            chunk.append((line, tuple(row)))
            if len(chunk) >= size:
                yield chunk, broken
                chunk, broken = [], []
    if chunk or broken:
        yield chunk, broken


def _store(
    rows: dict[int, Sequence[str]],
    candidates: list[Prepared],
    errors: list[RowError],
    unreadable: list[RowError],
    summary: ImportSummary,
    report: _Report,
    transact: Transact,
    job: Job,
    guess: _Guess,
    dry_run: bool,
) -> None:
    def work(conn: sa.Connection) -> tuple[int, int, list[Prepared]]:
        return _write(conn, job, candidates, guess, dry_run)

    created, subscribed, suppressed = transact(work) if candidates else (0, 0, [])
    skipped = sum(len(c.lines) for c in suppressed)
    summary.errors += len(unreadable) + len({e.line for e in errors})
    summary.created += created
    summary.subscribed += subscribed
    summary.skipped += skipped
    summary.merged += sum(len(c.lines) for c in candidates) - created - skipped
    problems = [*unreadable, *errors, *(RowError(line, "", _SUPPRESSED) for c in suppressed for line in c.lines)]
    for problem in sorted(problems, key=lambda p: p.line):
        report.write(problem.line, problem.column, problem.reason, rows.get(problem.line, []))


def _write(
    conn: sa.Connection, job: Job, candidates: list[Prepared], guess: _Guess, dry_run: bool
) -> tuple[int, int, list[Prepared]]:
    """Store one chunk (numbers unique within it); returns (created, subscribed, suppressed)."""
    community_id = job.community_id
    suppressed = _suppressed(conn, community_id, job.key, candidates)
    erased = {c.phone for c in suppressed}
    wanted = {c.phone: c for c in candidates if c.phone not in erased}
    if dry_run:
        known = _existing(conn, community_id, list(wanted), lock=False)
        subscribing = sum(1 for c in wanted.values() if _subscribes(c, known.get(c.phone)))
        return len(wanted) - len(known), subscribing, suppressed

    bulk = _Bulk(conn)
    now = stored_time(job.now, bulk.sqlite)
    existing: dict[str, sa.RowMapping] = {}
    created_ids = None
    if guess.all_new:
        # Numbers repeated from earlier chunks are looked up; the rest go in unless one is a member.
        repeated = [phone for phone in wanted if phone in guess.seen]
        existing = _existing(conn, community_id, repeated) if repeated else {}
        fresh = [c for phone, c in wanted.items() if phone not in existing]
        created_ids = _insert_members(bulk, fresh, all_or_none=True)
    if created_ids is None:
        existing = _existing(conn, community_id, list(wanted))
        fresh = [c for phone, c in wanted.items() if phone not in existing]
        created_ids = _insert_members(bulk, fresh, all_or_none=False) or {}
        raced = [c.phone for c in fresh if c.phone not in created_ids]
        if raced:  # some number became a member meanwhile (by a text): merged into it instead
            existing.update(_existing(conn, community_id, raced))
    guess.all_new = all(phone in guess.seen for phone in existing)
    guess.seen.update(wanted)

    source = ConsentSource.import_file.value
    events: list[tuple[Any, ...]] = []
    subscribed = 0
    joined: list[datetime] = []  # when members who join by this chunk consented, by the file
    for phone, member_id in created_ids.items():
        candidate = wanted[phone]
        state = candidate.row[2]  # as a new member
        if state == MemberState.subscribed:
            subscribed += 1
            joined += [datetime.fromisoformat(candidate.consent[1])] if candidate.consent else []
        events.append((community_id, member_id, None, state, source, candidate.evidence, now))
    updates: list[dict[str, Any]] = []
    for phone, row in existing.items():
        candidate = wanted[phone]
        update, new_state = _changes(row, candidate, job.now)
        if update is not None:
            updates.append(update)
            joined += [update["joined_at"]] if update["joined_at"] and not row["joined_at"] else []
        if new_state is not None:
            found_evidence = evidence(candidate.consent, candidate.lines, new_state, job.file)
            previous = MemberState(row["state"]).value
            events.append((community_id, row["id"], previous, new_state.value, source, found_evidence, now))
            subscribed += new_state is MemberState.subscribed
    if updates:
        conn.execute(_UPDATE, updates)
    first_day = min(joined).astimezone(UTC).date() if joined else None
    if first_day is not None and first_day <= settled_until(job.now):
        # Members dated into days whose analytics were kept: those days are counted again.
        forget(conn, community_id, first_day)
    bulk.insert("consent_events", _EVENT_COLUMNS, events)
    # Members created in this transaction have no tags yet; existing ones may have some of these.
    tag_columns = ("member_id", "tag")
    bulk.insert("member_tags", tag_columns, [(created_ids[p], tag) for p in created_ids for tag in wanted[p].tags])
    old_tags = [(int(row["id"]), tag) for phone, row in existing.items() for tag in wanted[phone].tags]
    bulk.insert("member_tags", tag_columns, old_tags, conflict=tag_columns)
    return len(created_ids), subscribed, suppressed


def _insert_members(bulk: _Bulk, fresh: list[Prepared], *, all_or_none: bool) -> dict[str, int] | None:
    """Insert members for these candidates, with ids chosen up front so they need no look-up
    afterwards; returns their ids by number. A number that is a member already (the unique index
    tells) is left out, or with ``all_or_none`` nothing is inserted and the answer is None."""
    if not fresh:
        return {}
    ids = bulk.new_ids(len(fresh))
    rows = [(member_id, *c.row) for member_id, c in zip(ids, fresh, strict=True)]
    created = {c.phone: member_id for member_id, c in zip(ids, fresh, strict=True)}
    conflict = ("community_id", "phone")
    if bulk.insert("members", ("id", *MEMBER_COLUMNS), rows, conflict=conflict, all_or_none=all_or_none):
        return created
    if all_or_none:
        return None
    kept = bulk.conn.execute(sa.select(_mem.phone).where(_mem.id.in_(ids)))
    return {phone: created[phone] for phone in kept.scalars()}


def _suppressed(conn: sa.Connection, community_id: int, key: bytes, candidates: list[Prepared]) -> list[Prepared]:
    """The candidates whose number was erased from the community."""
    s = schema.suppressions.c
    if conn.execute(sa.select(s.phone_hash).where(s.community_id == community_id).limit(1)).first() is None:
        return []  # the usual case: nobody was ever erased here, no need to send every hash
    # Hashed here rather than beside the checks: most communities never need them.
    by_hash = {phone_hash(key, c.phone): c for c in candidates}
    query = sa.select(s.phone_hash).where(s.community_id == community_id, _one_of(conn, s.phone_hash, list(by_hash)))
    return [by_hash[h] for h in conn.execute(query).scalars()]


class _Bulk:
    """Many rows into one table at once, bypassing SQLAlchemy's per-row work (it would cost more than
    the database does). Rows come with values as the columns store them (see prepare_chunk), as
    openline.ingest does for inbound texts. SQLite: one ``executemany``. PostgreSQL: binary ``COPY``,
    several times faster than any INSERT; where a row may already be there (``conflict``), the rows
    that are new are kept: first COPY straight in (in a savepoint), and only when that collides, COPY
    into a temporary table and ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"

    def new_ids(self, count: int) -> list[int]:
        """Ids for ``count`` new members. On SQLite the write transaction holds the database's one
        write lock, so the ids after the highest are free; on PostgreSQL they come from its sequence."""
        if self.sqlite:
            highest = self.conn.execute(sa.select(sa.func.coalesce(sa.func.max(_mem.id), 0))).scalar_one()
            return list(range(int(highest) + 1, int(highest) + 1 + count))
        # The sequence is looked up once, as a subquery: called per row, pg_get_serial_sequence made
        # taking the ids cost five times what the sequence does.
        sequence = "(SELECT pg_get_serial_sequence('members', 'id')::regclass)"
        taken = f"SELECT nextval({sequence}) FROM generate_series(1, %s)"
        return [int(n) for (n,) in self.conn.exec_driver_sql(taken, (count,))]

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
        *,
        conflict: Sequence[str] = (),
        all_or_none: bool = False,
    ) -> bool:
        """Insert ``rows``; False when some were already there (by ``conflict``): those were left out,
        or with ``all_or_none`` none was inserted."""
        if not rows:
            return True
        names = ", ".join(columns)
        ignore = f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
        if not conflict:
            self._insert(table, names, rows)
            return True
        if self.sqlite and not all_or_none:
            return self._insert(table, names, rows, ignore) == len(rows)
        try:
            with self.conn.begin_nested():
                self._insert(table, names, rows)
            return True
        except (psycopg.errors.UniqueViolation, sa.exc.IntegrityError) as exc:
            if isinstance(exc, sa.exc.IntegrityError) and "UNIQUE constraint failed" not in str(exc.orig):
                raise
            if all_or_none:
                return False
        # e.g. a member created by a text meanwhile: keep the others
        incoming = f"incoming_{table}"
        # Column types only (no constraints, no defaults); dropped right after.
        self._cursor().execute(f"CREATE TEMPORARY TABLE {incoming} AS SELECT {names} FROM {table} WITH NO DATA")
        self._copy(incoming, names, rows, types_of=table)
        self._cursor().execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {incoming}{ignore}")
        self._cursor().execute(f"DROP TABLE {incoming}")
        return False

    def _insert(self, table: str, names: str, rows: list[tuple[Any, ...]], suffix: str = "") -> int:
        """Insert every row (``suffix``: an ON CONFLICT clause, SQLite only); returns how many went in."""
        if self.sqlite:
            marks = ", ".join("?" for _ in rows[0])
            return int(
                self.conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks}){suffix}", rows).rowcount
            )
        self._copy(table, names, rows)
        return len(rows)

    def _cursor(self) -> Any:
        return self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]

    def _copy(self, table: str, names: str, rows: list[tuple[Any, ...]], types_of: str | None = None) -> None:
        # Binary: psycopg sends numbers and times as they are instead of formatting them, which made its
        # side of a COPY about 40 % cheaper, and the server need not parse them.
        with self._cursor().copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_copy_types(self.conn.dialect, types_of or table, tuple(names.split(", "))))
            for row in rows:
                copy.write_row(row)


@lru_cache(maxsize=16)
def _copy_types(dialect: sa.Dialect, table: str, columns: tuple[str, ...]) -> list[str]:
    """The types psycopg sends these columns as in a binary COPY: each column's own, except that JSON
    goes as the text it already is (the server reads JSON sent in binary as its text)."""
    found = []
    for name in columns:
        sql = schema.metadata.tables[table].c[name].type.compile(dialect=dialect).split("(")[0]
        found.append(_BINARY.get(sql, "text"))
    return found


# SQL types (as PostgreSQL names them) sent as themselves; the others (VARCHAR, JSON) go as text.
_BINARY = {
    "BIGINT": "int8",
    "INTEGER": "int4",
    "DATE": "date",
    "TIMESTAMP WITHOUT TIME ZONE": "timestamp",
    "BOOLEAN": "bool",
}


_EVENT_COLUMNS = ("community_id", "member_id", "previous_state", "new_state", "source", "evidence", "occurred_at")
_UPDATED = (*PROFILE_FIELDS, "region", "time_zone", "time_zones", "custom", "state", "joined_at", "updated_at")
_PLACE = ("country", "postcode", "city")
_UPDATE = (
    sa.update(schema.members)
    .where(_mem.id == sa.bindparam("_id"))
    .values({name: sa.bindparam(name, type_=_mem[name].type) for name in _UPDATED})
)


def _one_of(conn: sa.Connection, column: sa.ColumnElement[str], values: list[str]) -> sa.ColumnElement[bool]:
    """``column IN (values)`` with the values as one parameter (a JSON array on SQLite, an array on
    PostgreSQL): a literal IN list is new SQL for every length, which SQLAlchemy compiles and the
    driver's statement cache keeps, thousands of parameters each."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam("values", values, type_=postgresql.ARRAY(sa.String())))
    listed = sa.func.json_each(sa.bindparam("values", json.dumps(values))).table_valued("value")
    return column.in_(sa.select(listed.c.value))


def _existing(
    conn: sa.Connection, community_id: int, phones: list[str], *, lock: bool = True
) -> dict[str, sa.RowMapping]:
    """Members with these numbers; with ``lock``, locked until the transaction ends: a STOP texted
    meanwhile waits instead of being overwritten by the state read here."""
    if not phones:
        return {}
    columns = (_mem.id, _mem.phone, *(_mem[f] for f in _UPDATED if f != "updated_at"))
    if conn.dialect.name == "postgresql":
        # One look-up per number by the unique (community_id, phone) index, as a LATERAL join. Asked as
        # ``phone = ANY(...)``, PostgreSQL judges 5,000 index probes dearer than reading the whole
        # community, and a million-row import then reads the community again for every chunk
        # (40-130 ms a chunk, against 7 ms).
        listed = sa.func.unnest(sa.bindparam("phones", phones, type_=postgresql.ARRAY(sa.String())))
        numbers = listed.table_valued("phone").render_derived(name="number")
        found = sa.select(*columns).where(_mem.community_id == community_id, _mem.phone == numbers.c.phone)
        member = (found.with_for_update() if lock else found).lateral("member")
        query = sa.select(member).select_from(numbers).join(member, sa.true())
    else:
        query = sa.select(*columns).where(_mem.community_id == community_id, _one_of(conn, _mem.phone, phones))
        query = query.with_for_update() if lock else query
    return {row["phone"]: row for row in conn.execute(query).mappings()}


def _subscribes(candidate: Prepared, row: sa.RowMapping | None) -> bool:
    if candidate.opt_out is not None or candidate.consent is None:
        return False
    return row is None or row["state"] in (MemberState.new, MemberState.pending)


def _changes(
    row: sa.RowMapping, candidate: Prepared, now: datetime
) -> tuple[dict[str, Any] | None, MemberState | None]:
    """The update (None: nothing changes) and the new state (None: it stays) of an existing member.
    Opted-out members keep their state whatever the file says; nobody is subscribed again."""
    values = {name: row[name] for name in (*PROFILE_FIELDS, "region", "time_zone", "time_zones")}
    values.update(candidate.profile)
    custom = {**(row["custom"] or {}), **candidate.custom}
    state = MemberState(row["state"])
    joined_at = row["joined_at"]
    new_state = state
    if state not in _OPTED_OUT:
        if candidate.opt_out is not None:
            new_state = MemberState(candidate.opt_out)
        elif candidate.consent is not None and state in (MemberState.new, MemberState.pending):
            new_state = MemberState.subscribed
            joined_at = joined_at or datetime.fromisoformat(candidate.consent[1])
    if any(values[name] != row[name] for name in _PLACE):  # where they are changed: so may their zones
        place = (values["country"], values["postcode"], values["city"])
        values["time_zone"], values["time_zones"] = member_zones(row["phone"], *place)
        values["region"] = member_region(row["phone"], values["country"], values["postcode"])
    changed = new_state is not state or custom != (row["custom"] or {})
    changed = changed or any(values[name] != row[name] for name in values)
    if not changed:
        return None, None
    update = {"_id": row["id"], **values, "custom": custom, "state": new_state, "joined_at": joined_at}
    update["updated_at"] = now
    return update, (new_state if new_state is not state else None)
