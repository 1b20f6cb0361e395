"""A member's own profile page, /profile/<token>: see everything kept about them, change it, download
it, or erase it. The link (``sign_profile_link``, sent after PROFILE) lasts 24 hours and may be used
again within them; each form on the page carries a signed nonce bound to the link."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from openline.db import schema
from openline.erasure import MemberNotFound, erase_member
from openline.forms import (
    FieldError,
    consent_history,
    country_name,
    field_label,
    form_value,
    profile_fields,
    save_profile_form,
    validate,
    zones_after,
)
from openline.links import (
    ExpiredLink,
    InvalidLink,
    read_member_link,
    sign_form_nonce,
    verify_form_nonce,
    verify_profile_link,
)
from openline.members import member_record
from openline.runtime import Runtime
from openline.web.i18n import LANGUAGE_NAMES, Translator
from openline.web.join import FORM_NONCE_MAX_AGE, MemberPage, anonymous_message, load_page
from openline.web.templates import PAGE_HEADERS, display_number, field_views, render_page

__all__ = ["router"]

router = APIRouter(tags=["members"])


def _key(runtime: Runtime) -> bytes:
    return runtime.key_for("member-profile")


async def _open(
    request: Request, runtime: Runtime, token: str, posted_language: str | None = None
) -> MemberPage | Response:
    """The member's page for a live profile link, or the page that says why there is none."""
    try:
        member_id = verify_profile_link(_key(runtime), token, schema.utcnow())
    except ExpiredLink:
        page = await load_page(request, runtime, read_member_link(_key(runtime), token).member_id)
        if page is None:
            return anonymous_message(request, "link.expired_title", "link.profile_expired", 410)
        t = page.t
        return page.message(
            t("link.expired_title"), [t("link.profile_expired"), t("link.new_profile", number=page.number)], 410
        )
    except InvalidLink:
        return anonymous_message(request, "link.invalid_title", "link.invalid", 404)
    page = await load_page(request, runtime, member_id, posted_language)
    if page is None:
        return anonymous_message(request, "profile.gone_title", "profile.gone", 404)
    return page


def _when(moment: datetime | None, t: Translator) -> str:
    return t("profile.not_given") if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def _shown(name: str, value: Any, t: Translator) -> str:
    if value is None:
        return t("profile.not_given")
    if name == "country":
        return f"{country_name(str(value))} ({value})"
    if name == "language":
        return LANGUAGE_NAMES.get(str(value), str(value))
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _details(page: MemberPage) -> list[tuple[str, str]]:
    t, profile = page.t, page.profile
    rows = [(t("profile.phone"), display_number(profile.phone, t)), (t("profile.status"), t(f"state.{profile.state}"))]
    shown: set[str] = set()
    for form_field in profile_fields(profile):
        rows.append(
            (field_label(form_field, t.language), _shown(form_field.name, form_value(profile, form_field.name), t))
        )
        shown.add(form_field.name)
    # Answers to fields the form no longer asks are still theirs to see.
    rows += [(name, _shown(name, value, t)) for name, value in sorted(profile.custom.items()) if name not in shown]
    if profile.time_zone:
        zones = t("profile.zone_sure", zone=profile.time_zone)
    elif profile.time_zones:
        zones = t("profile.zones_maybe", zones=", ".join(profile.time_zones))
    else:
        zones = t("profile.zone_unknown")
    rows += [
        (t("profile.zones"), zones),
        (t("profile.tags"), ", ".join(profile.tags) or t("profile.none")),
        (t("profile.joined"), _when(profile.joined_at, t)),
        (t("profile.form_sent"), _when(profile.form_submitted_at, t)),
    ]
    return rows


def _draw(
    page: MemberPage,
    runtime: Runtime,
    token: str,
    *,
    typed: Mapping[str, Any] | None = None,
    errors: Sequence[FieldError] = (),
    notices: Sequence[str] = (),
    status: int = 200,
) -> HTMLResponse:
    t, profile = page.t, page.profile
    now = schema.utcnow()

    def history() -> list[dict[str, str]]:
        with runtime.db.read_engine.connect() as conn:
            changes = consent_history(conn, profile.id)
        return [
            {
                "when": _when(c.occurred_at, t),
                "change": (t(f"state.{c.previous_state}") + " → " if c.previous_state else "")
                + t(f"state.{c.new_state}"),
                "how": t(f"source.{c.source}"),
            }
            for c in changes
        ]

    fields = profile_fields(profile)
    values = typed if typed is not None else {f.name: form_value(profile, f.name) for f in fields}
    return render_page(
        "profile.html",
        status,
        details=_details(page),
        consent=history(),
        fields=field_views(
            fields, t, values=values, errors=errors, languages=profile.config.languages, today=now.date()
        ),
        notices=list(notices),
        has_errors=bool(errors),
        action=f"/profile/{token}",
        nonce=sign_form_nonce(runtime.key_for("form-nonce"), profile.id, f"profile|{token}", now),
        download_url=f"/profile/{token}/data.json",
        download_name=f"{profile.community_slug}-my-data.json",
        erase_url=f"/profile/{token}/erase?lang={t.language}",
        **page.context(t("profile.title", programme=profile.programme)),
    )


async def _posted(request: Request) -> dict[str, str]:
    return {key: value for key, value in (await request.form()).multi_items() if isinstance(value, str)}


def _nonce_ok(runtime: Runtime, page: MemberPage, posted: Mapping[str, str], bound: str) -> bool:
    try:
        verify_form_nonce(
            runtime.key_for("form-nonce"),
            posted.get("nonce", ""),
            page.profile.id,
            bound,
            schema.utcnow(),
            FORM_NONCE_MAX_AGE,
        )
    except InvalidLink:  # forged, for another page, or too old
        return False
    return True


@router.get("/profile/{token}", response_class=HTMLResponse, summary="A member's own data")
async def profile(request: Request, token: str) -> Response:
    runtime: Runtime = request.app.state.runtime
    page = await _open(request, runtime, token)
    if not isinstance(page, MemberPage):
        return page
    notices = [page.t("profile.saved")] if request.query_params.get("saved") else []
    return await asyncio.to_thread(_draw, page, runtime, token, notices=notices)


@router.post("/profile/{token}", response_class=HTMLResponse, summary="Change a member's own data")
async def change(request: Request, token: str) -> Response:
    runtime: Runtime = request.app.state.runtime
    posted = await _posted(request)
    page = await _open(request, runtime, token, posted.get("lang"))
    if not isinstance(page, MemberPage):
        return page
    profile, now = page.profile, schema.utcnow()
    fields = profile_fields(profile)
    values, errors = validate(
        fields,
        posted,
        languages=profile.config.languages,
        now=now,
        known_country=profile.values.get("country"),
        clearing=True,
    )
    stale = not _nonce_ok(runtime, page, posted, f"profile|{token}")
    if errors or stale:
        notices = [page.t("errors.stale")] if stale else []
        return await asyncio.to_thread(
            _draw, page, runtime, token, typed=posted, errors=errors, notices=notices, status=422 if errors else 409
        )
    zones = await asyncio.to_thread(zones_after, profile, values)
    await runtime.writer.run(lambda conn: save_profile_form(conn, profile, values, zones=zones, now=now))
    chosen = values.get("language")
    language = chosen if chosen in page.languages else page.t.language
    return RedirectResponse(f"/profile/{token}?saved=1&lang={language}", status_code=303)


@router.get("/profile/{token}/data.json", summary="Everything kept about a member, as JSON")
async def download(request: Request, token: str) -> Response:
    runtime: Runtime = request.app.state.runtime
    page = await _open(request, runtime, token)
    if not isinstance(page, MemberPage):
        return page

    def load() -> dict[str, Any]:
        with runtime.db.read_engine.connect() as conn:
            return member_record(conn, page.profile.id)

    try:
        record = await asyncio.to_thread(load)
    except MemberNotFound:
        return anonymous_message(request, "profile.gone_title", "profile.gone", 404)
    body = json.dumps(record, ensure_ascii=False, indent=2, sort_keys=False)
    headers = {
        **PAGE_HEADERS,
        "Content-Disposition": f'attachment; filename="{page.profile.community_slug}-my-data.json"',
    }
    return Response(body, media_type="application/json", headers=headers)


@router.get("/profile/{token}/erase", response_class=HTMLResponse, summary="Confirm erasing a member's data")
async def confirm_erase(request: Request, token: str) -> Response:
    runtime: Runtime = request.app.state.runtime
    page = await _open(request, runtime, token)
    if not isinstance(page, MemberPage):
        return page
    return _confirm_page(page, runtime, token)


def _confirm_page(page: MemberPage, runtime: Runtime, token: str, status: int = 200) -> HTMLResponse:
    t = page.t
    return render_page(
        "erase.html",
        status,
        number=page.number,
        action=f"/profile/{token}/erase",
        back_url=f"/profile/{token}?lang={t.language}",
        nonce=sign_form_nonce(runtime.key_for("form-nonce"), page.profile.id, f"erase|{token}", schema.utcnow()),
        **page.context(t("erase.title")),
    )


@router.post("/profile/{token}/erase", response_class=HTMLResponse, summary="Erase a member's data")
async def erase(request: Request, token: str) -> Response:
    runtime: Runtime = request.app.state.runtime
    posted = await _posted(request)
    page = await _open(request, runtime, token, posted.get("lang"))
    if not isinstance(page, MemberPage):
        return page
    if not _nonce_ok(runtime, page, posted, f"erase|{token}"):
        return _confirm_page(page, runtime, token, status=409)
    profile = page.profile
    try:
        await runtime.writer.run(
            lambda conn: erase_member(
                conn,
                profile.community_id,
                profile.id,
                key=runtime.key_for("suppression"),
                now=schema.utcnow(),
                reason="erased by the member",
            )
        )
    except MemberNotFound:
        return anonymous_message(request, "profile.gone_title", "profile.gone", 404)
    t = page.t
    # Said in words: the profile fields that were kept, so the member sees what went.
    kept = [field_label(f, t.language) for f in profile_fields(profile) if form_value(profile, f.name) is not None]
    erased_body = t("erased.body", programme=profile.programme)
    if kept:
        erased_body += " (" + ", ".join(kept) + ")"
    # No language links: they would open the erased member's page.
    return page.message(t("erased.title"), [erased_body, t("erased.after", number=page.number)], 200, switch=False)
