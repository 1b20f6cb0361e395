"""`openline members`: import, export, show and erase members (see docs/members.md)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import sqlalchemy as sa
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from openline.cli_common import CommunityOption, admin_connection, err, fail, installation_key, out, settings_or_exit
from openline.communities import DEFAULT_SLUG, get_community
from openline.db import Database, DatabaseError
from openline.db.checkpoint import Checkpointer
from openline.db.schema import utcnow
from openline.erasure import erase_phone
from openline.members import MemberNotFound, find_member_id, member_record
from openline.members_export import export_lines
from openline.members_io import ColumnMapError, ImportSummary, import_members
from openline.members_rows import check_country
from openline.phone import InvalidAddress, to_e164
from openline.settings import Settings

__all__ = ["members_app"]

members_app = typer.Typer(help="Members: import from CSV, export, look up, erase.", no_args_is_help=True)

PhoneArgument = Annotated[str, typer.Argument(help="The member's number (E.164, or national with a default country).")]


class Format(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


def _phone(raw: str, settings: Settings) -> str:
    try:
        return to_e164(raw, settings.default_country)
    except InvalidAddress as exc:
        fail(str(exc))


@contextmanager
def _database(settings: Settings) -> Iterator[Database]:
    """The database for work in several transactions (an import's chunks, an export's pages); an admin
    connection has checked its schema first."""
    db = Database(settings.database_url)
    try:
        yield db
    except DatabaseError as exc:
        fail(str(exc))
    finally:
        db.dispose()


def _parse_map(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        if not sep or not column.strip() or not target.strip():
            fail(f"--map {pair!r}: expected COLUMN=FIELD, e.g. --map 'Mobile number=phone'")
        found[column.strip()] = target.strip()
    return found


@members_app.command("import")
def members_import(
    file: Annotated[Path, typer.Argument(help="A CSV file with a header line.", exists=True, dir_okay=False)],
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="COLUMN=FIELD: what a column holds (a field, custom.NAME or ignore). Repeat."),
    ] = None,
    default_country: Annotated[
        str | None,
        typer.Option(help="ISO code for numbers without a country code [default: OPENLINE_DEFAULT_COUNTRY]"),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Check every row and write the error report; store nothing.")] = False,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Import members from CSV; rejected rows go to FILE.errors.csv with the reason."""
    settings = settings_or_exit()
    column_map = _parse_map(map_ or [])
    country = settings.default_country
    if default_country is not None:
        try:
            country = check_country(default_country)
        except ValueError as exc:
            fail(f"--default-country: {exc}")
    with admin_connection() as conn:
        community_id = get_community(conn, community).id
        key = installation_key(conn, "suppression")
    with _database(settings) as db:
        # openline's SQLite connections leave checkpoints to a thread of their own (db/checkpoint.py);
        # without one a large import would grow the WAL file by its whole size.
        checkpointer = Checkpointer(db.read_engine) if db.is_sqlite else None

        def transact(work: Callable[[sa.Connection], Any]) -> Any:
            with db.write_engine.begin() as conn:
                return work(conn)

        columns = (TextColumn("importing"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("import", total=file.stat().st_size)
            try:
                summary = import_members(
                    file,
                    community_id=community_id,
                    key=key,
                    transact=transact,
                    dialect=db.write_engine.dialect.name,
                    now=utcnow(),
                    default_country=country,
                    column_map=column_map,
                    dry_run=dry_run,
                    progress=lambda done: progress.update(task, completed=done),
                )
            except ColumnMapError as exc:
                fail(str(exc))
            finally:
                if checkpointer is not None:
                    checkpointer.close()
    _print_summary(summary)


def _print_summary(summary: ImportSummary) -> None:
    table = Table("rows", "created", "merged", "skipped (erased)", "errors", "subscribed")
    table.add_row(
        *(f"{n:,}" for n in (summary.rows, summary.created, summary.merged, summary.skipped)),
        f"{summary.errors:,}",
        f"{summary.subscribed:,}",
    )
    out.print(f"{summary.file}{' (dry run: nothing stored)' if summary.dry_run else ''}")
    out.print(table)
    if summary.ignored_columns:
        out.print(f"ignored columns: {', '.join(summary.ignored_columns)}")
    if summary.error_report:
        out.print(f"rejected and skipped rows, with the reason: {summary.error_report}")


@members_app.command("export")
def members_export(
    format_: Annotated[
        Format, typer.Option("--format", help="csv (one line per member) or jsonl (with the consent ledger).")
    ] = Format.csv,
    output: Annotated[Path | None, typer.Option(help="Write to this file [default: standard output].")] = None,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Export every member of the community: profile, tags, custom fields and consent."""
    settings = settings_or_exit()
    with admin_connection() as conn:
        community_id = get_community(conn, community).id
    with _database(settings) as db:
        target: IO[str] = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            for text in export_lines(db.read_engine, community_id, format_.value):
                target.write(text)
        finally:
            if output:
                target.close()


@members_app.command("show")
def members_show(phone: PhoneArgument, community: CommunityOption = DEFAULT_SLUG) -> None:
    """Print everything openline holds about one member, as JSON (what they may ask to see)."""
    settings = settings_or_exit()
    number = _phone(phone, settings)
    with admin_connection() as conn:
        member_id = find_member_id(conn, get_community(conn, community).id, number)
        if member_id is None:
            fail(f"no member with the number {number}")
        try:
            record = member_record(conn, member_id)
        except MemberNotFound as exc:
            fail(str(exc))
    print(json.dumps(record, indent=2, ensure_ascii=False))


@members_app.command("erase")
def members_erase(
    phone: PhoneArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    reason: Annotated[
        str, typer.Option(help="Why, kept in clear with the suppression: say why, never who.")
    ] = "erased on request",
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Erase a member's personal data and texts; the number is never texted or imported again
    unless the person texts in to join again."""
    settings = settings_or_exit()
    number = _phone(phone, settings)
    if not yes:
        typer.confirm(f"Erase {number} and everything exchanged with it? This cannot be undone", abort=True)
    with admin_connection() as conn:
        key = installation_key(conn, "suppression")
        was_member = erase_phone(conn, get_community(conn, community).id, number, key=key, now=utcnow(), reason=reason)
    out.print(f"erased {number}{'' if was_member else ' (not a member; its texts, if any, were erased)'}")
