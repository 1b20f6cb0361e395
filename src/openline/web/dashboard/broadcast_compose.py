"""/broadcasts/new, the composer: its form as typed, each field checked with a sentence under it,
every body's template checked at once, the schedule read, and the live counter under each body.

A draft is made through openline.broadcasts.create_broadcast, so the dashboard makes exactly what the
CLI and the API would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from openline.accounts import Session, audit
from openline.broadcast_settings import BroadcastSettings
from openline.broadcasts import Broadcast, Message, Schedule, TemplateProblem, Variant, create_broadcast
from openline.broadcasts.compose import compile_message, language_name
from openline.broadcasts.store import custom_fields
from openline.broadcasts.templates import MAX_LENGTH
from openline.db import schema
from openline.encoding import Encoding, count_segments
from openline.engine.config import load_config
from openline.segments import FilterError, count_members, get_segment, parse_filter, to_json
from openline.senders import list_senders
from openline.states import UserRole
from openline.web.dashboard.auth import posted, read, sentence, write
from openline.web.dashboard.deps import check_csrf, render, require, runtime_of
from openline.web.dashboard.members import count_text

__all__ = ["TRANSLATION_ROWS", "Composed", "SegmentCounter", "count_body", "router"]

router = APIRouter()

Admin = Annotated[Session, require(UserRole.admin)]
Posted = Annotated[Session, Depends(check_csrf)]

TRANSLATION_ROWS = 3
_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?$")


@dataclass
class Composed:
    """The composer's fields as typed: kept as they are when the page comes back with errors."""

    name: str = ""
    body: str = ""
    translations: list[tuple[str, str]] = field(default_factory=lambda: [("", "")] * TRANSLATION_ROWS)
    variant_b: str = ""
    weight_b: str = "50"
    sponsored: bool = False
    segment_name: str = ""
    filter: str = ""
    sender: str = ""
    when: str = "now"
    at: str = ""
    at_zone: str = ""
    local_date: str = ""
    local_time: str = ""

    @property
    def has_translations(self) -> bool:
        return any(code or text for code, text in self.translations)

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> Composed:
        return cls(
            name=form.get("name", ""),
            body=_lines(form.get("body", "")),
            translations=[
                (form.get(f"lang_{i}", "").strip(), _lines(form.get(f"text_{i}", "")))
                for i in range(1, TRANSLATION_ROWS + 1)
            ],
            variant_b=_lines(form.get("variant_b", "")),
            weight_b=form.get("weight_b", "50").strip(),
            sponsored=form.get("sponsored", "") not in ("", "0"),
            segment_name=form.get("segment_name", ""),
            filter=form.get("filter", ""),
            sender=form.get("sender", ""),
            when=form.get("when", "now"),
            at=form.get("at", "").strip(),
            at_zone=form.get("at_zone", "").strip(),
            local_date=form.get("local_date", "").strip(),
            local_time=form.get("local_time", "").strip(),
        )


def _lines(text: str) -> str:
    # Browsers send a textarea's line breaks as CR LF; a text message has LF (CR LF would cost a
    # septet more per line, and the CLI and API take LF).
    return text.replace("\r\n", "\n")


@dataclass(frozen=True)
class _Draft:
    """What the composer's fields add up to, ready for create_broadcast."""

    message: dict[str, Any]
    segment: dict[str, Any] | None
    segment_name: str | None
    sender: str | None
    schedule: Schedule


class _Refused(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("the broadcast has problems")
        self.errors = errors


@lru_cache(maxsize=1)
def _zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def _check(typed: Composed, now: datetime) -> _Draft:
    """The typed fields as a draft, or _Refused with a sentence for each field that is wrong."""
    errors: dict[str, str] = {}
    if not typed.name.strip():
        errors["name"] = "Give the broadcast a name (only your team sees it)."
    if not typed.body.strip():
        errors["body"] = "Write the text."
    translations: dict[str, str] = {}
    seen: set[str] = set()
    for i, (code, text) in enumerate(typed.translations, start=1):
        if not code and not text.strip():
            continue
        if not code:
            errors[f"lang_{i}"] = "Which language is this text in? Give its code, like it, es or pt-BR."
            continue
        if not text.strip():
            errors[f"text_{i}"] = f"Write the {language_name(code)} text, or clear the language code."
            continue
        try:
            Variant(body=text, translations={code: text})
        except ValidationError as exc:
            errors[f"lang_{i}"] = _pydantic_sentence(exc)
            continue
        key = code.lower().replace("_", "-")
        if key in seen:
            errors[f"lang_{i}"] = f"There is already a {language_name(code)} text above."
            continue
        seen.add(key)
        translations[code] = text
    weight_b = 0
    if typed.variant_b.strip():
        weight_b = int(typed.weight_b) if typed.weight_b.isdigit() else 0
        if not 1 <= weight_b <= 99:
            errors["weight_b"] = "Give version B's share as a whole number from 1 to 99."
    segment, segment_name = None, None
    if typed.segment_name.strip():
        segment_name = typed.segment_name.strip()
    elif not typed.filter.strip():
        errors["filter"] = "Choose a saved segment or write a filter (everyone sends to every member)."
    else:
        try:
            segment = to_json(parse_filter(typed.filter))
        except FilterError as exc:
            errors["filter"] = sentence(exc)
    schedule = _schedule(typed, now, errors)
    if errors:
        raise _Refused(errors)
    variants: list[dict[str, Any]] = [
        {"name": "A", "body": typed.body, "translations": translations, "weight": 100 - weight_b}
    ]
    if typed.variant_b.strip():
        variants.append({"name": "B", "body": typed.variant_b, "weight": weight_b})
    return _Draft(
        message={"variants": variants, "sponsored": typed.sponsored},
        segment=segment,
        segment_name=segment_name,
        sender=typed.sender.strip() or None,
        schedule=schedule,
    )


def _schedule(typed: Composed, now: datetime, errors: dict[str, str]) -> Schedule:
    if typed.when == "at":
        zone_name = typed.at_zone or "UTC"
        zone = ZoneInfo(zone_name) if zone_name in _zones() else None
        if zone is None:
            errors["at_zone"] = f"{zone_name!r} is not a time zone; choose one like Europe/Rome or America/New_York."
        try:
            at = datetime.fromisoformat(typed.at)
        except ValueError:
            errors["at"] = "Give the date and time to send at."
            return Schedule()
        if zone is None:
            return Schedule()
        at = at if at.tzinfo is not None else at.replace(tzinfo=zone)
        if at < now:
            errors["at"] = "That moment has passed; choose a later one, or “As soon as I press Send”."
            return Schedule()
        return Schedule(at=at)
    if typed.when == "local":
        try:
            day = date.fromisoformat(typed.local_date)
        except ValueError:
            errors["local_date"] = "Give the date (each member gets it on this date, their time)."
            day = None
        if not _HH_MM.match(typed.local_time):
            errors["local_time"] = "Give the time of day, like 10:00."
        if day is None or "local_time" in errors:
            return Schedule()
        schedule = Schedule(local_date=day, local_time=typed.local_time[:5])
        # The last place on earth to reach that wall-clock time is at UTC-12.
        if schedule.member_time(ZoneInfo("Etc/GMT+12")) < now:
            errors["local_date"] = "That time has passed everywhere; choose a later date."
        return schedule
    if typed.when != "now":
        errors["when"] = "Choose when to send it."
    return Schedule()


def _pydantic_sentence(exc: ValidationError) -> str:
    first = exc.errors()[0]["msg"]
    return sentence(ValueError(first.removeprefix("Value error, ")))


def _bodies(typed: Composed) -> dict[str, str]:
    """The templates typed, by field id."""
    bodies = {"body": typed.body, "variant_b": typed.variant_b}
    bodies.update({f"text_{i}": text for i, (_, text) in enumerate(typed.translations, start=1)})
    return {field_id: text for field_id, text in bodies.items() if text.strip()}


def _template_problems(conn: sa.Connection, community_id: int, bodies: Mapping[str, str]) -> dict[str, str]:
    """Each body checked on its own, so each problem is shown under the field it is in."""
    fields = custom_fields(conn, community_id)
    problems: dict[str, str] = {}
    for field_id, source in bodies.items():
        try:
            compile_message(Message(variants=[Variant(body=source)]), custom_fields=fields)
        except TemplateProblem as exc:
            problems[field_id] = sentence(ValueError(f"line {exc.line}, column {exc.column}: {exc.problem}"))
    return problems


def _field_of(exc: ValueError) -> str:
    """Which field create_broadcast's complaint is about."""
    text = str(exc)
    if "saved segment" in text:
        return "segment_name"
    if "senders" in text:
        return "sender"
    if "name" in text:
        return "name"
    return "form"


@dataclass(frozen=True)
class SegmentCounter:
    """What the live counter under a body says: "2 segments · UCS-2 · 85/134"."""

    segments: int
    encoding: str
    units: int
    capacity: int
    length: int
    added: tuple[str, ...]  # what members get besides the text: the disclosure, the footer
    templated: bool

    @property
    def line(self) -> str:
        plural = "" if self.segments == 1 else "s"
        return f"{self.segments} segment{plural} · {self.encoding} · {self.units}/{self.capacity}"

    limit: int = MAX_LENGTH  # characters in one text, once personalised

    @property
    def too_long(self) -> bool:
        return self.length > self.limit


def count_body(text: str, rules: BroadcastSettings, *, sponsored: bool, language: str | None) -> SegmentCounter:
    """Segments of a body as typed, with what planning adds to every text (the sponsored disclosure
    first, the footer after). Personalisation and tracked links change it per member: the estimate
    counts each member's own text."""
    added: list[str] = []
    counted = text
    if sponsored and rules.disclosure.strip():
        counted = f"{rules.disclosure.strip()} {counted}"
        added.append(f"“{rules.disclosure.strip()}” first")
    footer = rules.footer_for(language)
    if footer:
        counted = f"{counted}\n{footer}"
        added.append("the footer")
    found = count_segments(counted)
    ucs2 = found.encoding is Encoding.ucs2
    single, part = (70, 67) if ucs2 else (160, 153)
    return SegmentCounter(
        segments=found.segments,
        encoding="UCS-2" if ucs2 else "GSM-7",
        units=found.units,
        capacity=single if found.segments == 1 else part * found.segments,
        length=len(counted),
        added=tuple(added),
        templated="{{" in text or "{%" in text,
    )


def _counters(typed: Composed, rules: BroadcastSettings) -> dict[str, SegmentCounter]:
    counters = {"body": count_body(typed.body, rules, sponsored=typed.sponsored, language=None)}
    for i, (code, text) in enumerate(typed.translations, start=1):
        if text:
            counters[f"text_{i}"] = count_body(text, rules, sponsored=typed.sponsored, language=code or None)
    if typed.variant_b:
        counters["variant_b"] = count_body(typed.variant_b, rules, sponsored=typed.sponsored, language=None)
    return counters


@dataclass(frozen=True)
class _Choices:
    segments: list[str]
    senders: list[str]
    rules: BroadcastSettings
    recipients: str | None  # the live count of the chosen recipients, when there are any


async def _composer(
    request: Request, session: Session, typed: Composed, status_code: int = 200, errors: dict[str, str] | None = None
) -> HTMLResponse:
    community_id, now = session.user.community_id, datetime.now(UTC)

    def load(conn: sa.Connection) -> _Choices:
        s = schema.segments.c
        names = list(conn.execute(sa.select(s.name).where(s.community_id == community_id).order_by(s.name)).scalars())
        recipients = None
        try:
            if typed.segment_name.strip():
                saved = get_segment(conn, community_id, typed.segment_name)
                if saved is not None:
                    recipients = count_text(count_members(conn, community_id, saved.filter, now))
            elif typed.filter.strip():
                recipients = count_text(count_members(conn, community_id, parse_filter(typed.filter), now))
        except FilterError:
            pass  # the error is shown under the field already
        return _Choices(
            names,
            [sender.address for sender in list_senders(conn, community_id)],
            load_config(conn, community_id).broadcasts,
            recipients,
        )

    choices = await read(runtime_of(request), load)
    return render(
        request,
        "dashboard/broadcast_new.html",
        status_code=status_code,
        section="broadcasts",
        typed=typed,
        errors=errors or {},
        segments=choices.segments,
        senders=choices.senders,
        zones=_zones(),
        disclosure=choices.rules.disclosure,
        counters=_counters(typed, choices.rules),
        recipients=choices.recipients,
    )


@router.get("/broadcasts/new")
async def composer_page(request: Request, session: Admin) -> HTMLResponse:
    return await _composer(request, session, Composed())


@router.post("/broadcasts/new")
async def create(request: Request, session: Admin, _csrf: Posted) -> Response:
    typed = Composed.from_form(await posted(request))
    user, runtime = session.user, runtime_of(request)
    draft: _Draft | None = None
    errors: dict[str, str] = {}
    try:
        draft = _check(typed, datetime.now(UTC))
    except _Refused as refused:
        errors = refused.errors
    # Every body's template is checked even when other fields are wrong: all problems at once.
    bodies = _bodies(typed)
    problems = await read(runtime, lambda conn: _template_problems(conn, user.community_id, bodies))
    errors = problems | errors  # "Write the text" says more than a template problem in no text
    if errors or draft is None:
        return await _composer(request, session, typed, 400, errors)
    checked = draft

    def make(conn: sa.Connection) -> Broadcast:
        made = create_broadcast(
            conn,
            user.community_id,
            typed.name,
            checked.message,
            segment=checked.segment,
            segment_name=checked.segment_name,
            sender=checked.sender,
            schedule=checked.schedule,
        )
        audit(conn, user, "broadcast.create", made.name, {"id": made.id})
        return made

    try:
        made = await write(runtime, make)
    except TemplateProblem as exc:  # a custom field removed since the check above
        return await _composer(request, session, typed, 400, {"body": sentence(exc)})
    except ValueError as exc:  # a name taken, a segment deleted meanwhile, a sender not the community's
        return await _composer(request, session, typed, 400, {_field_of(exc): sentence(exc)})
    return RedirectResponse(f"/broadcasts/{made.id}", status_code=303)


@router.post("/broadcasts/count")
async def live_counter(request: Request, session: Admin, _csrf: Posted) -> HTMLResponse:
    """The counter under one of the composer's bodies (``field`` names which), as typed."""
    form = await posted(request)
    typed = Composed.from_form(form)
    field_id = form.get("field", "body")
    community_id = session.user.community_id
    rules = await read(runtime_of(request), lambda conn: load_config(conn, community_id).broadcasts)
    counted = _counters(typed, rules).get(field_id)
    if counted is None:  # an empty translation or version B
        counted = count_body("", rules, sponsored=typed.sponsored, language=None)
    return render(request, "dashboard/_broadcast_count.html", counter=counted)
