"""Segments in the JSON API: live counts for a filter, and the community's saved segments."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from openline.db.schema import utcnow
from openline.runtime import Runtime
from openline.segments import (
    Filter,
    FilterError,
    SavedSegment,
    count_members,
    counted_segments,
    delete_segment,
    from_json,
    get_segment,
    parse_filter,
    save_segment,
    to_json,
    to_text,
)
from openline.web.api import CurrentCommunity

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["segments"])
T = TypeVar("T")

FILTER_HELP = (
    'The filter as JSON, e.g. {"field": "country", "op": "=", "value": "IT"}, or in its text form, '
    'e.g. "country = IT and tag milan" (see docs/segments.md)'
)


class FilterIn(BaseModel):
    filter: dict[str, Any] | str = Field(description=FILTER_HELP)


class CountOut(BaseModel):
    count: int


class SegmentOut(BaseModel):
    name: str
    filter: dict[str, Any] = Field(description="The filter's JSON form")
    text: str = Field(description="The filter's text form")
    count: int = Field(description="Members matching it now")
    created_at: datetime


def _checked(given: dict[str, Any] | str) -> Filter:
    try:
        return parse_filter(given) if isinstance(given, str) else from_json(given)
    except FilterError as exc:
        raise HTTPException(422, str(exc)) from None


def _out(segment: SavedSegment, count: int) -> SegmentOut:
    return SegmentOut(
        name=segment.name,
        filter=to_json(segment.filter),
        text=to_text(segment.filter),
        count=count,
        created_at=segment.created_at,
    )


async def _read(request: Request, work: Callable[[sa.Connection], T]) -> T:
    """``work(connection)`` on a read connection, off the event loop."""
    runtime: Runtime = request.app.state.runtime

    def run() -> T:
        with runtime.db.read_engine.connect() as conn:
            return work(conn)

    return await asyncio.to_thread(run)


# Before /segments/{name}, so that this path is the count and not a segment called "count".
@router.post("/segments/count", summary="How many members a filter matches now")
async def post_count(request: Request, current: CurrentCommunity, body: FilterIn) -> CountOut:
    node = _checked(body.filter)
    count = await _read(request, lambda conn: count_members(conn, current.id, node, utcnow()))
    return CountOut(count=count)


@router.get("/segments/count", summary="How many members a filter matches now (filter in the query)")
async def get_count(
    request: Request,
    current: CurrentCommunity,
    filter: Annotated[str, Query(description=FILTER_HELP)],
) -> CountOut:
    node = _checked(filter)
    count = await _read(request, lambda conn: count_members(conn, current.id, node, utcnow()))
    return CountOut(count=count)


@router.get("/segments", summary="Saved segments, with how many members each matches now")
async def get_segments(request: Request, current: CurrentCommunity) -> list[SegmentOut]:
    def load(conn: sa.Connection) -> list[SegmentOut]:
        try:
            return [_out(s, n) for s, n in counted_segments(conn, current.id, utcnow())]
        except FilterError as exc:
            raise HTTPException(500, str(exc)) from None

    return await _read(request, load)


@router.get("/segments/{name}", summary="One saved segment, with how many members it matches now", responses={404: {}})
async def get_one_segment(request: Request, current: CurrentCommunity, name: str) -> SegmentOut:
    def load(conn: sa.Connection) -> SegmentOut | None:
        found = get_segment(conn, current.id, name)
        return None if found is None else _out(found, count_members(conn, current.id, found.filter, utcnow()))

    result = await _read(request, load)
    if result is None:
        raise HTTPException(404, f"no segment named {name!r}")
    return result


@router.put(
    "/segments/{name}",
    summary="Save a filter under a name (201 when new, 200 when it replaced one)",
    status_code=201,
    responses={200: {"description": "Replaced the segment of that name"}, 422: {}},
)
async def put_segment(
    request: Request, response: Response, current: CurrentCommunity, name: str, body: FilterIn
) -> SegmentOut:
    runtime: Runtime = request.app.state.runtime
    node = _checked(body.filter)
    if name.strip() == "count":
        raise HTTPException(422, "'count' is reserved: /api/v1/segments/count counts a filter")
    try:
        created = await runtime.writer.run(lambda conn: save_segment(conn, current.id, name, node))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if not created:
        response.status_code = 200

    def load(conn: sa.Connection) -> SegmentOut:
        found = get_segment(conn, current.id, name)
        assert found is not None
        return _out(found, count_members(conn, current.id, found.filter, utcnow()))

    return await _read(request, load)


@router.delete("/segments/{name}", summary="Delete a saved segment", status_code=204, responses={404: {}})
async def delete_one_segment(request: Request, current: CurrentCommunity, name: str) -> Response:
    runtime: Runtime = request.app.state.runtime
    if not await runtime.writer.run(lambda conn: delete_segment(conn, current.id, name)):
        raise HTTPException(404, f"no segment named {name!r}")
    return Response(status_code=204)
