"""/broadcasts, for the owner and admins: the list with live progress, and one broadcast's page
(estimate, preview, send, live stats, pause/resume/cancel, and "why" for one member).

Everything here goes through openline.broadcasts, so the dashboard sends exactly what the CLI and the
API would. The composer (/broadcasts/new) is in broadcast_compose, included into :data:`router`; what a
draft would do (its estimate, kept for a while, and the preview) is worked out in broadcast_estimate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from openline.accounts import Session, audit
from openline.broadcasts import (
    Broadcast,
    BroadcastNotFound,
    BroadcastStats,
    Estimate,
    WrongState,
    broadcast_stats,
    cancel,
    get_broadcast,
    list_broadcasts,
    pause,
    resume,
    start,
    why,
)
from openline.broadcasts.compose import language_name
from openline.db import schema
from openline.segments import to_text
from openline.states import BroadcastState, UserRole
from openline.web.dashboard import broadcast_compose
from openline.web.dashboard.auth import posted, read, sentence, write
from openline.web.dashboard.broadcast_estimate import (
    Sample,
    estimate_of,
    forget_estimate,
    link_settings,
    register_draft_links,
    samples_of,
)
from openline.web.dashboard.deps import check_csrf, render, require, runtime_of

__all__ = ["LIST_SIZE", "LIVE_STATES", "Progress", "router", "text_progress"]

router = APIRouter()
router.include_router(broadcast_compose.router)

Admin = Annotated[Session, require(UserRole.admin)]
Posted = Annotated[Session, Depends(check_csrf)]

LIST_SIZE = 25
# Pages poll (every 3 s) only while a broadcast is in one of these states: the numbers move then.
LIVE_STATES = (BroadcastState.fanning_out, BroadcastState.sending)
_FINISHED = (BroadcastState.done, BroadcastState.cancelled)
_RUNNING = (BroadcastState.scheduled, BroadcastState.fanning_out, BroadcastState.sending)
_TEXT_STATES = ("queued", "deferred", "sending", "sent", "delivered", "undelivered", "failed", "cancelled")
m = schema.messages.c


# -- the list --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """How far a broadcast's texts got: handed to a provider, confirmed delivered, not sent."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0

    @classmethod
    def of(cls, texts: Mapping[str, int]) -> Progress:
        return cls(
            sent=sum(texts.get(state, 0) for state in ("sent", "delivered", "undelivered")),
            delivered=texts.get("delivered", 0),
            failed=sum(texts.get(state, 0) for state in ("failed", "cancelled")),
        )


def text_progress(conn: sa.Connection, broadcast_ids: Sequence[int]) -> dict[int, Progress]:
    """Progress of several broadcasts in one grouped count (by the (broadcast, member) index).

    broadcast_stats counts the same texts and then replies and opt-outs, which look at every sent
    text's later messages: right for one broadcast's page, too much for every line of a list."""
    if not broadcast_ids:
        return {}
    counted: dict[int, Counter[str]] = {}
    rows = conn.execute(
        sa.select(m.broadcast_id, m.state, sa.func.count())
        .where(m.broadcast_id.in_(list(broadcast_ids)))
        .group_by(m.broadcast_id, m.state)
    )
    for broadcast_id, state, n in rows:
        counted.setdefault(int(broadcast_id), Counter())[str(state)] += int(n)
    return {broadcast_id: Progress.of(counted.get(broadcast_id, Counter())) for broadcast_id in broadcast_ids}


@dataclass(frozen=True)
class _Line:
    """One broadcast as the list shows it."""

    broadcast: Broadcast
    progress: Progress | None  # None for drafts: nothing written yet

    @property
    def live(self) -> bool:
        return self.broadcast.state in LIVE_STATES

    @property
    def recipients(self) -> int:
        return int(self.broadcast.tally.get("recipients", 0))

    @property
    def when(self) -> str:
        b = self.broadcast
        if b.state is BroadcastState.draft:
            return f"created {_moment(b.created_at)}, to send {b.schedule.describe()}"
        if b.state is BroadcastState.scheduled:
            return f"to send {b.schedule.describe()}"
        if b.state in _FINISHED and b.finished_at is not None:
            return f"finished {_moment(b.finished_at)}"
        return f"started {_moment(b.started_at)}" if b.started_at else b.schedule.describe()


def _moment(at: datetime | None) -> str:
    return "—" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _line(conn: sa.Connection, broadcast: Broadcast) -> _Line:
    if broadcast.state is BroadcastState.draft:
        return _Line(broadcast, None)
    return _Line(broadcast, text_progress(conn, [broadcast.id])[broadcast.id])


def _own(conn: sa.Connection, community_id: int, broadcast_id: int) -> Broadcast:
    """The broadcast, if it is this community's. By id only: find_broadcast also matches a broadcast
    *named* "12", which must not stand in for broadcast 12."""
    found = get_broadcast(conn, broadcast_id)
    if found.community_id != community_id:
        raise BroadcastNotFound(f"there is no broadcast {broadcast_id}")
    return found


async def _load(request: Request, session: Session, broadcast_id: int) -> Broadcast:
    community_id = session.user.community_id
    try:
        return await read(runtime_of(request), lambda conn: _own(conn, community_id, broadcast_id))
    except BroadcastNotFound:
        raise HTTPException(404, "there is no such broadcast") from None


@router.get("/broadcasts")
async def broadcasts_page(
    request: Request, session: Admin, before: Annotated[int | None, Query(ge=1)] = None
) -> HTMLResponse:
    community_id = session.user.community_id

    def load(conn: sa.Connection) -> tuple[list[_Line], int | None]:
        found = [b for b in list_broadcasts(conn, community_id) if before is None or b.id < before]
        page = found[:LIST_SIZE]
        progress = text_progress(conn, [b.id for b in page if b.state is not BroadcastState.draft])
        lines = [_Line(b, progress.get(b.id)) for b in page]
        return lines, (page[-1].id if len(found) > LIST_SIZE else None)

    lines, next_before = await read(runtime_of(request), load)
    return render(
        request,
        "dashboard/broadcasts.html",
        section="broadcasts",
        lines=lines,
        before=before,
        next_before=next_before,
    )


@router.get("/broadcasts/{broadcast_id:int}/row")
async def broadcast_row(request: Request, session: Admin, broadcast_id: int) -> HTMLResponse:
    """One line of the list, polled while its broadcast fans out or sends; a finished one comes back
    without the polling attributes, which ends the polling."""
    community_id = session.user.community_id
    try:
        line = await read(runtime_of(request), lambda conn: _line(conn, _own(conn, community_id, broadcast_id)))
    except BroadcastNotFound:
        raise HTTPException(404, "there is no such broadcast") from None
    return render(request, "dashboard/_broadcast_row.html", line=line)


# -- one broadcast ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shown:
    """What a broadcast's page shows about it besides the numbers."""

    broadcast: Broadcast
    sender: str | None
    segment_text: str
    stats: BroadcastStats | None


async def _shown(request: Request, session: Session, broadcast_id: int) -> _Shown:
    community_id = session.user.community_id

    def load(conn: sa.Connection) -> _Shown:
        broadcast = _own(conn, community_id, broadcast_id)
        sender = None
        if broadcast.sender_id is not None:
            s = schema.senders.c
            sender = conn.execute(sa.select(s.address).where(s.id == broadcast.sender_id)).scalar_one_or_none()
        stats = None
        if broadcast.state is not BroadcastState.draft:
            stats = broadcast_stats(conn, broadcast, datetime.now(UTC))
        return _Shown(broadcast, sender, to_text(broadcast.segment), stats)

    try:
        return await read(runtime_of(request), load)
    except BroadcastNotFound:
        raise HTTPException(404, "there is no such broadcast") from None


async def _page(
    request: Request,
    session: Session,
    broadcast_id: int,
    status_code: int = 200,
    *,
    notice: str = "",
    error: str = "",
    with_estimate: bool = False,
    confirming: bool = False,
    why_phone: str = "",
    why_answer: str = "",
    why_error: str = "",
) -> HTMLResponse:
    shown = await _shown(request, session, broadcast_id)
    broadcast = shown.broadcast
    draft = broadcast.state is BroadcastState.draft
    samples: list[Sample] | str = []
    estimated: Estimate | str | None = None
    estimated_at = None
    if draft:
        samples = await samples_of(request, broadcast)
        if with_estimate or confirming:
            estimated, estimated_at = await estimate_of(request, broadcast)
    return render(
        request,
        "dashboard/broadcast.html",
        status_code=status_code,
        section="broadcasts",
        broadcast=broadcast,
        shown=shown,
        stats=shown.stats,
        live=broadcast.state in LIVE_STATES,
        draft=draft,
        can_pause=broadcast.state in _RUNNING,
        can_resume=broadcast.state is BroadcastState.paused,
        can_cancel=broadcast.state not in _FINISHED,
        samples=samples,
        estimate=estimated,
        estimated_at=estimated_at,
        confirming=confirming,
        starts_now=_starts_now(broadcast),
        notice=notice,
        error=error,
        why_phone=why_phone,
        why_answer=why_answer,
        why_error=why_error,
        language_name=language_name,
        duration=_duration,
        moment=_moment,
        text_states=_TEXT_STATES,
    )


def _starts_now(broadcast: Broadcast) -> bool:
    due = broadcast.schedule.fanout_at()
    return due is None or due <= datetime.now(UTC)


_DONE = {
    "created": "Draft saved. Check the estimate and the preview, then send it.",
    "started": "Started. The numbers below follow it as it goes.",
    "scheduled": "Scheduled. It starts on its own at its time.",
    "paused": "Paused: nothing more goes out until you resume it.",
    "resumed": "Resumed.",
    "cancelled": "Cancelled: texts not yet sent will not be sent.",
}


@router.get("/broadcasts/{broadcast_id:int}")
async def broadcast_page(
    request: Request, session: Admin, broadcast_id: int, done: Annotated[str, Query(max_length=20)] = ""
) -> HTMLResponse:
    return await _page(request, session, broadcast_id, notice=_DONE.get(done, ""))


@router.get("/broadcasts/{broadcast_id:int}/estimate")
async def estimate_fragment(request: Request, session: Admin, broadcast_id: int, fresh: bool = False) -> HTMLResponse:
    """The draft's estimate: the fragment its page loads, or (without JavaScript) the page with it."""
    if request.headers.get("hx-request") != "true":
        return await _page(request, session, broadcast_id, with_estimate=True)
    broadcast = await _load(request, session, broadcast_id)
    result, at = await estimate_of(request, broadcast, fresh=fresh)
    return render(
        request,
        "dashboard/_broadcast_estimate.html",
        broadcast=broadcast,
        estimate=result,
        estimated_at=at,
        duration=_duration,
        moment=_moment,
    )


@router.get("/broadcasts/{broadcast_id:int}/stats")
async def stats_fragment(request: Request, session: Admin, broadcast_id: int, polling: bool = False) -> HTMLResponse:
    """Live stats. Polled every 3 s while the broadcast fans out or sends; the first answer after it
    stops (done, paused, cancelled, by anyone) reloads the page, so its buttons match its state."""
    shown = await _shown(request, session, broadcast_id)
    broadcast = shown.broadcast
    response = render(
        request,
        "dashboard/_broadcast_live.html",
        broadcast=broadcast,
        stats=shown.stats,
        live=broadcast.state in LIVE_STATES,
        text_states=_TEXT_STATES,
    )
    if polling and broadcast.state not in LIVE_STATES:
        response.headers["HX-Refresh"] = "true"
    return response


@router.post("/broadcasts/{broadcast_id:int}/send")
async def send(request: Request, session: Admin, _csrf: Posted, broadcast_id: int) -> Response:
    """The Send button asks first (the estimate, and "Send to 18,400 people now?"); the answer to
    that question (``confirm=yes``) starts the broadcast."""
    form = await posted(request)
    if form.get("confirm") != "yes":
        broadcast = await _load(request, session, broadcast_id)
        if broadcast.state is not BroadcastState.draft:  # a second tab, or the back button
            state = broadcast.state.value.replace("_", " ")
            return await _page(request, session, broadcast_id, 409, error=f"It is {state}: only a draft can be sent.")
        return await _page(request, session, broadcast_id, confirming=True)
    user, now = session.user, datetime.now(UTC)

    def go(conn: sa.Connection) -> Broadcast:
        started = start(conn, _own(conn, user.community_id, broadcast_id), now)
        audit(conn, user, "broadcast.send", started.name, {"id": started.id, "state": started.state.value})
        return started

    return await _control(request, session, broadcast_id, go, "started")


@router.post("/broadcasts/{broadcast_id:int}/pause")
async def pause_broadcast(request: Request, session: Admin, _csrf: Posted, broadcast_id: int) -> Response:
    user = session.user

    def hold(conn: sa.Connection) -> Broadcast:
        paused = pause(conn, _own(conn, user.community_id, broadcast_id))
        audit(conn, user, "broadcast.pause", paused.name, {"id": paused.id})
        return paused

    return await _control(request, session, broadcast_id, hold, "paused")


@router.post("/broadcasts/{broadcast_id:int}/resume")
async def resume_broadcast(request: Request, session: Admin, _csrf: Posted, broadcast_id: int) -> Response:
    user = session.user

    def go_on(conn: sa.Connection) -> Broadcast:
        resumed = resume(conn, _own(conn, user.community_id, broadcast_id))
        audit(conn, user, "broadcast.resume", resumed.name, {"id": resumed.id, "state": resumed.state.value})
        return resumed

    return await _control(request, session, broadcast_id, go_on, "resumed")


@router.post("/broadcasts/{broadcast_id:int}/cancel")
async def cancel_broadcast(request: Request, session: Admin, _csrf: Posted, broadcast_id: int) -> Response:
    user, now = session.user, datetime.now(UTC)

    def stop(conn: sa.Connection) -> Broadcast:
        cancelled, texts = cancel(conn, _own(conn, user.community_id, broadcast_id), now)
        audit(conn, user, "broadcast.cancel", cancelled.name, {"id": cancelled.id, "texts_cancelled": texts})
        return cancelled

    return await _control(request, session, broadcast_id, stop, "cancelled")


async def _control(
    request: Request, session: Session, broadcast_id: int, work: Callable[[sa.Connection], Broadcast], done: str
) -> Response:
    """Start, pause, resume or cancel; then back to the page (a redirect, so a reload does not post
    again). A broadcast that moved on meanwhile (done, or paused by a teammate) gets the page with why."""
    try:
        moved = await write(runtime_of(request), work)
    except BroadcastNotFound:
        raise HTTPException(404, "there is no such broadcast") from None
    except WrongState as exc:
        return await _page(request, session, broadcast_id, 409, error=sentence(exc))
    forget_estimate(request, broadcast_id)
    if moved.state is BroadcastState.scheduled and done == "started":
        done = "scheduled"
    return RedirectResponse(f"/broadcasts/{broadcast_id}?done={done}", status_code=303)


@router.post("/broadcasts/{broadcast_id:int}/why")
async def why_skipped(request: Request, session: Admin, _csrf: Posted, broadcast_id: int) -> HTMLResponse:
    """What the broadcast did (or would do) for the member with this number. Posted, not a query
    string: a member's number has no business in access logs and browser history."""
    phone = (await posted(request)).get("phone", "").strip()
    broadcast = await _load(request, session, broadcast_id)
    answer, problem = "", ""
    if not phone:
        problem = "Give the member's phone number."
    else:
        runtime = runtime_of(request)
        base_url, key = link_settings(runtime)
        if broadcast.state is BroadcastState.draft:
            await register_draft_links(runtime, broadcast)
        try:
            answer = await read(
                runtime,
                lambda conn: why(conn, broadcast, phone, now=datetime.now(UTC), base_url=base_url, link_key=key),
            )
            answer = answer[:1].upper() + answer[1:] + "."
        except ValueError as exc:  # not a phone number; no sender yet
            problem = sentence(exc)
    if request.headers.get("hx-request") == "true":
        return render(request, "dashboard/_broadcast_why.html", why_answer=answer, why_error=problem)
    return await _page(request, session, broadcast_id, why_phone=phone, why_answer=answer, why_error=problem)


def _duration(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
