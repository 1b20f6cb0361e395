"""/settings, for the owner and admins: senders, providers, openline's own texts, keywords, the rules
every broadcast obeys (sending windows, frequency cap, disclosure, footers, prices), the sign-up
form's fields and the saved replies the inbox offers.

Each section is a small form posting to ``/settings/<section>``, and every one saves through
:func:`_save`: the domain call validates and writes, the audit-log entry goes in the same transaction,
and the browser is sent back to the section with a notice (so reloading the page posts nothing again).
A refused value shows the page again (400) with the message next to its field and what was typed kept.

Provider credentials come from the environment (``OPENLINE_TWILIO_*`` and so on), never from here, and
no setting's value is ever shown: only whether it is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from openline.accounts import Session, audit
from openline.broadcast_settings import BroadcastSettings
from openline.engine.config import (
    BUILTIN_FORM_FIELDS,
    SAVED_REPLY_NAME_MAX,
    SAVED_REPLY_TEXT_MAX,
    CommunityConfig,
    FormField,
    KeywordRule,
    add_keyword,
    load_config,
    remove_keyword,
    set_text,
    update_config,
)
from openline.engine.texts import DEFAULT_TEXTS, SystemText
from openline.forms import add_form_field, field_kind, field_label, remove_form_field
from openline.senders import PROVIDERS, Sender, add_sender, list_senders
from openline.settings import ENV_PREFIX, Settings
from openline.states import UserRole
from openline.web.dashboard.auth import posted, read, write
from openline.web.dashboard.deps import check_csrf, render, require, runtime_of
from openline.web.i18n import LANGUAGE_NAMES

__all__ = ["PROVIDER_SETTINGS", "TEXT_NAMES", "ProviderView", "Refused", "effective_text", "providers", "router"]

router = APIRouter()

Admin = Annotated[Session, require(UserRole.admin)]
Csrf = Annotated[Session, Depends(check_csrf)]

# The settings each provider reads. No value is ever shown, secret or not: only whether it is set.
PROVIDER_SETTINGS: dict[str, tuple[str, ...]] = {
    "twilio": ("twilio_account_sid", "twilio_auth_token", "twilio_messaging_service_sid"),
    "vonage": ("vonage_api_key", "vonage_api_secret", "vonage_signature_secret"),
    "telnyx": ("telnyx_api_key", "telnyx_public_key", "telnyx_messaging_profile_id"),
    "plivo": ("plivo_auth_id", "plivo_auth_token"),
    "smpp": ("smpp_host", "smpp_system_id", "smpp_password"),
}
# What sending through each needs, as openline.providers.outbound_providers decides it.
_SENDS: dict[str, Callable[[Settings], bool]] = {
    "sandbox": lambda s: True,
    "twilio": lambda s: bool(s.twilio_account_sid) and s.twilio_auth_token is not None,
    "vonage": lambda s: bool(s.vonage_api_key) and s.vonage_api_secret is not None,
    "telnyx": lambda s: s.telnyx_api_key is not None,
    "plivo": lambda s: bool(s.plivo_auth_id) and s.plivo_auth_token is not None,
    "smpp": lambda s: bool(s.smpp_host) and bool(s.smpp_system_id),
}
TEXT_NAMES: dict[SystemText, str] = {
    SystemText.autotext: "Autotext: the first answer to a new number",
    SystemText.confirmed: "Opt-in confirmation, after YES",
    SystemText.help: "HELP answer",
    SystemText.stopped: "STOP answer",
    SystemText.profile: "PROFILE answer",
    SystemText.form_confirmation: "After the sign-up form",
    SystemText.frequency: "Frequency, used inside the others as {frequency}",
}
FIELD_TYPES = ("text", "number", "date", "choice")
NOTICES = {
    "senders": "Sender added.",
    "texts": "Text saved.",
    "keywords": "Keywords saved.",
    "broadcasts": "Broadcast rules saved.",
    "form": "Sign-up form saved.",
    "replies": "Saved replies saved.",
}


class Refused(ValueError):
    """Values a section's form cannot take: a message for each field concerned."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        super().__init__("; ".join(problems.values()))
        self.problems = dict(problems)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


@dataclass(frozen=True)
class Change:
    """What an audit-log entry says was done."""

    action: str
    target: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderView:
    name: str
    sends: bool
    receives: bool
    settings: list[tuple[str, bool]]  # (environment variable, set)


def providers(settings: Settings, receiving: Mapping[str, object]) -> list[ProviderView]:
    """Each provider, whether openline can send and receive through it, and which of its settings are set."""
    return [
        ProviderView(
            name,
            _SENDS[name](settings),
            name in receiving,
            [(ENV_PREFIX + s.upper(), getattr(settings, s) is not None) for s in PROVIDER_SETTINGS.get(name, ())],
        )
        for name in PROVIDERS
    ]


def effective_text(config: CommunityConfig, language: str, name: SystemText) -> tuple[str, str]:
    """The template openline sends for ``name`` in ``language``, and whose it is; the same search as
    openline.engine.texts.render (the community's, then openline's own, then the same in English)."""
    for lang in (language, "en"):
        suffix = "" if lang == language else ", in English"
        custom = config.texts.get(lang, {}).get(name)
        if custom is not None:
            return custom, "yours" + suffix
        builtin = DEFAULT_TEXTS.get(lang, {}).get(name)
        if builtin is not None:
            return builtin, "openline's own" + suffix
    return "", "none"


# -- the page ----------------------------------------------------------------------------------------


async def _page(
    request: Request,
    session: Session,
    status_code: int = 200,
    refused: str = "",
    typed: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    saved: str = "",
) -> HTMLResponse:
    runtime, community_id = runtime_of(request), session.user.community_id

    def load(conn: sa.Connection) -> tuple[CommunityConfig, list[Sender]]:
        return load_config(conn, community_id), list_senders(conn, community_id)

    config, senders = await read(runtime, load)
    views = providers(runtime.settings, runtime.webhooks)
    rules = config.broadcasts
    footers = [code for code in (*config.languages, *rules.footer) if code != "*"]
    current = {
        "senders-mps": "1",
        "broadcasts-windows": "\n".join(rules.windows),
        "broadcasts-frequency_cap": "" if rules.frequency_cap is None else str(rules.frequency_cap),
        "broadcasts-disclosure": rules.disclosure,
        "broadcasts-currency": rules.currency,
        "broadcasts-prices": "\n".join(f"{country} {price:g}" for country, price in rules.prices.items()),
        **{f"broadcasts-footer-{code}": text for code, text in rules.footer.items()},
    }
    # What was typed replaces the saved values of the section that was refused, and only of that one.
    values = {k: v for k, v in current.items() if not (refused and k.startswith(refused + "-"))}
    return render(
        request,
        "dashboard/settings.html",
        status_code=status_code,
        section="settings",
        config=config,
        senders=senders,
        providers=views,
        sending=[p.name for p in views if p.sends],
        texts={lang: {n: effective_text(config, lang, n) for n in SystemText} for lang in config.languages},
        text_names=TEXT_NAMES,
        language_names=LANGUAGE_NAMES,
        footer_languages=[*dict.fromkeys(footers), "*"],
        fields=[(f, field_kind(f), field_label(f, config.default_language)) for f in config.form.fields],
        builtin_fields=BUILTIN_FORM_FIELDS,
        field_types=FIELD_TYPES,
        saved_replies=sorted(config.saved_replies.items(), key=lambda item: item[0].casefold()),
        saved_reply_limits=(SAVED_REPLY_NAME_MAX, SAVED_REPLY_TEXT_MAX),
        values={**values, **(typed or {})},
        errors=errors or {},
        notice=NOTICES.get(saved, ""),
        saved=saved if saved in NOTICES else "",
    )


@router.get("/settings")
async def settings_page(request: Request, session: Admin, saved: str = "") -> HTMLResponse:
    return await _page(request, session, saved=saved)


def _problems(exc: ValidationError, fields: Mapping[str, str], default: str) -> dict[str, str]:
    """A validation error's messages by the form field they are about (``fields`` maps the names the
    domain uses to the form's), else by ``default``; a key inside a field (a price's country) is named."""
    found: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        at = next((i for i, part in enumerate(loc) if part in fields), None)
        message = _sentence(str(error["msg"]).removeprefix("Value error, "))
        if at is not None and at + 1 < len(loc):
            message = f"{loc[-1]}: {message}"
        found.setdefault(default if at is None else fields[loc[at]], []).append(message)
    return {name: " ".join(messages) for name, messages in found.items()}


async def _save(
    request: Request,
    session: Session,
    section: str,
    typed: Mapping[str, str],
    work: Callable[[sa.Connection, int], Change],
    *,
    default_field: str,
    fields: Mapping[str, str] | None = None,
) -> Response:
    """Validate and save with ``work``, write its audit-log entry in the same transaction, and send the
    browser back to the section with a notice; or show the page again with the refusal next to its field.

    ``typed`` is the section's form as posted, keyed by field id (``<section>-<name>``), kept on refusal.
    """
    user = session.user

    def run(conn: sa.Connection) -> None:
        change = work(conn, user.community_id)
        audit(conn, user, change.action, change.target, change.details)

    try:
        await write(runtime_of(request), run)
    except Refused as exc:
        problems = {name: _sentence(message) for name, message in exc.problems.items()}
    except ValidationError as exc:  # a ValueError too: caught first, for its field names
        problems = _problems(exc, fields or {}, default_field)
    except ValueError as exc:
        problems = {default_field: _sentence(str(exc))}
    else:
        return RedirectResponse(f"/settings?saved={section}#{section}", status_code=303)
    return await _page(request, session, 400, section, typed, {f"{section}-{k}": v for k, v in problems.items()})


async def _form(request: Request, section: str) -> dict[str, str]:
    """The posted fields, trimmed, keyed by their ids in the page (``<section>-<name>``)."""
    return {
        f"{section}-{name}": value.strip() for name, value in (await posted(request)).items() if name != "csrf_token"
    }


# -- senders -------------------------------------------------------------------------------------------


def _positive(text: str, field_name: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Refused({field_name: f"{what} must be a number (got {text!r})"}) from None
    if not 0 < value < float("inf"):
        raise Refused({field_name: f"{what} must be more than 0 (got {text})"})
    return value


def _whole(text: str, field_name: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise Refused({field_name: f"{what} must be a whole number (got {text!r})"}) from None
    if value <= 0:
        raise Refused({field_name: f"{what} must be more than 0 (got {text})"})
    return value


@router.post("/settings/senders")
async def add_a_sender(request: Request, session: Admin, _csrf: Csrf) -> Response:
    typed = await _form(request, "senders")
    runtime = runtime_of(request)

    def work(conn: sa.Connection, community_id: int) -> Change:
        provider = typed.get("senders-provider", "")
        if provider not in _SENDS or not _SENDS[provider](runtime.settings):
            raise Refused({"provider": f"{provider or 'that provider'} is not configured on this server"})
        mps = _positive(typed.get("senders-mps", ""), "mps", "segments per second")
        cap_text = typed.get("senders-daily_cap", "")
        cap = _whole(cap_text, "daily_cap", "the daily cap") if cap_text else None
        sender = add_sender(
            conn, community_id, typed.get("senders-address", ""), provider=provider, mps=mps, daily_cap=cap
        )
        return Change("sender.add", sender.address, {"provider": provider, "mps": mps, "daily_cap": cap})

    response = await _save(request, session, "senders", typed, work, default_field="address")
    if response.status_code == 303:  # webhooks to the new number find it at once
        await asyncio.to_thread(runtime.senders.reload)
    return response


# -- texts ---------------------------------------------------------------------------------------------


def _text_choice(typed: Mapping[str, str], config: CommunityConfig) -> tuple[str, SystemText]:
    language, name = typed.get("texts-language", ""), typed.get("texts-name", "")
    if language not in config.languages:
        raise Refused({"language": f"choose one of the community's languages ({', '.join(config.languages)})"})
    if name not in {n.value for n in SystemText}:
        raise Refused({"name": "choose which text to change"})
    return language, SystemText(name)


@router.post("/settings/texts")
async def set_a_text(request: Request, session: Admin, _csrf: Csrf) -> Response:
    typed = await _form(request, "texts")

    def work(conn: sa.Connection, community_id: int) -> Change:
        language, name = _text_choice(typed, load_config(conn, community_id))
        template = typed.get("texts-template", "")
        if not template:
            raise Refused({"template": "write the text (or put openline's own back with its button)"})
        set_text(conn, community_id, language, name, template)
        return Change("text.set", f"{name.value} ({language})", {"text": template})

    return await _save(request, session, "texts", typed, work, default_field="template")


@router.post("/settings/texts/reset")
async def reset_a_text(request: Request, session: Admin, _csrf: Csrf) -> Response:
    typed = await _form(request, "texts")

    def work(conn: sa.Connection, community_id: int) -> Change:
        config = load_config(conn, community_id)
        language, name = _text_choice(typed, config)
        texts = {
            lang: {k: v for k, v in t.items() if (lang, k) != (language, name)} for lang, t in config.texts.items()
        }
        update_config(conn, community_id, texts={lang: t for lang, t in texts.items() if t})
        return Change("text.reset", f"{name.value} ({language})")

    return await _save(request, session, "texts", typed, work, default_field="template")


# -- keywords ------------------------------------------------------------------------------------------


@router.post("/settings/keywords")
async def add_a_keyword(request: Request, session: Admin, _csrf: Csrf) -> Response:
    typed = await _form(request, "keywords")

    def work(conn: sa.Connection, community_id: int) -> Change:
        word = typed.get("keywords-word", "")
        rule = KeywordRule(tag=typed.get("keywords-tag", ""), reply=typed.get("keywords-reply") or None)
        add_keyword(conn, community_id, word, rule)
        return Change("keyword.add", word.upper(), rule.model_dump())

    return await _save(
        request, session, "keywords", typed, work, default_field="word", fields={"tag": "tag", "reply": "reply"}
    )


@router.post("/settings/keywords/remove")
async def remove_a_keyword(request: Request, session: Admin, _csrf: Csrf) -> Response:
    typed = await _form(request, "keywords")

    def work(conn: sa.Connection, community_id: int) -> Change:
        word = typed.get("keywords-remove", "")
        if not remove_keyword(conn, community_id, word):
            raise Refused({"list": f"there is no keyword {word!r} (already removed?)"})
        return Change("keyword.remove", word.upper())

    return await _save(request, session, "keywords", {}, work, default_field="list")


# -- broadcast rules -----------------------------------------------------------------------------------


def _prices(text: str) -> tuple[dict[str, str], str]:
    """The price table from "US 0.0079" lines ("=" or ":" may stand between), prices still as typed (the
    settings check them); and what is wrong with the lines, if anything."""
    prices: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.replace("=", " ").replace(":", " ").split()
        if len(parts) == 2:
            prices[parts[0]] = parts[1]
        elif parts:
            return prices, f"line {number}: write a country code and a price, e.g. 'US 0.0079'"
    return prices, ""


@router.post("/settings/broadcasts")
async def save_broadcast_rules(request: Request, session: Admin, _csrf: Csrf) -> Response:
    typed = await _form(request, "broadcasts")

    names = {n: n for n in ("windows", "frequency_cap", "disclosure", "footer", "currency", "prices")}

    def work(conn: sa.Connection, community_id: int) -> Change:
        prices, bad_line = _prices(typed.get("broadcasts-prices", ""))
        rules: dict[str, Any] = {
            "windows": [line.strip() for line in typed.get("broadcasts-windows", "").splitlines() if line.strip()],
            "frequency_cap": typed.get("broadcasts-frequency_cap") or None,  # the settings parse and check it
            "disclosure": typed.get("broadcasts-disclosure", ""),
            "footer": {
                k.removeprefix("broadcasts-footer-"): v
                for k, v in typed.items()
                if k.startswith("broadcasts-footer-") and v
            },
            "currency": typed.get("broadcasts-currency", ""),
            "prices": prices,
        }
        if bad_line:  # every other problem is told at the same time, not one per attempt
            try:
                BroadcastSettings.model_validate(rules)
            except ValidationError as exc:
                raise Refused({**_problems(exc, names, "windows"), "prices": bad_line}) from None
            raise Refused({"prices": bad_line})
        saved = update_config(conn, community_id, broadcasts=rules).broadcasts
        return Change("broadcasts.rules", "broadcast rules", saved.model_dump(mode="json"))

    return await _save(request, session, "broadcasts", typed, work, default_field="windows", fields=names)


# -- the sign-up form's fields -------------------------------------------------------------------------


@router.post("/settings/form-fields")
async def add_a_form_field(request: Request, session: Admin, _csrf: Csrf) -> Response:
    typed = await _form(request, "form")

    def work(conn: sa.Connection, community_id: int) -> Change:
        name, label = typed.get("form-name", "").lower(), typed.get("form-label", "")
        if typed.get("form-type") == "choice" and not typed.get("form-choices"):
            raise Refused({"choices": "a choice field needs its choices, separated by commas"})
        config = load_config(conn, community_id)
        spec = FormField.model_validate(
            {
                "name": name,
                "type": None if name in BUILTIN_FORM_FIELDS else typed.get("form-type") or None,
                "required": typed.get("form-required") == "on",
                "labels": {config.default_language: label} if label else {},
                "choices": [c.strip() for c in typed.get("form-choices", "").split(",") if c.strip()],
            }
        )
        add_form_field(conn, community_id, spec)
        return Change("form.field_add", name, spec.model_dump(exclude={"name"}))

    fields = {"type": "type", "labels": "label", "choices": "choices", "required": "required"}
    return await _save(request, session, "form", typed, work, default_field="name", fields=fields)


@router.post("/settings/form-fields/remove")
async def remove_a_form_field(request: Request, session: Admin, _csrf: Csrf) -> Response:
    typed = await _form(request, "form")

    def work(conn: sa.Connection, community_id: int) -> Change:
        name = typed.get("form-remove", "")
        if not remove_form_field(conn, community_id, name):
            raise Refused({"list": f"the form has no field {name!r} (already removed?)"})
        return Change("form.field_remove", name)

    return await _save(request, session, "form", {}, work, default_field="list")


# -- saved replies -------------------------------------------------------------------------------------


@router.post("/settings/replies")
async def save_a_reply(request: Request, session: Admin, _csrf: Csrf) -> Response:
    typed = await _form(request, "replies")

    def work(conn: sa.Connection, community_id: int) -> Change:
        name, text = typed.get("replies-name", ""), typed.get("replies-text", "")
        problems: dict[str, str] = {}
        if not name or len(name) > SAVED_REPLY_NAME_MAX or not name.isprintable():
            problems["name"] = f"a name is 1 to {SAVED_REPLY_NAME_MAX} characters, on one line"
        if not text or len(text) > SAVED_REPLY_TEXT_MAX:
            problems["text"] = f"the text is 1 to {SAVED_REPLY_TEXT_MAX} characters (got {len(text)})"
        if problems:
            raise Refused(problems)
        replies = load_config(conn, community_id).saved_replies
        replaced = name in replies
        update_config(conn, community_id, saved_replies={**replies, name: text})
        return Change("saved_reply.replace" if replaced else "saved_reply.add", name, {"text": text})

    return await _save(request, session, "replies", typed, work, default_field="name")


@router.post("/settings/replies/remove")
async def remove_a_reply(request: Request, session: Admin, _csrf: Csrf) -> Response:
    typed = await _form(request, "replies")

    def work(conn: sa.Connection, community_id: int) -> Change:
        name = typed.get("replies-remove", "")
        replies = dict(load_config(conn, community_id).saved_replies)
        if replies.pop(name, None) is None:
            raise Refused({"list": f"there is no saved reply {name!r} (already removed?)"})
        update_config(conn, community_id, saved_replies=replies)
        return Change("saved_reply.remove", name)

    return await _save(request, session, "replies", {}, work, default_field="list")
