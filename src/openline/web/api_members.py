"""Members in the JSON API: import a CSV, export, read one member's record, erase one member."""

from __future__ import annotations

import asyncio
import csv
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from openline.csv_safety import undo_spreadsheet_safe
from openline.db import schema
from openline.erasure import erase_phone
from openline.members import MemberNotFound, find_member_id, member_record
from openline.members_export import ExportFormat, export_lines
from openline.members_io import ColumnMapError, ImportSummary, import_members
from openline.members_rows import check_country
from openline.phone import InvalidAddress, to_e164
from openline.runtime import Runtime
from openline.web.api import CurrentCommunity

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["members"])

# An import answers with at most this many problems; the count is always complete.
MAX_ERRORS_SHOWN = 1000
# A CSV body larger than this is refused (413) rather than written to the server's temporary disk
# until it fills: ten million members with a long profile each. Larger files: `openline members import`.
MAX_IMPORT_BYTES = 2 * 1024**3


class RowProblem(BaseModel):
    line: int
    column: str
    reason: str


class ImportResult(BaseModel):
    file: str
    dry_run: bool
    rows: int
    created: int
    merged: int
    skipped: int
    errors: int
    subscribed: int
    ignored_columns: list[str]
    problems: list[RowProblem]
    problems_truncated: bool


class Erased(BaseModel):
    phone: str
    was_member: bool


def _number(runtime: Runtime, phone: str) -> str:
    try:
        return to_e164(phone, runtime.settings.default_country)
    except InvalidAddress as exc:
        raise HTTPException(422, str(exc)) from None


def _transact(runtime: Runtime, loop: asyncio.AbstractEventLoop) -> Callable[[Callable[[sa.Connection], Any]], Any]:
    """A transaction per import chunk, from the import's thread: on SQLite one of the group-commit
    writer's (no second writer contends for the lock), on PostgreSQL its own."""

    def transact(work: Callable[[sa.Connection], Any]) -> Any:
        if runtime.db.is_sqlite:
            return asyncio.run_coroutine_threadsafe(runtime.writer.run(work), loop).result()
        with runtime.db.write_engine.begin() as conn:
            return work(conn)

    return transact


def _problems(report: str | None) -> tuple[list[RowProblem], bool]:
    if report is None:
        return [], False
    found: list[RowProblem] = []
    with open(report, newline="", encoding="utf-8") as file:
        rows = csv.reader(file)
        next(rows)  # the header
        for row in rows:
            if len(found) == MAX_ERRORS_SHOWN:
                return found, True
            # The report is written for spreadsheets; the API gives the column's name as the file has it.
            found.append(RowProblem(line=int(row[0]), column=undo_spreadsheet_safe(row[1]), reason=row[2]))
    return found, False


@router.post(
    "/members/import",
    summary="Import members from a CSV body (text/csv); see docs/members.md",
    responses={413: {}, 415: {}, 422: {}},
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}},
)
async def post_import(
    request: Request,
    current: CurrentCommunity,
    map_: Annotated[list[str] | None, Query(alias="map", description="COLUMN=FIELD, repeatable")] = None,
    default_country: Annotated[str | None, Query(description="ISO code for numbers without one")] = None,
    dry_run: bool = False,
    filename: Annotated[str, Query(max_length=200, description="Named in the consent evidence")] = "api-upload.csv",
) -> ImportResult:
    runtime: Runtime = request.app.state.runtime
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "text/csv":
        raise HTTPException(415, "send the CSV file as the body with Content-Type: text/csv")
    column_map: dict[str, str] = {}
    for pair in map_ or []:
        column, sep, target = pair.partition("=")
        if not sep:
            raise HTTPException(422, f"map {pair!r}: expected COLUMN=FIELD")
        column_map[column] = target
    country = runtime.settings.default_country
    if default_country:
        try:
            country = check_country(default_country)
        except ValueError as exc:
            raise HTTPException(422, f"default_country: {exc}") from None
    too_large = HTTPException(
        413, f"the CSV is larger than {MAX_IMPORT_BYTES:,} bytes; import it on the server with openline members import"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_IMPORT_BYTES:
        raise too_large
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="openline-import-") as directory:
        path = Path(directory) / "upload.csv"
        # Streamed to disk: the import reads the file in chunks, so a large upload never sits in memory.
        # Counted too: a chunked body declares no length.
        received = 0
        with path.open("wb") as file:
            async for part in request.stream():
                received += len(part)
                if received > MAX_IMPORT_BYTES:
                    raise too_large
                await asyncio.to_thread(file.write, part)

        def run() -> ImportSummary:
            return import_members(
                path,
                community_id=current.id,
                key=runtime.key_for("suppression"),
                transact=_transact(runtime, loop),
                dialect=runtime.db.write_engine.dialect.name,
                now=schema.utcnow(),
                default_country=country,
                column_map=column_map,
                dry_run=dry_run,
                label=f"api:{filename}",
            )

        try:
            summary = await asyncio.to_thread(run)
        except ColumnMapError as exc:
            raise HTTPException(422, str(exc)) from None
        problems, truncated = await asyncio.to_thread(_problems, summary.error_report)
    return ImportResult(
        file=summary.file,
        dry_run=summary.dry_run,
        rows=summary.rows,
        created=summary.created,
        merged=summary.merged,
        skipped=summary.skipped,
        errors=summary.errors,
        subscribed=summary.subscribed,
        ignored_columns=summary.ignored_columns,
        problems=problems,
        problems_truncated=truncated,
    )


@router.get("/members/export", summary="Every member, streamed as JSON lines (with the ledger) or CSV")
async def get_export(
    request: Request, current: CurrentCommunity, format_: Annotated[ExportFormat, Query(alias="format")] = "jsonl"
) -> StreamingResponse:
    runtime: Runtime = request.app.state.runtime
    media = "application/x-ndjson" if format_ == "jsonl" else "text/csv; charset=utf-8"
    headers = {"Content-Disposition": f'attachment; filename="members.{format_}"'}
    return StreamingResponse(
        export_lines(runtime.db.read_engine, current.id, format_), media_type=media, headers=headers
    )


@router.get("/members/{phone}", summary="Everything openline holds about one member")
async def get_member(request: Request, current: CurrentCommunity, phone: str) -> dict[str, Any]:
    runtime: Runtime = request.app.state.runtime
    number = _number(runtime, phone)

    def load() -> dict[str, Any] | None:
        with runtime.db.read_engine.connect() as conn:
            member_id = find_member_id(conn, current.id, number)
            if member_id is None:
                return None
            try:
                return member_record(conn, member_id)
            except MemberNotFound:  # erased meanwhile
                return None

    found = await asyncio.to_thread(load)
    if found is None:
        raise HTTPException(404, f"no member with the number {number}")
    return found


@router.delete("/members/{phone}", summary="Erase a member's personal data and texts; suppress the number")
async def delete_member(
    request: Request,
    current: CurrentCommunity,
    phone: str,
    reason: Annotated[str, Query(max_length=200)] = "erased through the API",
) -> Erased:
    runtime: Runtime = request.app.state.runtime
    number = _number(runtime, phone)
    key = runtime.key_for("suppression")

    def erase(conn: sa.Connection) -> bool:
        return erase_phone(conn, current.id, number, key=key, now=schema.utcnow(), reason=reason)

    was_member = await runtime.writer.run(erase)
    return Erased(phone=number, was_member=was_member)
