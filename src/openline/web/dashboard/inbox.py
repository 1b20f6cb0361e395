"""The inbox pages: the conversation list (with filters, search and a live "newer" notice), one
conversation (thread, reply with a segment counter and the community's saved replies, assignment, done,
notes).

Every page works with plain links and forms; htmx, when present, swaps the list or the conversation in
place (a request carrying ``HX-Request`` gets the fragment instead of the page). The list learns about
new texts from ``GET /inbox/events``, a server-sent event stream: one cheap indexed query every
:data:`POLL_SECONDS` per open page, rather than re-rendering the list on a timer.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from prometheus_client import Gauge

from openline.accounts import Session, User, list_users
from openline.encoding import SMART_ENCODING, Encoding, count_segments, smart_encode
from openline.engine.config import load_config
from openline.inbox import (
    MAX_SEARCH,
    MIN_SEARCH,
    ConversationNotFound,
    Cursor,
    Filters,
    Page,
    Thread,
    View,
    add_note,
    assign,
    conversation,
    list_conversations,
    mark_read,
    newest,
    reply,
    set_done,
    smart_encoded,
)
from openline.outbox import MAX_BODY, OptedOut, ReusedIdempotencyKey
from openline.runtime import Runtime
from openline.web.dashboard.deps import DASHBOARD_HEADERS, CurrentSession, check_csrf, render, runtime_of

__all__ = ["KEEPALIVE_SECONDS", "PAGE_SIZE", "POLL_SECONDS", "STREAM_SECONDS", "count_label", "router"]

router = APIRouter()

PAGE_SIZE = 50
# The event stream checks for newer conversations this often, and ends after STREAM_SECONDS (the browser
# reconnects by itself, resuming from the last event), so no stream outlives a restart or a session.
POLL_SECONDS = 2.0
STREAM_SECONDS = 300.0
# A comment line this often keeps proxies from closing an idle stream and notices a gone client.
KEEPALIVE_SECONDS = 20.0
RETRY_MS = 3000

EVENT_STREAMS = Gauge("openline_dashboard_event_streams", "Inbox event streams open now.")

CsrfSession = Annotated[Session, Depends(check_csrf)]
T = TypeVar("T")


# -- helpers ----------------------------------------------------------------------------------------


async def _read(runtime: Runtime, work: Callable[[sa.Connection], T]) -> T:
    """``work`` on a read connection, off the event loop; nothing it wrote is kept."""

    def run() -> T:
        with runtime.db.read_engine.connect() as conn:
            try:
                return work(conn)
            finally:
                conn.rollback()

    return await asyncio.to_thread(run)


def _htmx(request: Request) -> bool:
    """An htmx request for a fragment (a history restore wants the whole page)."""
    return request.headers.get("hx-request") == "true" and request.headers.get("hx-history-restore-request") != "true"


def count_label(text: str, *, smart: bool = False) -> str:
    """What the reply counter says, e.g. ``1 segment · GSM-7 · 12/160`` (dashboard.js says the same)."""
    count = count_segments(smart_encode(text) if smart else text)
    gsm = count.encoding is Encoding.gsm7
    single, part = (160, 153) if gsm else (70, 67)
    capacity = single if count.segments == 1 else count.segments * part
    word = "segment" if count.segments == 1 else "segments"
    return f"{count.segments} {word} · {'GSM-7' if gsm else 'UCS-2'} · {count.units}/{capacity}"


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _query(view: View, filters: Filters, mine: bool, before: Cursor | None = None) -> str:
    params: dict[str, str] = {}
    if view is not View.inbox:
        params["view"] = view.value
    if filters.unread:
        params["unread"] = "1"
    if mine:
        params["mine"] = "1"
    if filters.unassigned:
        params["unassigned"] = "1"
    if filters.tag:
        params["tag"] = filters.tag
    if filters.language:
        params["language"] = filters.language
    if filters.q:
        params["q"] = filters.q
    if before is not None:
        params["before"] = before.encode()
    return urlencode(params)


# -- the list ---------------------------------------------------------------------------------------


@router.get("/inbox", response_class=HTMLResponse, summary="The conversation list")
async def inbox_page(
    request: Request,
    session: CurrentSession,
    view: View = View.inbox,
    unread: bool = False,
    mine: bool = False,
    unassigned: bool = False,
    tag: Annotated[str, Query(max_length=64)] = "",
    language: Annotated[str, Query(max_length=16)] = "",
    q: Annotated[str, Query(max_length=1000)] = "",
    before: Annotated[str, Query(max_length=100)] = "",
) -> HTMLResponse:
    runtime = runtime_of(request)
    community_id = session.user.community_id
    notices: list[str] = []
    search = q.strip()
    if search and not MIN_SEARCH <= len(search) <= MAX_SEARCH:
        notices.append(f"A search needs {MIN_SEARCH} to {MAX_SEARCH} characters; showing every conversation.")
        search = ""
    cursor: Cursor | None = None
    if before:
        try:
            cursor = Cursor.decode(before)
        except ValueError:
            notices.append("That page link is not valid any more; showing the newest conversations.")
    filters = Filters(
        unread=unread,
        assigned_to=session.user.id if mine else None,
        unassigned=unassigned,
        tag=tag.strip() or None,
        language=language.strip() or None,
        q=search or None,
    )

    def load(conn: sa.Connection) -> tuple[Page, Cursor | None, list[str]]:
        page = list_conversations(conn, community_id, view, filters=filters, before=cursor, limit=PAGE_SIZE)
        return page, newest(conn, community_id, view), load_config(conn, community_id).languages

    page, latest, languages = await _read(runtime, load)
    here = _query(view, filters, mine)
    context: dict[str, Any] = {
        "view": view,
        "filters": filters,
        "mine": mine,
        "page": page,
        "first_page": cursor is None,
        "older_url": f"/inbox?{_query(view, filters, mine, page.next)}" if page.next else None,
        "newest_url": f"/inbox?{here}" if here else "/inbox",
        "events_url": f"/inbox/events?view={view.value}",
        "since": latest.encode() if latest is not None else "",
        "languages": languages
        if not filters.language or filters.language in languages
        else [*languages, filters.language],
        "notices": notices,
        "when": _when,
        "section": "pending" if view is View.pending else "inbox",
    }
    template = "dashboard/_conversation_rows.html" if _htmx(request) else "dashboard/inbox.html"
    response = render(request, template, **context)
    response.headers["Vary"] = "HX-Request"
    return response


@router.get("/inbox/events", summary="Server-sent events: 'newer' when a newer conversation arrives")
async def inbox_events(
    request: Request,
    session: CurrentSession,
    view: View = View.inbox,
    since: Annotated[str, Query(max_length=100)] = "",
) -> StreamingResponse:
    """A ``newer`` event (its id and data: the newest position) whenever the view's newest conversation
    moves past ``since`` (or the browser's ``Last-Event-ID`` after a reconnection).

    A browser that goes away ends the stream: Starlette's streaming response listens for the disconnect
    and cancels the loop (on ASGI 2.4 servers the next write fails instead, at the latest the keep-alive
    comment), so the loop need not poll for it. Every stream also ends after STREAM_SECONDS."""
    runtime = runtime_of(request)
    community_id = session.user.community_id
    known: Cursor | None = None
    for token in (request.headers.get("last-event-id", ""), since):
        if token:
            try:
                known = Cursor.decode(token)
                break
            except ValueError:
                continue

    async def stream() -> AsyncIterator[str]:
        nonlocal known
        EVENT_STREAMS.inc()
        try:
            yield f"retry: {RETRY_MS}\n\n"
            loop = asyncio.get_running_loop()
            started = last_sent = loop.time()
            first = True
            while loop.time() - started < STREAM_SECONDS:
                latest = await _read(runtime, lambda conn: newest(conn, community_id, view))
                if first and known is None:
                    known = latest  # no position given: report only what arrives from now on
                elif latest is not None and (known is None or latest > known):
                    known = latest
                    token = latest.encode()
                    yield f"event: newer\nid: {token}\ndata: {token}\n\n"
                    last_sent = loop.time()
                first = False
                if loop.time() - last_sent >= KEEPALIVE_SECONDS:
                    yield ": still here\n\n"
                    last_sent = loop.time()
                await asyncio.sleep(POLL_SECONDS)
        finally:
            EVENT_STREAMS.dec()

    headers = {**DASHBOARD_HEADERS, "X-Accel-Buffering": "no"}  # nginx: pass each event on at once
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


# -- the segment counter ----------------------------------------------------------------------------


@router.post("/inbox/count", response_class=HTMLResponse, summary="Segments and encoding of a draft reply")
async def count_reply(
    request: Request,
    session: CsrfSession,
    body: Annotated[str, Form(max_length=MAX_BODY * 2)] = "",
    conversation_id: Annotated[int | None, Form(alias="conversation")] = None,
) -> HTMLResponse:
    smart = False
    if conversation_id is not None:
        community_id = session.user.community_id
        smart = await _read(runtime_of(request), lambda conn: smart_encoded(conn, community_id, conversation_id))
    label = count_label(body.strip(), smart=smart)
    return HTMLResponse(label, headers=dict(DASHBOARD_HEADERS))


# -- one conversation -------------------------------------------------------------------------------


def _reply_key() -> str:
    """A fresh token per reply form: the same form submitted twice queues one text."""
    return secrets.token_urlsafe(18)


async def _show(
    request: Request,
    session: Session,
    conversation_id: int,
    *,
    status_code: int = 200,
    fragment: bool = False,
    error: str | None = None,
    error_for: str = "reply",
    draft: str = "",
    note_draft: str = "",
    notice: str | None = None,
    reply_key: str | None = None,
    saved: str = "",
) -> HTMLResponse:
    """The conversation page (or its live part, for htmx), then the conversation marked read.

    ``saved`` names a saved reply to put in an empty reply box (how picking one works without JavaScript);
    a name the community has not saved is ignored."""
    runtime = runtime_of(request)
    community_id = session.user.community_id

    def load(conn: sa.Connection) -> tuple[Thread, list[User], dict[str, str]]:
        return (
            conversation(conn, community_id, conversation_id, mark_as_read=False),
            list_users(conn, community_id),
            load_config(conn, community_id).saved_replies,
        )

    try:
        thread, team, saved_replies = await _read(runtime, load)
    except ConversationNotFound:
        return render(request, "dashboard/conversation.html", status_code=404, thread=None, section="inbox")
    if thread.unread:
        # Marked read only up to what was shown: a text arriving meanwhile stays unread.
        await runtime.writer.run(
            lambda conn: mark_read(conn, community_id, conversation_id, seen=thread.last_message_at)
        )
    picked = saved if saved in saved_replies else ""
    if picked and not draft:
        draft = saved_replies[picked]
    context: dict[str, Any] = {
        "thread": thread,
        "team": team,
        "saved_replies": sorted(saved_replies.items(), key=lambda item: item[0].casefold()),
        "picked": picked,
        "error": error,
        "error_for": error_for,
        "draft": draft,
        "note_draft": note_draft,
        "notice": notice,
        "reply_key": reply_key or _reply_key(),
        "count": count_label(draft.strip(), smart=thread.smart_encoding),
        "smart_map": SMART_ENCODING if thread.smart_encoding else None,
        "max_body": MAX_BODY,
        "when": _when,
        "section": "pending" if thread.member.state in ("new", "pending") and not thread.done else "inbox",
    }
    template = "dashboard/_thread.html" if fragment else "dashboard/conversation.html"
    return render(request, template, status_code=status_code, **context)


@router.get("/inbox/{conversation_id:int}", response_class=HTMLResponse, summary="One conversation")
async def conversation_page(
    request: Request,
    session: CurrentSession,
    conversation_id: int,
    sent: bool = False,
    noted: bool = False,
    saved: Annotated[str, Query(max_length=1000, description="A saved reply to put in the reply box")] = "",
) -> HTMLResponse:
    notice = "Your reply is queued; its delivery shows in the thread." if sent else ("Note added." if noted else None)
    return await _show(request, session, conversation_id, fragment=_htmx(request), notice=notice, saved=saved)


def _back(conversation_id: int, query: str = "") -> RedirectResponse:
    return RedirectResponse(f"/inbox/{conversation_id}{query}", status_code=303)


@router.post("/inbox/{conversation_id:int}/reply", response_class=HTMLResponse, summary="Reply to the member")
async def post_reply(
    request: Request,
    session: CsrfSession,
    conversation_id: int,
    body: Annotated[str, Form(max_length=MAX_BODY * 2)] = "",
    key: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    runtime = runtime_of(request)
    community_id = session.user.community_id
    suppression_key = runtime.key_for("suppression")
    idempotency_key = f"inbox:{key}" if key else None

    def work(conn: sa.Connection) -> object:
        return reply(
            conn,
            community_id,
            conversation_id,
            body,
            user=session.user,
            suppression_key=suppression_key,
            idempotency_key=idempotency_key,
        )

    try:
        await runtime.writer.run(work)
    except ConversationNotFound:
        return render(request, "dashboard/conversation.html", status_code=404, thread=None, section="inbox")
    except ReusedIdempotencyKey:
        # The same form sent again with a different text: a new form for a new text.
        return await _show(
            request,
            session,
            conversation_id,
            status_code=409,
            fragment=_htmx(request),
            error="This form was already used to send a reply; the page is reloaded, send the new text again.",
            draft=body,
        )
    except OptedOut as exc:
        return await _show(
            request, session, conversation_id, status_code=422, fragment=_htmx(request), error=str(exc), draft=body
        )
    except ValueError as exc:
        return await _show(
            request,
            session,
            conversation_id,
            status_code=422,
            fragment=_htmx(request),
            error=str(exc),
            draft=body,
            reply_key=key or None,
        )
    if _htmx(request):
        return await _show(
            request, session, conversation_id, fragment=True, notice="Your reply is queued; its delivery shows below."
        )
    return _back(conversation_id, "?sent=1")


async def _change(
    request: Request,
    session: Session,
    conversation_id: int,
    work: Callable[[sa.Connection], object],
    *,
    notice: str,
    error_for: str,
    back: str = "",
    **kept: Any,
) -> Response:
    """Run one change to a conversation, then answer as every handling form does: 404 for an unknown
    conversation, the page again with the error (and what was typed, ``kept``) when it is refused,
    else the updated fragment for htmx or a redirect back."""
    try:
        await runtime_of(request).writer.run(work)
    except ConversationNotFound:
        return render(request, "dashboard/conversation.html", status_code=404, thread=None, section="inbox")
    except ValueError as exc:
        return await _show(
            request,
            session,
            conversation_id,
            status_code=422,
            fragment=_htmx(request),
            error=str(exc),
            error_for=error_for,
            **kept,
        )
    if _htmx(request):
        return await _show(request, session, conversation_id, fragment=True, notice=notice)
    return _back(conversation_id, back)


@router.post("/inbox/{conversation_id:int}/assign", response_class=HTMLResponse, summary="Assign to a teammate")
async def post_assign(
    request: Request,
    session: CsrfSession,
    conversation_id: int,
    user: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    community_id = session.user.community_id
    try:
        user_id = int(user) if user.strip() else None
    except ValueError:
        user_id = -1  # not a user: refused below like any unknown one
    return await _change(
        request,
        session,
        conversation_id,
        lambda conn: assign(conn, community_id, conversation_id, user_id),
        notice="Assignment saved.",
        error_for="assign",
    )


@router.post("/inbox/{conversation_id:int}/done", response_class=HTMLResponse, summary="Mark done or not done")
async def post_done(
    request: Request,
    session: CsrfSession,
    conversation_id: int,
    done: Annotated[bool, Form()] = True,
) -> Response:
    community_id = session.user.community_id
    notice = "Marked done: it leaves the inbox until the member writes again." if done else "Back in the inbox."
    return await _change(
        request,
        session,
        conversation_id,
        lambda conn: set_done(conn, community_id, conversation_id, done),
        notice=notice,
        error_for="done",
    )


@router.post("/inbox/{conversation_id:int}/notes", response_class=HTMLResponse, summary="Add an internal note")
async def post_note(
    request: Request,
    session: CsrfSession,
    conversation_id: int,
    body: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    community_id = session.user.community_id
    return await _change(
        request,
        session,
        conversation_id,
        lambda conn: add_note(conn, community_id, conversation_id, session.user, body),
        notice="Note added.",
        error_for="note",
        back="?noted=1",
        note_draft=body,
    )
