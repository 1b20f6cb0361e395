"""The member's personal sign-up form, /join/<token>: parse, call openline.forms, render.

The token in the URL names the member and is single-use (a join link issued before the member last
sent a form is used up). Each rendered form carries a signed nonce bound to the token, the page's
language and the disclosure shown, so a post is known to come from a page this installation drew.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from openline.db import schema
from openline.engine.config import FormField
from openline.forms import (
    FieldError,
    MemberProfile,
    NotSubscribable,
    SenderInfo,
    card_numbers,
    disclosure_text,
    fields_to_ask,
    form_value,
    load_member,
    member_sender,
    save_join_form,
    validate,
    zones_after,
)
from openline.links import (
    ExpiredLink,
    InvalidLink,
    SignedLink,
    link_issued_at,
    read_member_link,
    sign_form_nonce,
    verify_form_nonce,
)
from openline.runtime import Runtime
from openline.states import MemberState
from openline.web.i18n import CATALOGUE, Translator, negotiate, page_languages
from openline.web.templates import display_number, field_views, render_page, switcher

__all__ = ["FORM_NONCE_MAX_AGE", "MemberPage", "anonymous_message", "client_evidence", "load_page", "router"]

router = APIRouter(tags=["members"])

# How long a drawn form may stay open before it must be drawn again.
FORM_NONCE_MAX_AGE = timedelta(hours=24)


class MemberPage:
    """A member, their community and the page's language, as every member page needs them."""

    def __init__(
        self,
        request: Request,
        profile: MemberProfile,
        sender: SenderInfo | None,
        numbers: list[str],
        posted_language: str | None = None,
    ) -> None:
        self.profile = profile
        self.sender = sender
        self.numbers = numbers
        config = profile.config
        self.languages = page_languages(config.languages)
        language = negotiate(
            self.languages,
            asked=posted_language or request.query_params.get("lang"),
            member=profile.language,
            accept_language=request.headers.get("accept-language"),
            default=config.default_language,
        )
        self.t = Translator(language)
        self.path = request.url.path

    @property
    def number(self) -> str:
        return display_number(self.sender.address if self.sender else None, self.t)

    def context(self, title: str, *, switch: bool = True) -> dict[str, Any]:
        return {
            "t": self.t,
            "title": title,
            "programme": self.profile.programme,
            "switcher": switcher(self.path, self.t, self.languages) if switch else [],
        }

    def message(self, title: str, paragraphs: Sequence[str], status: int, *, switch: bool = True) -> HTMLResponse:
        return render_page("message.html", status, paragraphs=list(paragraphs), **self.context(title, switch=switch))


async def load_page(
    request: Request, runtime: Runtime, member_id: int, posted_language: str | None = None
) -> MemberPage | None:
    def load() -> tuple[MemberProfile, SenderInfo | None, list[str]] | None:
        with runtime.db.read_engine.connect() as conn:
            profile = load_member(conn, member_id)
            if profile is None:
                return None
            return profile, member_sender(conn, profile), card_numbers(conn, profile.community_id)

    found = await asyncio.to_thread(load)
    return None if found is None else MemberPage(request, *found, posted_language=posted_language)


def anonymous_message(request: Request, title_key: str, body_key: str, status: int) -> HTMLResponse:
    """A page for a link that names nobody: in the browser's language."""
    t = Translator(
        negotiate(
            list(CATALOGUE),
            asked=None,
            member=None,
            accept_language=request.headers.get("accept-language"),
            default="en",
        )
    )
    body = t(body_key, number=t("the_number"))
    return render_page("message.html", status, t=t, title=t(title_key), programme="", paragraphs=[body])


def client_evidence(request: Request) -> dict[str, Any]:
    """Who sent a form, as the consent ledger records it."""
    return {
        "ip": request.client.host if request.client else None,
        "user_agent": request.headers.get("user-agent", "")[:500],
    }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _bound(token: str, language: str, disclosure_hash: str) -> str:
    return f"join|{token}|{language}|{disclosure_hash}"


def _used(link: SignedLink, profile: MemberProfile) -> bool:
    return profile.form_submitted_at is not None and link_issued_at(link) <= profile.form_submitted_at


def _new_link_advice(page: MemberPage) -> str:
    if page.profile.state is MemberState.subscribed:
        return page.t("link.new_profile", number=page.number)
    return page.t("link.new_yes", number=page.number)


def _refusal(page: MemberPage, link: SignedLink, now: datetime) -> HTMLResponse | None:
    """The page for a link that cannot show the form, or None when it can."""
    t, profile = page.t, page.profile
    if profile.state is MemberState.blocked:
        return page.message(t("link.invalid_title"), [t("link.invalid", number=page.number)], 404)
    if profile.state is MemberState.unsubscribed:
        return page.message(
            t("optedout.title"), [t("optedout.body", programme=profile.programme, number=page.number)], 403
        )
    if link.expires_at < now:
        return page.message(t("link.expired_title"), [_new_link_advice(page)], 410)
    if _used(link, profile):
        return page.message(t("link.used_title"), [t("link.used"), _new_link_advice(page)], 410)
    if profile.state is MemberState.subscribed and not fields_to_ask(profile):
        # A broadcast's {{ form_link }} also reaches members who have told everything: their consent
        # stands, so there is nothing to send; say so, and how to change what they told.
        complete = t("join.complete", programme=profile.programme)
        return page.message(t("join.complete_title"), [complete, t("link.new_profile", number=page.number)], 200)
    return None


def _draw_form(
    page: MemberPage,
    runtime: Runtime,
    token: str,
    *,
    fields: list[FormField],
    typed: Mapping[str, Any],
    errors: Sequence[FieldError] = (),
    notices: Sequence[str] = (),
    status: int = 200,
) -> HTMLResponse:
    t, profile = page.t, page.profile
    now = schema.utcnow()
    disclosure = disclosure_text(profile.config, profile.programme, t.language)
    disclosure_hash = _digest(disclosure)
    nonce = sign_form_nonce(runtime.key_for("form-nonce"), profile.id, _bound(token, t.language, disclosure_hash), now)
    if not fields:
        intro = t("join.nothing", programme=profile.programme)
    elif profile.form_submitted_at is not None:
        intro = t("join.returning")
    else:
        intro = t("join.intro", programme=profile.programme)
    return render_page(
        "join.html",
        status,
        heading=t("join.heading", programme=profile.programme),
        intro=intro,
        fields=field_views(
            fields, t, values=typed, errors=errors, languages=profile.config.languages, today=now.date()
        ),
        notices=list(notices),
        has_errors=bool(errors),
        action=f"/join/{token}",
        nonce=nonce,
        disclosure=disclosure,
        disclosure_hash=disclosure_hash,
        **page.context(t("join.title", programme=profile.programme)),
    )


def _already_saved(profile: MemberProfile, posted: Mapping[str, str], now: datetime) -> bool:
    """Whether every field posted holds what the member has stored now."""
    fields = [f for f in profile.config.form.fields if f.name in posted]
    values, errors = validate(
        fields, posted, languages=profile.config.languages, now=now, known_country=profile.values.get("country")
    )
    return not errors and all(form_value(profile, name) == value for name, value in values.items())


def _prefilled(profile: MemberProfile, fields: Sequence[FormField], language: str) -> dict[str, Any]:
    """What a fresh form shows: the guesses openline has (the number's country, the texts' language)."""
    values = {f.name: form_value(profile, f.name) for f in fields}
    if "language" in values and values["language"] is None:
        values["language"] = language
    return values


async def _open(
    request: Request, runtime: Runtime, token: str, language: str | None = None
) -> tuple[SignedLink, MemberPage] | Response:
    """The link and the member's page, or the page saying the link names nobody."""
    try:
        link = read_member_link(runtime.key_for("member-link"), token)
    except InvalidLink:
        return anonymous_message(request, "link.invalid_title", "link.invalid", 404)
    page = await load_page(request, runtime, link.member_id, language)
    if page is None:
        return anonymous_message(request, "link.invalid_title", "link.invalid", 404)
    return link, page


@router.get("/join/{token}", response_class=HTMLResponse, summary="A member's personal sign-up form")
async def join(request: Request, token: str) -> Response:
    runtime: Runtime = request.app.state.runtime
    opened = await _open(request, runtime, token)
    if isinstance(opened, Response):
        return opened
    link, page = opened
    refusal = _refusal(page, link, schema.utcnow())
    if refusal is not None:
        return refusal
    fields = fields_to_ask(page.profile)
    return _draw_form(page, runtime, token, fields=fields, typed=_prefilled(page.profile, fields, page.t.language))


@router.post("/join/{token}", response_class=HTMLResponse, summary="Send the sign-up form")
async def submit(request: Request, token: str) -> Response:
    runtime: Runtime = request.app.state.runtime
    now = schema.utcnow()
    posted = {key: value for key, value in (await request.form()).multi_items() if isinstance(value, str)}
    opened = await _open(request, runtime, token, posted.get("lang"))
    if isinstance(opened, Response):
        return opened
    link, page = opened
    t, profile = page.t, page.profile
    thanks = f"/join/{token}/thanks?lang={t.language}"

    rendered: datetime | None = None
    stale = False
    try:
        rendered = verify_form_nonce(
            runtime.key_for("form-nonce"),
            posted.get("nonce", ""),
            profile.id,
            _bound(token, posted.get("lang", ""), posted.get("disclosure_hash", "")),
            now,
            FORM_NONCE_MAX_AGE,
        )
    except ExpiredLink:
        stale = True
    except InvalidLink:
        stale = True  # not drawn by this installation for this page: drawn again, nothing saved

    if rendered is not None and _used(link, profile) and _already_saved(profile, posted, now):
        # This very form was sent already (a double click, a reload): the answer is the same.
        return RedirectResponse(thanks, status_code=303)
    refusal = _refusal(page, link, now)
    if refusal is not None:
        return refusal

    fields = fields_to_ask(profile)
    disclosure = disclosure_text(profile.config, profile.programme, t.language)
    values, errors = validate(
        fields, posted, languages=profile.config.languages, now=now, known_country=profile.values.get("country")
    )
    notices: list[str] = []
    if stale:
        notices.append(t("errors.stale"))
    elif posted.get("disclosure_hash") != _digest(disclosure) or posted.get("lang") != t.language:
        notices.append(t("errors.disclosure"))
    if errors or notices:
        status = 422 if errors else 409
        return _draw_form(
            page, runtime, token, fields=fields, typed=posted, errors=errors, notices=notices, status=status
        )

    zones = await asyncio.to_thread(zones_after, profile, values)
    evidence = {
        **client_evidence(request),
        "submitted_at": now.isoformat(),
        "form_rendered_at": rendered.isoformat() if rendered else None,
        "link_expires_at": link.expires_at.isoformat(),
        "fields_asked": [f.name for f in fields],
    }
    card_url = f"{runtime.base_url}/card/{profile.community_slug}.vcf"
    try:
        await runtime.writer.run(
            lambda conn: save_join_form(
                conn,
                profile,
                values,
                zones=zones,
                language=t.language,
                disclosure=disclosure,
                evidence=evidence,
                card_url=card_url,
                suppression_key=runtime.key_for("suppression"),
                link_issued=link_issued_at(link),
                now=now,
            )
        )
    except NotSubscribable:
        return page.message(
            t("optedout.title"), [t("optedout.body", programme=profile.programme, number=page.number)], 403
        )
    chosen = values.get("language")
    return RedirectResponse(f"/join/{token}/thanks?lang={chosen if chosen in page.languages else t.language}", 303)


@router.get("/join/{token}/thanks", response_class=HTMLResponse, summary="After the sign-up form")
async def thanks(request: Request, token: str) -> Response:
    opened = await _open(request, request.app.state.runtime, token)
    if isinstance(opened, Response):
        return opened
    link, page = opened
    if not _used(link, page.profile):
        return RedirectResponse(f"/join/{token}", status_code=303)
    t = page.t
    numbers = ", ".join(display_number(n, t) for n in page.numbers) or page.number
    slug = page.profile.community_slug
    return render_page(
        "thanks.html",
        numbers=numbers,
        card_url=f"/card/{slug}.vcf",
        card_name=f"{slug}.vcf",
        **page.context(t("thanks.title")),
    )
