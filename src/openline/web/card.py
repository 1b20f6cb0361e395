"""The community's contact card, /card/<slug>.vcf: its name and the numbers it texts from, so members
save it and recognise its texts. vCard 3.0 (RFC 2426) by default, the version phones read most widely;
4.0 (RFC 6350) with ``?version=4``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Annotated, Literal

import vobject
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from openline.communities import UnknownCommunity, get_community
from openline.engine.config import load_config
from openline.forms import card_numbers
from openline.runtime import Runtime

__all__ = ["CARD_MEDIA_TYPE", "router", "vcard"]

router = APIRouter(tags=["members"])

CARD_MEDIA_TYPE = "text/vcard"
# The card's UID stays the same for a community, so saving it again updates the contact.
_UID_NAMESPACE = uuid.UUID("4f1d7a52-6c1b-4d55-9a57-3c0a3f1e2b10")


def _uid(slug: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_UID_NAMESPACE, slug)}"


def _vcard3(name: str, numbers: Sequence[str], uid: str) -> str:
    card = vobject.vCard()
    card.add("n").value = vobject.vcard.Name(family=name)
    card.add("fn").value = name
    card.add("org").value = [name]
    for number in numbers:
        tel = card.add("tel")
        tel.value = number
        tel.params["TYPE"] = ["CELL", "MSG"]
    card.add("uid").value = uid
    # Apple's contacts show the card as an organisation, not a person called by the programme's name.
    card.add("x-abshowas").value = "COMPANY"
    return str(card.serialize())


def _escape(text: str) -> str:
    """A text value escaped per RFC 6350 section 3.4."""
    return (
        text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\r\n", "\\n").replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    """Lines longer than 75 octets folded (section 3.2), never inside a UTF-8 character."""
    parts: list[str] = []
    current, size = "", 0
    for char in line:
        width = len(char.encode())
        if size + width > (75 if not parts else 74):
            parts.append(current)
            current, size = "", 0
        current += char
        size += width
    parts.append(current)
    return "\r\n ".join(parts)


def _vcard4(name: str, numbers: Sequence[str], uid: str) -> str:
    lines = ["BEGIN:VCARD", "VERSION:4.0", "KIND:org", f"FN:{_escape(name)}", f"ORG:{_escape(name)}"]
    for number in numbers:
        if number.startswith("+"):
            lines.append(f'TEL;VALUE=uri;TYPE="cell,text":tel:{number}')
        else:  # a short code is no global number, so not a tel: URI without a phone-context
            lines.append(f"TEL;VALUE=text;TYPE=text:{number}")
    lines += [f"UID:{uid}", "PRODID:-//openline//contact card//EN", "END:VCARD"]
    return "".join(_fold(line) + "\r\n" for line in lines)


def vcard(name: str, numbers: Sequence[str], *, slug: str, version: Literal[3, 4] = 3) -> str:
    """A contact card for a programme ``name`` with its sender ``numbers`` (E.164 or short codes)."""
    uid = _uid(slug)
    return _vcard3(name, numbers, uid) if version == 3 else _vcard4(name, numbers, uid)


@router.get("/card/{slug}.vcf", summary="The community's contact card (vCard)", response_class=Response)
async def card(
    request: Request,
    slug: str,
    version: Annotated[int, Query(ge=3, le=4, description="3 (default) or 4")] = 3,
) -> Response:
    runtime: Runtime = request.app.state.runtime

    def load() -> tuple[str, list[str]] | None:
        with runtime.db.read_engine.connect() as conn:
            try:
                community = get_community(conn, slug)
            except UnknownCommunity:
                return None
            return load_config(conn, community.id).programme or community.name, card_numbers(conn, community.id)

    found = await asyncio.to_thread(load)
    if found is None:
        raise HTTPException(404, "no such community")
    name, numbers = found
    return Response(
        vcard(name, numbers, slug=slug, version=4 if version == 4 else 3),
        media_type=f"{CARD_MEDIA_TYPE}; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{slug}.vcf"',
            "Cache-Control": "public, max-age=3600",
        },
    )
