"""Broadcasts in the JSON API: create, estimate, preview, send, pause, resume, cancel, stats, why."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from openline.broadcasts import (
    Broadcast,
    BroadcastNotFound,
    Message,
    Schedule,
    TemplateProblem,
    WrongState,
    broadcast_stats,
    cancel,
    create_broadcast,
    estimate,
    find_broadcast,
    list_broadcasts,
    pause,
    resume,
    start,
    why,
)
from openline.broadcasts.plan import Planned, Planner, register_links
from openline.communities import Community
from openline.phone import to_e164
from openline.runtime import Runtime
from openline.segments import FilterError, from_json, parse_filter, to_json, to_text
from openline.web.api import CurrentCommunity

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["broadcasts"])
T = TypeVar("T")


class BroadcastIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    message: Message = Field(description="Variants (A/B), each a body with translations; sponsored or not")
    segment: dict[str, Any] | str | None = Field(None, description="The recipients' filter (JSON or text form)")
    segment_name: str | None = Field(None, description="Or a saved segment's name")
    sender: str | None = Field(None, description="Send from this sender only (else each member's usual number)")
    send_at: datetime | None = Field(None, description="Send at this instant (with its offset)")
    local_date: date | None = Field(None, description="With local_time: a wall-clock time in each member's zone")
    local_time: str | None = Field(None, description="HH:MM")


class BroadcastOut(BaseModel):
    id: int
    name: str
    state: str
    segment: str = Field(description="The recipients' filter, in its text form")
    segment_name: str | None
    schedule: str
    message: Message
    tally: dict[str, Any] = Field(description="What fan-out decided so far: recipients, deferred and skipped, by why")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class PreviewOut(BaseModel):
    phone: str
    skipped: str | None = None
    variant: str | None = None
    body: str | None = None
    encoding: str | None = None
    segments: int | None = None
    not_before: datetime | None = None


def _out(broadcast: Broadcast) -> BroadcastOut:
    return BroadcastOut(
        id=broadcast.id,
        name=broadcast.name,
        state=broadcast.state.value,
        segment=to_text(broadcast.segment),
        segment_name=broadcast.segment_name,
        schedule=broadcast.schedule.describe(),
        message=broadcast.message,
        tally=broadcast.tally,
        created_at=broadcast.created_at,
        started_at=broadcast.started_at,
        finished_at=broadcast.finished_at,
    )


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _read(request: Request, work: Callable[[sa.Connection], T]) -> T:
    """``work`` on a read connection, off the event loop; nothing it wrote is kept."""
    runtime = _runtime(request)

    def run() -> T:
        with runtime.db.read_engine.connect() as conn:
            try:
                return work(conn)
            finally:
                conn.rollback()

    return await _answer(asyncio.to_thread(run))


async def _write(request: Request, work: Callable[[sa.Connection], T]) -> T:
    return await _answer(_runtime(request).writer.run(work))


async def _answer(pending: Awaitable[T]) -> T:
    """Domain errors as HTTP answers."""
    try:
        return await pending
    except BroadcastNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except WrongState as exc:
        raise HTTPException(409, str(exc)) from None
    except (TemplateProblem, FilterError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None


def _find(current: Community, ref: str) -> Callable[[sa.Connection], Broadcast]:
    return lambda conn: find_broadcast(conn, current.id, ref)


@router.post("/broadcasts", summary="Create a draft broadcast", status_code=201, responses={422: {}})
async def post_broadcast(request: Request, current: CurrentCommunity, body: BroadcastIn) -> BroadcastOut:
    try:
        node = None
        if body.segment is not None:
            node = to_json(parse_filter(body.segment) if isinstance(body.segment, str) else from_json(body.segment))
        schedule = Schedule(at=body.send_at, local_date=body.local_date, local_time=body.local_time)
    except (FilterError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None

    def create(conn: sa.Connection) -> Broadcast:
        return create_broadcast(
            conn,
            current.id,
            body.name,
            body.message,
            segment=node,
            segment_name=body.segment_name,
            sender=body.sender,
            schedule=schedule,
        )

    return _out(await _write(request, create))


@router.get("/broadcasts", summary="The community's broadcasts, newest first")
async def get_broadcasts(request: Request, current: CurrentCommunity) -> list[BroadcastOut]:
    return [_out(b) for b in await _read(request, lambda conn: list_broadcasts(conn, current.id))]


@router.get("/broadcasts/{ref}", summary="One broadcast (by id or name)", responses={404: {}})
async def get_one_broadcast(request: Request, current: CurrentCommunity, ref: str) -> BroadcastOut:
    return _out(await _read(request, _find(current, ref)))


@router.get("/broadcasts/{ref}/estimate", summary="Recipients, segments, cost and time, before sending")
async def get_estimate(request: Request, current: CurrentCommunity, ref: str) -> dict[str, Any]:
    runtime = _runtime(request)
    key = runtime.key_for("tracked-link")
    broadcast = await _write(
        request, lambda conn: _with_links(conn, find_broadcast(conn, current.id, ref), runtime.base_url, key)
    )
    result = await _read(
        request, lambda conn: estimate(conn, broadcast, now=datetime.now(UTC), base_url=runtime.base_url, link_key=key)
    )
    return result.to_json()


def _with_links(conn: sa.Connection, broadcast: Broadcast, base_url: str, key: bytes) -> Broadcast:
    register_links(conn, broadcast, base_url, key)
    return broadcast


@router.get("/broadcasts/{ref}/preview", summary="The text as some members would get it")
async def get_preview(
    request: Request,
    current: CurrentCommunity,
    ref: str,
    member: Annotated[list[str], Query(description="Members' numbers")] = [],  # noqa: B006
    sample: Annotated[int, Query(ge=1, le=50)] = 3,
) -> list[PreviewOut]:
    runtime = _runtime(request)
    key = runtime.key_for("tracked-link")
    try:
        phones = [to_e164(p) for p in member]
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None

    def preview(conn: sa.Connection) -> list[PreviewOut]:
        broadcast = find_broadcast(conn, current.id, ref)
        planner = Planner(conn, broadcast, now=datetime.now(UTC), base_url=runtime.base_url, link_key=key)
        rows = planner.members(conn, None, len(phones) or sample, phones=phones)
        found = []
        for row, plan in zip(rows, planner.plan(conn, rows), strict=True):
            if isinstance(plan, Planned):
                found.append(
                    PreviewOut(
                        phone=row.phone,
                        variant=plan.variant,
                        body=plan.body,
                        encoding=plan.encoding.value,
                        segments=plan.segments,
                        not_before=plan.not_before,
                    )
                )
            else:
                found.append(PreviewOut(phone=row.phone, skipped=plan.reason))
        return found

    return await _read(request, preview)


@router.post("/broadcasts/{ref}/send", summary="Start the broadcast (now, or at its scheduled time)")
async def post_send(request: Request, current: CurrentCommunity, ref: str) -> BroadcastOut:
    return _out(
        await _write(request, lambda conn: start(conn, find_broadcast(conn, current.id, ref), datetime.now(UTC)))
    )


@router.post("/broadcasts/{ref}/pause", summary="Hold every text not yet sent")
async def post_pause(request: Request, current: CurrentCommunity, ref: str) -> BroadcastOut:
    return _out(await _write(request, lambda conn: pause(conn, find_broadcast(conn, current.id, ref))))


@router.post("/broadcasts/{ref}/resume", summary="Go on with a paused broadcast")
async def post_resume(request: Request, current: CurrentCommunity, ref: str) -> BroadcastOut:
    return _out(await _write(request, lambda conn: resume(conn, find_broadcast(conn, current.id, ref))))


@router.post("/broadcasts/{ref}/cancel", summary="Cancel every text not yet sent")
async def post_cancel(request: Request, current: CurrentCommunity, ref: str) -> BroadcastOut:
    def stop(conn: sa.Connection) -> Broadcast:
        cancelled, _ = cancel(conn, find_broadcast(conn, current.id, ref), datetime.now(UTC))
        return cancelled

    return _out(await _write(request, stop))


@router.get("/broadcasts/{ref}/stats", summary="Live counts: texts by state, failures, clicks, replies, opt-outs")
async def get_stats(request: Request, current: CurrentCommunity, ref: str) -> dict[str, Any]:
    def load(conn: sa.Connection) -> dict[str, Any]:
        return broadcast_stats(conn, find_broadcast(conn, current.id, ref), datetime.now(UTC)).to_json()

    return await _read(request, load)


@router.get("/broadcasts/{ref}/why", summary="What the broadcast did for one member, and why")
async def get_why(
    request: Request, current: CurrentCommunity, ref: str, phone: Annotated[str, Query(description="E.164")]
) -> dict[str, str]:
    runtime = _runtime(request)
    key = runtime.key_for("tracked-link")

    def explain(conn: sa.Connection) -> dict[str, str]:
        broadcast = find_broadcast(conn, current.id, ref)
        story = why(conn, broadcast, phone, now=datetime.now(UTC), base_url=runtime.base_url, link_key=key)
        return {"phone": to_e164(phone), "why": story}

    return await _read(request, explain)
