"""What a filter can ask about: the fields, the kind of value each holds, and the operators each takes."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from openline.states import MemberState

__all__ = [
    "BUILTIN_FIELDS",
    "CUSTOM_PREFIX",
    "Engagement",
    "Field",
    "FieldType",
    "FilterError",
    "Kind",
    "Op",
    "Scalar",
    "Value",
    "check_op",
    "check_tag",
    "check_value",
    "resolve_field",
]

CUSTOM_PREFIX = "custom."
# Custom field names are identifiers, so they are safe inside a JSON path on every database.
CUSTOM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_REGION = re.compile(r"[A-Za-z]{2}-[A-Za-z0-9]{1,3}")  # ISO 3166-2: country, then the subdivision
NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
MAX_TEXT = 500
MAX_TAG = 64  # member_tags.tag
MAX_LIST = 1000
MAX_AGE = 200
MAX_DAYS = 36_500

Scalar = str | int | float | date
Value = Scalar | tuple[Scalar, ...] | None


class FilterError(ValueError):
    """A filter that cannot be read or does not make sense; the message says where and why.

    ``column`` (1-based) points into the text form; ``path`` (like ``and[1].value``) into the JSON form.
    """

    def __init__(self, reason: str, *, column: int | None = None, path: str | None = None) -> None:
        self.reason = reason
        self.column = column
        self.path = path
        where = f"column {column}: " if column is not None else f"{path}: " if path else ""
        super().__init__(where + reason)


class Op(StrEnum):
    eq = "="
    ne = "!="
    lt = "<"
    le = "<="
    gt = ">"
    ge = ">="
    in_ = "in"
    contains = "contains"
    starts_with = "startswith"
    is_set = "is set"
    is_not_set = "is not set"
    within = "within"


class FieldType(StrEnum):
    """The types a custom field can have (its values live in ``members.custom``)."""

    text = "text"
    number = "number"
    date = "date"
    choice = "choice"


class Kind(StrEnum):
    """How a field's values compare, which decides its operators and how it becomes SQL."""

    text = "text"  # free text: compared with ASCII letters case-folded, in code point order
    code = "code"  # a normalised code (country, state): exact, so its index serves
    choice = "choice"  # one of an owner's fixed values: exact
    number = "number"
    date = "date"  # an ISO date kept as text (custom date fields)
    age = "age"  # whole years from the birthday to today
    moment = "moment"  # a timestamp compared by its UTC day (joined, created)


class Engagement(StrEnum):
    replied = "replied"  # an inbound text from the member
    received = "received"  # an outbound text sent to the member
    clicked = "clicked"  # a click on one of the community's links


ORDER = (Op.lt, Op.le, Op.gt, Op.ge)
PRESENCE = (Op.is_set, Op.is_not_set)
OPERATORS: dict[Kind, tuple[Op, ...]] = {
    Kind.text: (Op.eq, Op.ne, *ORDER, Op.in_, Op.contains, Op.starts_with, *PRESENCE),
    Kind.code: (Op.eq, Op.ne, Op.in_, *PRESENCE),
    Kind.choice: (Op.eq, Op.ne, Op.in_, *PRESENCE),
    Kind.number: (Op.eq, Op.ne, *ORDER, Op.in_, *PRESENCE),
    Kind.date: (Op.eq, Op.ne, *ORDER, Op.in_, *PRESENCE),
    Kind.age: (Op.eq, Op.ne, *ORDER, Op.in_, *PRESENCE),
    Kind.moment: (Op.eq, Op.ne, *ORDER, Op.within, *PRESENCE),
}
CUSTOM_KINDS = {
    FieldType.text: Kind.text,
    FieldType.number: Kind.number,
    FieldType.date: Kind.date,
    FieldType.choice: Kind.choice,
}


@dataclass(frozen=True)
class Field:
    name: str  # as filters spell it: "country", "age", "joined", "custom.tier"
    kind: Kind
    column: str | None = None  # the members column; None for custom fields
    custom_key: str | None = None  # the key in members.custom


BUILTIN_FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("first_name", Kind.text, "first_name"),
        Field("last_name", Kind.text, "last_name"),
        Field("city", Kind.text, "city"),
        Field("postcode", Kind.text, "postcode"),
        Field("country", Kind.code, "country"),
        Field("region", Kind.code, "region"),
        Field("email", Kind.text, "email"),
        Field("language", Kind.text, "language"),
        Field("state", Kind.code, "state"),
        Field("age", Kind.age, "birthday"),
        Field("joined", Kind.moment, "joined_at"),
        Field("created", Kind.moment, "created_at"),
    )
}


def resolve_field(name: str, field_type: FieldType | None) -> Field:
    """The field a filter names; built-in names are case-insensitive, custom names are not."""
    if name[: len(CUSTOM_PREFIX)].lower() == CUSTOM_PREFIX:
        key = name[len(CUSTOM_PREFIX) :]
        if not CUSTOM_NAME.fullmatch(key):
            raise FilterError(
                f"{name!r} is not a custom field name: after 'custom.' come letters, digits and _ "
                "(not starting with a digit, at most 64)"
            )
        kind = CUSTOM_KINDS[field_type or FieldType.text]
        return Field(CUSTOM_PREFIX + key, kind, custom_key=key)
    found = BUILTIN_FIELDS.get(name.lower())
    if found is None:
        close = difflib.get_close_matches(name.lower(), BUILTIN_FIELDS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise FilterError(f"unknown field {name!r}; {hint}fields are {', '.join(BUILTIN_FIELDS)} and custom.NAME")
    if field_type is not None:
        raise FilterError(f"{found.name} is a built-in field; a type applies to custom.NAME fields only")
    return found


def check_value(field: Field, op: Op, raw: object, *, from_text: bool = False) -> Value:
    """``raw`` as the canonical value of ``field op raw``, or a FilterError saying what was expected.

    ``from_text``: values come as strings from the text form, so numbers are parsed here; the JSON form
    must give numbers as JSON numbers.
    """
    check_op(field, op)
    if op in PRESENCE:
        if raw is not None:
            raise FilterError(f"{op.value!r} takes no value")
        return None
    if op is Op.within:
        days = _whole_number(raw, from_text, "a whole number of days")
        if not 1 <= days <= MAX_DAYS:
            raise FilterError(f"within takes 1 to {MAX_DAYS} days (got {days})")
        return days
    if op is Op.in_:
        if isinstance(raw, str) or not isinstance(raw, Sequence):
            raise FilterError("'in' takes a list of values")
        if not 1 <= len(raw) <= MAX_LIST:
            raise FilterError(f"'in' takes 1 to {MAX_LIST} values (got {len(raw)})")
        return tuple(_scalar(field, item, from_text) for item in raw)
    return _scalar(field, raw, from_text)


def check_op(field: Field, op: Op) -> None:
    if op not in OPERATORS[field.kind]:
        allowed = ", ".join(OPERATORS[field.kind])
        raise FilterError(f"{field.name} does not take {op.value!r}; it takes {allowed}")


def check_tag(raw: object) -> str:
    if not isinstance(raw, str):
        raise FilterError(f"a tag is a text (got {_describe(raw)})")
    _check_text(raw, MAX_TAG)
    return raw


def _scalar(field: Field, raw: object, from_text: bool) -> Scalar:
    kind = field.kind
    if kind in (Kind.text, Kind.choice):
        if not isinstance(raw, str):
            raise FilterError(f"{field.name} takes text (got {_describe(raw)})")
        _check_text(raw, MAX_TEXT)
        return raw
    if kind is Kind.code:
        if not isinstance(raw, str):
            raise FilterError(f"{field.name} takes text (got {_describe(raw)})")
        return _code(field, raw)
    if kind is Kind.number:
        return _number(field, raw, from_text)
    if kind is Kind.age:
        years = _whole_number(raw, from_text, "a whole number of years")
        if not 0 <= years <= MAX_AGE:
            raise FilterError(f"age takes 0 to {MAX_AGE} years (got {years})")
        return years
    return _date(field, raw)


def _code(field: Field, raw: str) -> str:
    if field.name == "country":
        if not (len(raw) == 2 and raw.isascii() and raw.isalpha()):
            raise FilterError(f"country takes a two-letter ISO 3166 code such as IT or US (got {raw!r})")
        return raw.upper()
    if field.name == "region":
        if not _REGION.fullmatch(raw):
            raise FilterError(f"region takes an ISO 3166-2 code such as US-CA or CA-ON (got {raw!r})")
        return raw.upper()
    words = [s.value for s in MemberState]
    if raw.lower() not in words:
        raise FilterError(f"state is one of {', '.join(words)} (got {raw!r})")
    return raw.lower()


def _number(field: Field, raw: object, from_text: bool) -> int | float:
    if from_text and isinstance(raw, str):
        if not NUMBER.fullmatch(raw):
            raise FilterError(f"{field.name} is a number field; {raw!r} is not a number")
        raw = float(raw) if any(c in raw for c in ".eE") else int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise FilterError(f"{field.name} is a number field; it takes a number (got {_describe(raw)})")
    try:
        finite = math.isfinite(float(raw))
    except OverflowError:
        finite = False
    if not finite:
        raise FilterError(f"{field.name} takes a finite number within ±1.7e308 (got {raw!r})")
    return raw


def _whole_number(raw: object, from_text: bool, what: str) -> int:
    if from_text and isinstance(raw, str) and raw.isascii() and raw.isdigit():
        return int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise FilterError(f"expected {what} (got {_describe(raw)})")
    return raw


def _date(field: Field, raw: object) -> date:
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str) and ISO_DATE.fullmatch(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise FilterError(f"{field.name} takes a date written YYYY-MM-DD (got {_describe(raw)})")


def _check_text(text: str, limit: int) -> None:
    if not text:
        raise FilterError("a value cannot be empty (to find members without one, use 'is not set')")
    if len(text) > limit:
        raise FilterError(f"a value is at most {limit} characters (got {len(text)})")
    if "\x00" in text:
        raise FilterError("a value cannot contain the NUL character")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise FilterError("a value cannot contain unpaired surrogate characters") from None


def _describe(raw: object) -> str:
    if raw is None:
        return "nothing"
    if isinstance(raw, bool):
        return f"the boolean {str(raw).lower()}"
    if isinstance(raw, str):
        return repr(raw)
    if isinstance(raw, int | float):
        return f"the number {raw!r}"
    if isinstance(raw, list | tuple):
        return "a list"
    if isinstance(raw, dict):
        return "an object"
    return type(raw).__name__
