"""/members, for the owner and admins: the member list with a live-counted filter, saved segments, and
one member's profile, consent history and JSON export.

The list pages through members newest first by id (``?before=<id>``): each page is one query walking
the primary key backwards with a LIMIT, so it costs the same on page 1 and page 10,000 of a million
members. The filter box takes a segment in its text form (docs/segments.md); as the owner types, htmx
posts it to /members/count, which answers with the live count or the filter's error and its column.
Erasing a member is not offered here (see the docs): it stays with the member's own profile page, the
CLI and the API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from openline.accounts import Session, audit
from openline.db import schema
from openline.forms import ConsentChange, consent_history
from openline.members import PROFILE_COLUMNS, PROFILE_FIELDS, MemberNotFound, member_record
from openline.segments import (
    Filter,
    FilterError,
    SavedSegment,
    count_members,
    get_segment,
    list_segments,
    member_filter,
    parse_filter,
    save_segment,
    to_text,
)
from openline.states import UserRole
from openline.web.dashboard.auth import posted, read, sentence, write
from openline.web.dashboard.deps import DASHBOARD_HEADERS, check_csrf, render, require, runtime_of

__all__ = [
    "PAGE_SIZE",
    "MemberProfile",
    "MemberRow",
    "count_text",
    "load_profile",
    "member_page",
    "read_filter",
    "router",
]

router = APIRouter()

PAGE_SIZE = 50
Admin = Annotated[Session, require(UserRole.admin)]
Posted = Annotated[Session, Depends(check_csrf)]
mem = schema.members.c
# The profile's fields in the order the page lists them (the export's order, then the dates).
_SHOWN = (*PROFILE_FIELDS, "form_submitted_at", "joined_at", "created_at", "updated_at")


@dataclass(frozen=True)
class MemberRow:
    id: int
    phone: str
    state: str
    name: str
    city: str | None
    language: str | None
    joined_at: datetime | None


@dataclass(frozen=True)
class MemberProfile:
    id: int
    phone: str
    state: str
    fields: dict[str, Any]  # the profile columns and their values, in export order
    custom: dict[str, Any]
    time_zone: str | None
    time_zones: list[str]
    tags: list[str]
    consent: list[ConsentChange]
    conversation_id: int | None


def read_filter(written: str) -> Filter:
    """The filter as typed in the box; an empty box is everyone. Raises FilterError."""
    return parse_filter(written.strip() or "everyone")


def count_text(count: int) -> str:
    return f"{count:,} member" + ("" if count == 1 else "s")


def member_page(
    conn: sa.Connection, community_id: int, node: Filter, now: datetime, before: int | None, size: int = PAGE_SIZE
) -> tuple[list[MemberRow], int | None]:
    """A page of the filter's members, newest first, below id ``before``; and the ``before`` of the
    next page (None on the last)."""
    query = (
        sa.select(mem.id, mem.phone, mem.state, mem.first_name, mem.last_name, mem.city, mem.language, mem.joined_at)
        .where(_community(conn, community_id), member_filter(node, now=now))
        .order_by(mem.id.desc())
        .limit(size + 1)
    )
    if before is not None:
        query = query.where(mem.id < before)
    rows = conn.execute(query).all()
    found = [
        MemberRow(
            int(r.id),
            r.phone,
            str(r.state),
            " ".join(part for part in (r.first_name, r.last_name) if part),
            r.city,
            r.language,
            r.joined_at,
        )
        for r in rows[:size]
    ]
    return found, (found[-1].id if len(rows) > size else None)


def _community(conn: sa.Connection, community_id: int) -> sa.ColumnElement[bool]:
    # SQLite's planner would take an index starting with community_id (state, country, joined) and
    # sort every member of the community to find the newest 50; "+ 0" leaves it the primary key,
    # walked backwards, which stops after a page. PostgreSQL weighs both with statistics.
    if conn.dialect.name == "sqlite":
        return (mem.community_id + 0) == community_id
    return mem.community_id == community_id


def load_profile(conn: sa.Connection, community_id: int, member_id: int) -> MemberProfile | None:
    """One member of the community as the profile page shows them (None: no such member here)."""
    row = conn.execute(
        sa.select(*PROFILE_COLUMNS).where(mem.id == member_id, mem.community_id == community_id)
    ).one_or_none()
    if row is None:
        return None
    values = row._mapping
    tags = schema.member_tags.c
    conv = schema.conversations.c
    return MemberProfile(
        id=int(row.id),
        phone=row.phone,
        state=str(row.state),
        fields={name: values[name] for name in _SHOWN},
        custom=dict(sorted((row.custom or {}).items())),
        time_zone=row.time_zone,
        time_zones=list(row.time_zones or []),
        tags=sorted(conn.execute(sa.select(tags.tag).where(tags.member_id == member_id)).scalars()),
        consent=consent_history(conn, member_id),
        conversation_id=conn.execute(sa.select(conv.id).where(conv.member_id == member_id)).scalar_one_or_none(),
    )


# -- the list --------------------------------------------------------------------------------------


@dataclass
class _Listing:
    rows: list[MemberRow]
    next_before: int | None
    count: int | None
    segments: list[SavedSegment]
    segments_error: str


async def _list_page(
    request: Request,
    session: Session,
    written: str,
    before: int | None,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    segment_name: str = "",
    saved: str = "",
) -> HTMLResponse:
    community_id = session.user.community_id
    errors = dict(errors or {})
    node: Filter | None = None
    try:
        node = read_filter(written)
    except FilterError as exc:
        errors["filter"] = sentence(exc)
    now = datetime.now(UTC)

    def load(conn: sa.Connection) -> _Listing:
        listing = _Listing([], None, None, [], "")
        if node is not None:
            listing.rows, listing.next_before = member_page(conn, community_id, node, now, before)
            # Counted on the first page only: later pages are for reading on, and the count of a
            # complex filter over a million members takes up to a second.
            if before is None:
                listing.count = count_members(conn, community_id, node, now)
        try:
            listing.segments = list_segments(conn, community_id)
        except FilterError as exc:  # one stored by a newer version, or edited by hand
            listing.segments_error = sentence(exc)
        return listing

    listing = await read(runtime_of(request), load)
    # Said only of a segment that exists: the name comes from the address, which anyone can write.
    notice = f"Saved the segment “{saved}”." if saved in {s.name for s in listing.segments} else ""
    return render(
        request,
        "dashboard/members.html",
        status_code=status_code,
        section="members",
        filter=written,
        applied=node is not None and bool(written.strip()),
        before=before,
        rows=listing.rows,
        next_before=listing.next_before,
        count=None if listing.count is None else count_text(listing.count),
        segments=[(s.name, to_text(s.filter)) for s in listing.segments],
        segments_error=listing.segments_error,
        segment_name=segment_name,
        errors=errors,
        notice=notice,
    )


@router.get("/members")
async def members_page(
    request: Request,
    session: Admin,
    filter_text: Annotated[str, Query(alias="filter", max_length=10_000)] = "",
    before: Annotated[int | None, Query(ge=1)] = None,
    saved: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    return await _list_page(request, session, filter_text, before, saved=saved)


@router.post("/members/count")
async def live_count(request: Request, session: Admin, _csrf: Posted) -> HTMLResponse:
    """The live count under a filter box: the typed filter's (``filter``), or a saved segment's
    (``segment_name``, as the broadcast composer sends when one is chosen). Always 200: htmx swaps
    only successful answers, and an error is an answer here."""
    form = await posted(request)
    community_id, now = session.user.community_id, datetime.now(UTC)
    name = form.get("segment_name", "").strip()

    def count(conn: sa.Connection) -> str | FilterError:
        try:
            if name:
                saved = get_segment(conn, community_id, name)
                if saved is None:
                    return FilterError(f"there is no saved segment named {name!r}")
                return count_text(count_members(conn, community_id, saved.filter, now))
            return count_text(count_members(conn, community_id, read_filter(form.get("filter", "")), now))
        except FilterError as exc:
            return exc

    return _count_fragment(request, await read(runtime_of(request), count))


def _count_fragment(request: Request, answer: str | FilterError) -> HTMLResponse:
    if isinstance(answer, FilterError):
        return render(request, "dashboard/_members_count.html", text=sentence(answer), error=True)
    return render(request, "dashboard/_members_count.html", text=answer, error=False)


@router.get("/members/segment-count")
async def segment_count(request: Request, session: Admin, name: Annotated[str, Query(max_length=200)]) -> HTMLResponse:
    """A saved segment's live count, fetched by the page after it is shown (one request per segment,
    so a page with many segments over many members appears at once)."""
    community_id, now = session.user.community_id, datetime.now(UTC)

    def count(conn: sa.Connection) -> str | FilterError:
        try:
            saved = get_segment(conn, community_id, name)
        except FilterError as exc:
            return exc
        if saved is None:
            return FilterError("this segment was deleted")
        return count_text(count_members(conn, community_id, saved.filter, now))

    return _count_fragment(request, await read(runtime_of(request), count))


@router.post("/members/segments")
async def save_as_segment(request: Request, session: Admin, _csrf: Posted) -> Response:
    form = await posted(request)
    written, name = form.get("filter", ""), form.get("segment_name", "")
    try:
        node = read_filter(written)
    except FilterError as exc:
        return await _list_page(request, session, written, None, 400, {"filter": sentence(exc)}, segment_name=name)
    user = session.user

    def save(conn: sa.Connection) -> None:
        created = save_segment(conn, user.community_id, name, node)
        audit(conn, user, "segment.save", name.strip(), {"filter": to_text(node), "new": created})

    try:
        await write(runtime_of(request), save)
    except ValueError as exc:  # the name: empty, too long, control characters
        return await _list_page(request, session, written, None, 400, {"segment_name": sentence(exc)}, name)
    query = {"filter": written, "saved": name.strip()}
    return RedirectResponse(f"/members?{urlencode(query)}", status_code=303)


# -- one member --------------------------------------------------------------------------------------


@router.get("/members/{member_id:int}")
async def member_profile(request: Request, session: Admin, member_id: int) -> HTMLResponse:
    community_id = session.user.community_id
    profile = await read(runtime_of(request), lambda conn: load_profile(conn, community_id, member_id))
    if profile is None:
        raise HTTPException(404, "there is no such member (or they erased their data)")
    return render(request, "dashboard/member.html", section="members", member=profile, show=_shown)


def _shown(value: Any) -> str:
    """A profile value as the page shows it."""
    if value is None or value == "":
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@router.get("/members/{member_id:int}/export.json")
async def member_export(request: Request, session: Admin, member_id: int) -> Response:
    """Everything openline holds about the member (openline.members.member_record), as a download.
    Each export is written to the audit log: it is personal data leaving the system."""
    user = session.user

    def export(conn: sa.Connection) -> dict[str, Any]:
        found = conn.execute(
            sa.select(mem.id).where(mem.id == member_id, mem.community_id == user.community_id)
        ).one_or_none()
        if found is None:
            raise MemberNotFound(member_id)
        record = member_record(conn, member_id)
        audit(conn, user, "member.export", f"member {member_id}", {})
        return record

    try:
        record = await write(runtime_of(request), export)
    except MemberNotFound:
        raise HTTPException(404, "there is no such member (or they erased their data)") from None
    headers = {**DASHBOARD_HEADERS, "Content-Disposition": f'attachment; filename="member-{member_id}.json"'}
    body = json.dumps(record, ensure_ascii=False, indent=2) + "\n"
    return Response(body, media_type="application/json", headers=headers)
