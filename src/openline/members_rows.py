"""Reading members out of CSV rows: which column holds what, and whether each value can be used.

Pure functions over plain data (no database), so a process pool can check rows in parallel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, NamedTuple

import phonenumbers

from openline.csv_safety import undo_spreadsheet_safe
from openline.members import PROFILE_FIELDS
from openline.phone import region_and_type
from openline.regions import member_region
from openline.states import MemberState
from openline.timezones import choose_zones, parsed_number_zones

__all__ = [
    "FIELDS",
    "MEMBER_COLUMNS",
    "Candidate",
    "ColumnMap",
    "ColumnMapError",
    "Job",
    "Prepared",
    "RowError",
    "check_country",
    "check_rows",
    "evidence",
    "initial_state",
    "merge",
    "prepare_chunk",
    "resolve_columns",
    "stored_time",
]

# Fields a column can fill besides the profile's; ``custom.NAME`` fills the custom field NAME.
FIELDS = ("phone", *PROFILE_FIELDS, "tags", "custom", "state", "consent_source", "consent_at")
IGNORE = "ignore"

# Headers recognised without a --map, compared lower-cased with spaces, dots and dashes as "_".
_ALIASES: dict[str, str] = {
    **{a: "phone" for a in ("phone", "mobile", "number", "phone_number", "mobile_number", "cell", "cellphone")},
    **{a: "phone" for a in ("cell_phone", "mobile_phone", "msisdn", "telephone", "tel", "sms", "e164")},
    **{a: "first_name" for a in ("first_name", "firstname", "first", "given_name", "forename")},
    **{a: "last_name" for a in ("last_name", "lastname", "last", "surname", "family_name")},
    **{a: "email" for a in ("email", "e_mail", "email_address", "mail")},
    **{a: "city" for a in ("city", "town")},
    **{a: "postcode" for a in ("postcode", "post_code", "postal_code", "zip", "zip_code", "zipcode")},
    **{a: "country" for a in ("country", "country_code")},
    **{a: "birthday" for a in ("birthday", "birthdate", "birth_date", "date_of_birth", "dob")},
    **{a: "language" for a in ("language", "lang")},
    **{a: "tags" for a in ("tags", "tag", "labels")},
    "custom": "custom",
    **{a: "state" for a in ("state", "status")},
    **{a: "consent_source" for a in ("consent_source", "opt_in_source", "optin_source")},
    **{a: "consent_at" for a in ("consent_at", "consent_timestamp", "consent_time", "consent_date", "opted_in_at")},
}
_LIMITS = {"first_name": 100, "last_name": 100, "city": 100, "postcode": 20, "email": 320, "consent_source": 200}
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,4})?$")
_TAG_SEPARATORS = re.compile(r"[,;|]")
_TAG_LIMIT = 64
# What an import may say about a member's state: only opting out is taken from a file (subscribing
# needs the consent columns); the other words are accepted so an export can be imported back.
_STATES = {
    "": None,
    "new": None,
    "pending": None,
    "subscribed": None,
    "unsubscribed": "unsubscribed",
    "blocked": "blocked",
}
_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


class ColumnMapError(ValueError):
    """The header and the --map options do not say where the phone numbers are, or name unknown things."""


@dataclass(frozen=True)
class ColumnMap:
    """For each column of the file, the field it fills (None: ignored)."""

    header: tuple[str, ...]
    targets: tuple[str | None, ...]

    @property
    def ignored(self) -> list[str]:
        return [name for name, target in zip(self.header, self.targets, strict=True) if target is None]


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem with one row: the line it starts on, the column (by header name) and why."""

    line: int
    column: str
    reason: str


@dataclass(slots=True)
class Candidate:
    """A row that passed every check: what it says about the member with this number."""

    phone: str
    lines: list[int]
    # The number's country: the member's country when the file gives none.
    region: str | None = None
    # The zones the number alone tells (worked out while the number is parsed anyway).
    number_zones: tuple[str, ...] = ()
    profile: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    opt_out: str | None = None
    # (source, when in ISO 8601, line): the consent the row documents.
    consent: tuple[str, str, int] | None = None


class Prepared(NamedTuple):
    """A number's rows in one chunk, merged and ready to store. A plain tuple of plain values: the pool
    sends it back cheaply (unpickling dataclasses or aware datetimes costs more than checking)."""

    phone: str
    lines: tuple[int, ...]
    # Should the number be new: its members row (MEMBER_COLUMNS) and first ledger evidence (JSON).
    row: tuple[Any, ...]
    evidence: str
    tags: tuple[str, ...]
    profile: dict[str, Any]
    custom: dict[str, Any]
    opt_out: str | None
    consent: tuple[str, str, int] | None


def _shown(text: str) -> str:
    """A value quoted in a reason, cut short: the report carries the whole row anyway."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def _normalise(header: str) -> str:
    return re.sub(r"[\s.\-]+", "_", header.strip().lower()).strip("_")


def _check_target(target: str) -> str | None:
    if target == IGNORE:
        return None
    if target.startswith("custom."):
        name = target.removeprefix("custom.").strip()
        if not name or len(name) > 64:
            raise ColumnMapError(f"{target!r}: a custom field needs a name of 1 to 64 characters (custom.NAME)")
        return "custom." + name
    if target not in FIELDS:
        raise ColumnMapError(f"unknown field {target!r}: expected one of {', '.join(FIELDS)}, custom.NAME or ignore")
    return target


def resolve_columns(header: Sequence[str], overrides: Mapping[str, str] | None = None) -> ColumnMap:
    """Decide what each column holds: ``overrides`` (column -> field) first, then known header names,
    then ``custom.NAME`` headers. Raises ColumnMapError naming the problem."""
    names = [h.strip() for h in header]
    overrides = {column.strip(): target.strip() for column, target in (overrides or {}).items()}
    for column in overrides:
        if column not in names:
            raise ColumnMapError(f"--map {column}=...: the file has no column {column!r} (it has {', '.join(names)})")
    targets: list[str | None] = []
    for name in names:
        if name in overrides:
            targets.append(_check_target(overrides[name]))
        elif name.lower().startswith("custom.") and len(name) > len("custom."):
            targets.append(_check_target("custom." + name[len("custom.") :]))
        else:
            targets.append(_ALIASES.get(_normalise(name)))
    seen: dict[str, str] = {}
    for name, target in zip(names, targets, strict=True):
        if target is None:
            continue
        if target in seen:
            raise ColumnMapError(
                f"columns {seen[target]!r} and {name!r} both fill {target}; choose one with --map COLUMN=ignore"
            )
        seen[target] = name
    if "phone" not in seen:
        raise ColumnMapError(
            f"no column holds the phone number (columns: {', '.join(names) or 'none'}); name it with --map COLUMN=phone"
        )
    if ("consent_source" in seen) != ("consent_at" in seen):
        missing = "consent_at" if "consent_source" in seen else "consent_source"
        raise ColumnMapError(f"consent needs both a source and a timestamp column; no column holds {missing}")
    return ColumnMap(tuple(names), tuple(targets))


def check_country(code: str) -> str:
    """An ISO 3166-1 alpha-2 code libphonenumber knows, upper-cased; ValueError otherwise."""
    upper = code.strip().upper()
    if upper not in _REGIONS:
        raise ValueError(f"{_shown(code)} is not an ISO 3166 country code with a numbering plan (e.g. US, IT, GB)")
    return upper


_PARSE_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "has no valid country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "is not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short",
    phonenumbers.NumberParseException.TOO_LONG: "is too long",
}


# Number types a list may hold that no text reaches (a landline at best reads it out by voice). Kept:
# mobile, fixed-line-or-mobile (every +1 number), VoIP, personal and toll-free numbers, which can.
_UNTEXTABLE = {
    phonenumbers.PhoneNumberType.FIXED_LINE: "a landline number",
    phonenumbers.PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    phonenumbers.PhoneNumberType.SHARED_COST: "a shared-cost number",
    phonenumbers.PhoneNumberType.UAN: "a company's universal access number",
    phonenumbers.PhoneNumberType.VOICEMAIL: "a voicemail access number",
    phonenumbers.PhoneNumberType.PAGER: "a pager number",
}


def _phone(raw: str, region: str | None) -> tuple[str, str | None, tuple[str, ...]]:
    """(E.164, country, time zones) of a number written any way; ValueError with the reason."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "is not a phone number")
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and region is None:
            reason += " (start it with + and the country code, or set a default country)"
        raise ValueError(f"{_shown(raw)} {reason}") from None
    # A valid number is one of a known type (is_valid_number is exactly that); the type also decides its
    # time zones, so it is worked out once here, with the region, rather than again by each check.
    found, kind = region_and_type(number)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        raise ValueError(f"{_shown(raw)} is not a valid number in the numbering plan of +{number.country_code}")
    if kind in _UNTEXTABLE:
        raise ValueError(f"{_shown(raw)} is {_UNTEXTABLE[kind]}, which cannot receive texts")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, None if found in ("001", "ZZ") else str(found), parsed_number_zones(number, found, kind)


def _date(raw: str) -> date:
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{_shown(raw)} is not a date (expected YYYY-MM-DD)") from None
    if value.year < 1900 or value > date.today():
        raise ValueError(f"{_shown(raw)} is not a plausible birthday")
    return value


def _timestamp(raw: str, now: datetime) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{_shown(raw)} is not an ISO 8601 timestamp (e.g. 2024-05-01T18:30:00Z)") from None
    # A timestamp without an offset is taken as UTC (documented in docs/members.md).
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value > now:
        raise ValueError(f"{_shown(raw)} is in the future")
    return value


def _custom(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(
        isinstance(v, str | int | float | bool) or v is None for v in value.values()
    ):
        raise ValueError(f"{_shown(raw)} is not a JSON object of plain values")
    return value


def _check_one(
    line: int, row: Sequence[str], columns: ColumnMap, region: str | None, now: datetime
) -> Candidate | list[RowError]:
    errors: list[RowError] = []
    header, targets = columns.header, columns.targets
    if len(row) > len(header) and any(v.strip() for v in row[len(header) :]):
        errors.append(RowError(line, "", f"the row has {len(row)} fields, the header has {len(header)}"))
    values: dict[str, str] = {}
    for index, value in enumerate(row[: len(header)]):
        target = targets[index]
        if target is not None:
            # Without the quote an export puts before text a spreadsheet would take as a formula (tested
            # first by hand: this runs for every cell of a million-row file).
            text = (undo_spreadsheet_safe(value) if value[:1] == "'" else value).strip()
            if text:
                values[target] = text
    candidate = Candidate("", [line])
    raw_phone = values.pop("phone", None)
    if raw_phone is None:
        errors.append(RowError(line, _column(columns, "phone"), "no phone number"))
    else:
        try:
            candidate.phone, candidate.region, candidate.number_zones = _phone(raw_phone, region)
        except ValueError as exc:
            errors.append(RowError(line, _column(columns, "phone"), str(exc)))
    consent_source = values.pop("consent_source", None)
    consent_at = values.pop("consent_at", None)
    for target, text in values.items():
        try:
            _apply(candidate, target, text, now)
        except ValueError as exc:
            errors.append(RowError(line, _column(columns, target), str(exc)))
    if consent_source is not None or consent_at is not None:
        if consent_source is None or consent_at is None:
            missing = "consent_source" if consent_source is None else "consent_at"
            errors.append(RowError(line, _column(columns, missing), "consent needs both a source and a timestamp"))
        else:
            if len(consent_source) > _LIMITS["consent_source"]:
                reason = f"consent_source is longer than {_LIMITS['consent_source']} characters"
                errors.append(RowError(line, _column(columns, "consent_source"), reason))
            try:
                candidate.consent = (consent_source, _timestamp(consent_at, now).isoformat(), line)
            except ValueError as exc:
                errors.append(RowError(line, _column(columns, "consent_at"), str(exc)))
    return errors or candidate


def _apply(candidate: Candidate, target: str, text: str, now: datetime) -> None:
    if target in _LIMITS and len(text) > _LIMITS[target]:
        raise ValueError(f"{target} is longer than {_LIMITS[target]} characters")
    if target.startswith("custom."):
        candidate.custom[target.removeprefix("custom.")] = text
    elif target == "custom":
        candidate.custom.update(_custom(text))
    elif target == "tags":
        for tag in _TAG_SEPARATORS.split(text):
            tag = tag.strip()
            if len(tag) > _TAG_LIMIT:
                raise ValueError(f"tag {tag[:20]!r}... is longer than {_TAG_LIMIT} characters")
            if tag:
                candidate.tags.add(tag)
    elif target == "state":
        if text.lower() not in _STATES:
            raise ValueError(f"{_shown(text)} is not a member state (unsubscribed or blocked; others are ignored)")
        candidate.opt_out = _STATES[text.lower()]
    elif target == "email":
        if not _EMAIL.match(text):
            raise ValueError(f"{_shown(text)} is not an e-mail address")
        candidate.profile["email"] = text
    elif target == "birthday":
        candidate.profile["birthday"] = _date(text)
    elif target == "country":
        candidate.profile["country"] = check_country(text)
    elif target == "language":
        if not _LANGUAGE.match(text.lower()) or len(text) > 8:
            raise ValueError(f"{_shown(text)} is not a language code (ISO 639-1, e.g. en or pt-BR)")
        candidate.profile["language"] = text.lower() if "-" not in text else text
    else:
        candidate.profile[target] = text


def _column(columns: ColumnMap, target: str) -> str:
    for name, filled in zip(columns.header, columns.targets, strict=True):
        if filled == target:
            return name
    return target


def check_rows(
    rows: Sequence[tuple[int, Sequence[str]]], columns: ColumnMap, region: str | None, now: datetime
) -> tuple[list[Candidate], list[RowError]]:
    """Check ``(line, fields)`` rows: the candidates that passed and every problem of those that did not."""
    passed: list[Candidate] = []
    errors: list[RowError] = []
    for line, row in rows:
        checked = _check_one(line, row, columns, region, now)
        if isinstance(checked, Candidate):
            passed.append(checked)
        else:
            errors += checked
    return passed, errors


def merge(earlier: Candidate, later: Candidate) -> None:
    """Fold a later row about the same number into an earlier one: the later row's non-empty values win,
    tags and custom fields add up, an opt-out or consent in either is kept (the later consent wins)."""
    earlier.lines += later.lines
    earlier.profile.update(later.profile)
    earlier.custom.update(later.custom)
    earlier.tags |= later.tags
    if later.opt_out is not None and earlier.opt_out != "blocked":
        earlier.opt_out = later.opt_out
    if later.consent is not None:
        earlier.consent = later.consent


# -- what the store needs, worked out beside the reading (in the pool) -----------------------------

# The columns of a new member's row, in the order Candidate.row gives them.
MEMBER_COLUMNS = (
    "community_id",
    "phone",
    "state",
    *PROFILE_FIELDS,
    "region",
    "time_zone",
    "time_zones",
    "custom",
    "joined_at",
    "created_at",
    "updated_at",
)
_OPTED_OUT = (MemberState.unsubscribed, MemberState.blocked)
# json.dumps(..., ensure_ascii=False) builds a new encoder at every call: a tenth of the time spent
# on a row that passed its checks.
_to_json = json.JSONEncoder(ensure_ascii=False).encode


@dataclass(frozen=True)
class Job:
    """What checking and preparing a chunk depends on, sent once with each chunk."""

    columns: ColumnMap
    region: str | None
    now: datetime
    key: bytes
    file: str
    community_id: int
    sqlite: bool


def stored_time(value: datetime | None, sqlite: bool) -> Any:
    """A time as the driver takes it for a UTCDateTime column (naive UTC; text on SQLite)."""
    if value is None:
        return None
    naive = value.astimezone(UTC).replace(tzinfo=None)
    return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else naive


# Rows of a file repeat the same few places and number prefixes.
@lru_cache(maxsize=16_384)
def _zones(
    number_zones: tuple[str, ...], region: str | None, country: str | None, postcode: str | None, city: str | None
) -> tuple[str | None, str]:
    """member_zones, from the zones found while the number was checked: (zone, every zone as JSON)."""
    zone, zones = choose_zones(number_zones, region, country or None, postcode or None, city or None)
    return zone, json.dumps(list(zones))


def initial_state(opt_out: str | None, consent: object) -> MemberState:
    """A new member's state: an opt-out in the file, else subscribed with consent, else pending."""
    if opt_out is not None:
        return MemberState(opt_out)
    return MemberState.subscribed if consent is not None else MemberState.pending


def evidence(consent: tuple[str, str, int] | None, lines: Sequence[int], state: MemberState, file: str) -> str:
    """The consent ledger's evidence (JSON) for a change to ``state`` made by this import."""
    found: dict[str, Any] = {"file": file}
    if state is MemberState.subscribed and consent is not None:
        source, at, line = consent
        found.update(line=line, consent_source=source, consent_at=at)
    elif state in _OPTED_OUT:
        found.update(line=lines[-1], state_column=state.value)
    else:
        found.update(line=lines[0], consent=None)
    return _to_json(found)


def prepare_chunk(rows: Sequence[tuple[int, Sequence[str]]], job: Job) -> tuple[list[tuple[Any, ...]], list[RowError]]:
    """Check rows, merge those about the same number, and work out each number's new row.

    Each number comes back as the fields of a Prepared, in a plain tuple: from a pool, unpickling a
    named tuple costs several times more (``Prepared._make`` turns it back).
    """
    passed, errors = check_rows(rows, job.columns, job.region, job.now)
    by_phone: dict[str, Candidate] = {}
    for candidate in passed:
        earlier = by_phone.get(candidate.phone)
        if earlier is None:
            by_phone[candidate.phone] = candidate
        else:
            merge(earlier, candidate)
    now = stored_time(job.now, job.sqlite)
    prepared = []
    for c in by_phone.values():
        state = initial_state(c.opt_out, c.consent)
        get = c.profile.get
        birthday = get("birthday")
        joined = c.consent[1] if state is MemberState.subscribed and c.consent else None
        zone, zones = _zones(c.number_zones, c.region, get("country"), get("postcode"), get("city"))
        row = (
            job.community_id,
            c.phone,
            state.value,
            get("first_name"),
            get("last_name"),
            get("email"),
            get("city"),
            get("postcode"),
            get("country") or c.region,
            birthday.isoformat() if birthday is not None and job.sqlite else birthday,
            get("language"),
            member_region(c.phone, get("country"), get("postcode"), c.region),
            zone,
            zones,
            _to_json(c.custom) if c.custom else "{}",
            None if joined is None else stored_time(datetime.fromisoformat(joined), job.sqlite),
            now,
            now,
        )
        prepared.append(
            (
                c.phone,
                tuple(c.lines),
                row,
                evidence(c.consent, c.lines, state, job.file),
                tuple(sorted(c.tags)),
                c.profile,
                c.custom,
                c.opt_out,
                c.consent,
            )
        )
    return prepared, errors
