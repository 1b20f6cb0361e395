"""The member's personal sign-up link, /join/<token>."""

from __future__ import annotations

import asyncio
import html
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from openline.db import schema
from openline.links import ExpiredLink, InvalidLink, verify_member_link
from openline.runtime import Runtime

router = APIRouter(tags=["members"])

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}</style>
</head><body><h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status)


@router.get("/join/{token}", response_class=HTMLResponse, summary="A member's personal sign-up page")
async def join(request: Request, token: str) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    try:
        member_id = verify_member_link(runtime.key_for("member-link"), token, schema.utcnow())
    except ExpiredLink:
        return _page("This link has expired", "<p>Text the number again to get a new one.</p>", 410)
    except InvalidLink:
        return _page("Link not found", "<p>This link is not valid. Check that it was copied whole.</p>", 404)

    def load() -> Any:
        with runtime.db.read_engine.connect() as conn:
            return conn.execute(
                sa.select(schema.members.c.state, schema.communities.c.name)
                .join_from(schema.members, schema.communities)
                .where(schema.members.c.id == member_id)
            ).one_or_none()

    row = await asyncio.to_thread(load)
    if row is None:
        return _page("Link not found", "<p>This member no longer exists.</p>", 404)
    name = html.escape(row.name)
    return _page(
        f"You're on {row.name}'s list" if row.state == "subscribed" else row.name,
        f"<p>Your number is <strong>{html.escape(row.state)}</strong> for texts from {name}.</p>"
        "<p>The sign-up form (name, city, birthday, language) is not available on this installation yet, "
        "so there is nothing to fill in here for now. Nothing else is needed from you.</p>"
        "<p>Reply STOP to the number at any time to stop all texts.</p>",
        200,
    )
