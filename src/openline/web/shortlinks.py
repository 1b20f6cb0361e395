"""Tracked links, /l/<code>: record the click and redirect to the URL the broadcast carried.

Only a GET from a person records a click. A HEAD, and a GET from a known link-preview fetcher (which
messaging apps send when a text with a link arrives or is shared), is redirected without a record, so
previews do not count as clicks. A code that does not verify, or names no link, gets a small page and
no redirect: the only place this route ever redirects to is a URL stored in ``broadcast_links``.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from openline.db import WriterClosed, schema
from openline.runtime import Runtime
from openline.tracking import LINK_KEY_PURPOSE, InvalidCode, link_target, read_link_code, record_click
from openline.web.i18n import Translator, negotiate
from openline.web.templates import render_page

__all__ = ["PREVIEW_FETCHERS", "is_preview_fetcher", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["members"])

# User-Agent substrings (compared in lower case) of the bots that fetch a link to draw its preview:
# Facebook, Messenger, Instagram and iMessage ("facebookexternalhit", "Facebot"), Slack, WhatsApp,
# Telegram, X/Twitter, Discord, Skype/Teams, LinkedIn and Google's page renderer.
PREVIEW_FETCHERS = (
    "facebookexternalhit",
    "facebot",
    "slackbot",
    "whatsapp",
    "telegrambot",
    "twitterbot",
    "discordbot",
    "skypeuripreview",
    "linkedinbot",
    "google-pagerenderer",
)

# The words of this route's two pages; English where the browser asks for a language not here.
_WORDS = {
    "en": {
        "invalid_title": "Link not found",
        "invalid": "This link is not valid. It may have been mistyped.",
        "busy_title": "Please try again",
        "busy": "This link can't be opened right now. Please try again in a minute.",
    },
    "it": {
        "invalid_title": "Link non trovato",
        "invalid": "Questo link non è valido. Forse è stato scritto male.",
        "busy_title": "Riprova tra poco",
        "busy": "Al momento non è possibile aprire questo link. Riprova tra un minuto.",
    },
    "es": {
        "invalid_title": "Enlace no encontrado",
        "invalid": "Este enlace no es válido. Puede que se haya escrito mal.",
        "busy_title": "Vuelve a intentarlo",
        "busy": "Ahora mismo no se puede abrir este enlace. Vuelve a intentarlo dentro de un minuto.",
    },
    "hi": {
        "invalid_title": "लिंक नहीं मिला",
        "invalid": "यह लिंक मान्य नहीं है। हो सकता है इसे गलत टाइप किया गया हो।",
        "busy_title": "कृपया फिर से कोशिश करें",
        "busy": "यह लिंक अभी नहीं खुल सकता। कृपया एक मिनट बाद फिर से कोशिश करें।",
    },
}


def is_preview_fetcher(user_agent: str | None) -> bool:
    agent = (user_agent or "").lower()
    return any(bot in agent for bot in PREVIEW_FETCHERS)


def _page(request: Request, which: str, status: int) -> HTMLResponse:
    language = negotiate(
        list(_WORDS), asked=None, member=None, accept_language=request.headers.get("accept-language"), default="en"
    )
    words = _WORDS[language]
    return render_page(
        "message.html",
        status,
        t=Translator(language),
        title=words[f"{which}_title"],
        programme="",
        paragraphs=[words[which]],
    )


@router.get("/l/{code}", summary="Follow a tracked link", response_class=Response)
# HEAD too (link checkers and preview bots send it), under the same function: kept out of the schema,
# which has one operation per function.
@router.head("/l/{code}", include_in_schema=False)
async def follow(request: Request, code: str) -> Response:
    runtime: Runtime = request.app.state.runtime
    key = runtime.key_for(LINK_KEY_PURPOSE)
    try:
        link_id, _ = read_link_code(key, code)  # a forged code never reaches the database
    except InvalidCode:
        return _page(request, "invalid", 404)

    url: str | None = None
    resolved = False
    if request.method == "GET" and not is_preview_fetcher(request.headers.get("user-agent")):
        try:
            url = await runtime.writer.run(partial(record_click, key=key, code=code, now=schema.utcnow()))
            resolved = True
        except (sa.exc.SQLAlchemyError, WriterClosed) as exc:
            # The person still gets where they were going; only the click is lost. The log names the
            # link, never the member nor the URL (whose query may be personal).
            log.warning("a click on tracked link %d was not recorded: %s", link_id, type(exc).__name__)
    if not resolved:

        def look_up() -> str | None:
            with runtime.db.read_engine.connect() as conn:
                return link_target(conn, key, code)

        try:
            url = await asyncio.to_thread(look_up)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("tracked link %d could not be looked up: %s", link_id, type(exc).__name__)
            page = _page(request, "busy", 503)
            page.headers["Retry-After"] = "30"
            return page
    # Stored URLs are always http(s) (see tracking.find_urls); checked again so nothing else is followed.
    if url is None or not url.lower().startswith(("http://", "https://")):
        return _page(request, "invalid", 404)
    return RedirectResponse(url, 302, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
