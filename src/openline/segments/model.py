"""Filters as values: the node types, their canonical construction, and the JSON form.

JSON form (one object per node)::

    {"and": [F, ...]}   {"or": [F, ...]}   {"not": F}
    {"field": "country", "op": "=", "value": "IT"}
    {"field": "custom.tier", "type": "choice", "op": "in", "value": ["gold", "silver"]}
    {"tag": "milan"}
    {"engagement": "replied", "days": 30}

Nodes are built canonical: nested ``and`` in ``and`` (``or`` in ``or``) is flattened and a one-item
``and``/``or`` is its item, so equal meanings written alike compare equal. ``{"and": []}`` is everyone,
``{"or": []}`` nobody.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from openline.segments.fields import (
    MAX_DAYS,
    PRESENCE,
    Engagement,
    FieldType,
    FilterError,
    Op,
    Value,
    check_op,
    check_tag,
    check_value,
    resolve_field,
)

__all__ = [
    "Activity",
    "And",
    "Condition",
    "Filter",
    "Not",
    "Or",
    "Tag",
    "activity",
    "all_of",
    "any_of",
    "condition",
    "from_json",
    "to_json",
]

MAX_DEPTH = 64
T = TypeVar("T")


@dataclass(frozen=True)
class Condition:
    """``field op value``; ``type`` is set for custom fields only (and not for is set / is not set)."""

    field: str
    op: Op
    value: Value = None
    type: FieldType | None = None


@dataclass(frozen=True)
class Tag:
    name: str


@dataclass(frozen=True)
class Activity:
    """The member replied / received / clicked within the last ``days`` days (None: ever)."""

    engagement: Engagement
    days: int | None = None


@dataclass(frozen=True)
class And:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    item: Filter


Filter = Condition | Tag | Activity | And | Or | Not


def all_of(*items: Filter) -> Filter:
    """``a and b and ...``, flattened; everyone when empty."""
    flat = tuple(part for item in items for part in (item.items if isinstance(item, And) else (item,)))
    return flat[0] if len(flat) == 1 else And(flat)


def any_of(*items: Filter) -> Filter:
    """``a or b or ...``, flattened; nobody when empty."""
    flat = tuple(part for item in items for part in (item.items if isinstance(item, Or) else (item,)))
    return flat[0] if len(flat) == 1 else Or(flat)


def condition(
    field: str,
    op: Op | str,
    value: object = None,
    type: FieldType | str | None = None,
    *,
    from_text: bool = False,
) -> Condition:
    """A checked condition. A custom field's type, when not given, follows its value: numbers make a
    number field, dates a date field, anything else a text field."""
    return located_condition(field, op, value, type, from_text=from_text)


# Moves an error about one part of a condition ("field", "op", "type" or "value") to where that part
# was written: a JSON path or a column of the text form.
Place = Callable[[str, FilterError], FilterError]


def located_condition(
    field: str, op: object, value: object, type: object, *, from_text: bool, place: Place | None = None
) -> Condition:
    """`condition`, with each error placed by ``place`` at the part it is about."""

    def checked(part: str, check: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return check(*args, **kwargs)
        except FilterError as exc:
            if place is None:
                raise
            raise place(part, exc) from None

    operator = checked("op", _op, op)
    field_type = checked("type", _field_type, type)
    spec = checked("field", resolve_field, field, field_type)
    if spec.custom_key is not None:
        if operator in PRESENCE:
            field_type = None  # presence ignores the value's type: any non-empty value counts
        elif field_type is None:
            field_type = _type_of(value)
        spec = resolve_field(spec.name, field_type)
    checked("op", check_op, spec, operator)
    value = checked("value", check_value, spec, operator, value, from_text=from_text)
    return Condition(spec.name, operator, value, field_type)


def _located(path: str, check: Callable[..., T], *args: Any) -> T:
    try:
        return check(*args)
    except FilterError as exc:
        raise FilterError(exc.reason, path=path) from None


def activity(engagement: Engagement | str, days: object = None) -> Activity:
    try:
        kind = Engagement(engagement)
    except ValueError:
        raise FilterError(
            f"unknown engagement {engagement!r}; it is one of {', '.join(e.value for e in Engagement)}"
        ) from None
    if days is None:
        return Activity(kind)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise FilterError(f"days is a whole number from 1 to {MAX_DAYS}, or null for ever (got {days!r})")
    return Activity(kind, days)


def _op(op: object) -> Op:
    if not isinstance(op, str):
        raise FilterError(f"op is an operator such as '=' (got {op!r})")
    try:
        return Op(op)
    except ValueError:
        raise FilterError(f"unknown operator {op!r}; operators are {', '.join(o.value for o in Op)}") from None


def _field_type(value: object) -> FieldType | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise FilterError(f"type is one of {', '.join(t.value for t in FieldType)} (got {value!r})")
    try:
        return FieldType(value)
    except ValueError:
        raise FilterError(
            f"unknown field type {value!r}; custom fields are {', '.join(t.value for t in FieldType)}"
        ) from None


def _type_of(value: object) -> FieldType:
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if items and all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
        return FieldType.number
    if items and all(isinstance(v, date) for v in items):
        return FieldType.date
    return FieldType.text


def to_json(node: Filter) -> dict[str, Any]:
    """The JSON form of a filter (what `from_json` reads back as an equal filter)."""
    if isinstance(node, And):
        return {"and": [to_json(item) for item in node.items]}
    if isinstance(node, Or):
        return {"or": [to_json(item) for item in node.items]}
    if isinstance(node, Not):
        return {"not": to_json(node.item)}
    if isinstance(node, Tag):
        return {"tag": node.name}
    if isinstance(node, Activity):
        out: dict[str, Any] = {"engagement": node.engagement.value}
        if node.days is not None:
            out["days"] = node.days
        return out
    out = {"field": node.field, "op": node.op.value}
    if node.type is not None:
        out["type"] = node.type.value
    if isinstance(node.value, tuple):
        out["value"] = [_json_scalar(v) for v in node.value]
    elif node.value is not None:
        out["value"] = _json_scalar(node.value)
    return out


def _json_scalar(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


SHAPES: dict[str, frozenset[str]] = {
    "and": frozenset({"and"}),
    "or": frozenset({"or"}),
    "not": frozenset({"not"}),
    "tag": frozenset({"tag"}),
    "engagement": frozenset({"engagement", "days"}),
    "field": frozenset({"field", "op", "value", "type"}),
}


def from_json(data: object) -> Filter:
    """Read and check a filter in its JSON form; a FilterError names the path of what is wrong."""
    return _read(data, "", 0)


def _read(data: object, path: str, depth: int) -> Filter:
    if depth > MAX_DEPTH:
        raise FilterError(f"filters nest at most {MAX_DEPTH} deep", path=path or None)
    if not isinstance(data, Mapping):
        raise FilterError(f"a filter is a JSON object (got {type(data).__name__})", path=path or None)
    kinds = [key for key in SHAPES if key in data]
    if len(kinds) != 1:
        found = ", ".join(map(repr, data)) or "no keys"
        raise FilterError(
            f"a filter object has exactly one of the keys {', '.join(SHAPES)} (found {found})", path=path or None
        )
    kind = kinds[0]
    unknown = [key for key in data if key not in SHAPES[kind]]
    if unknown:
        allowed = ", ".join(sorted(SHAPES[kind]))
        raise FilterError(f"unknown key {unknown[0]!r} in a {kind} filter (keys: {allowed})", path=path or None)
    here = f"{path}." if path else ""
    if kind in ("and", "or"):
        return _read_list(kind, data[kind], f"{here}{kind}", depth)
    if kind == "not":
        return Not(_read(data["not"], f"{here}not", depth + 1))
    if kind == "tag":
        return Tag(_located(f"{here}tag", check_tag, data["tag"]))
    if kind == "engagement":
        return _located(path or "engagement", activity, data["engagement"], data.get("days"))
    if not isinstance(data["field"], str):
        raise FilterError(f"field is a name such as country (got {data['field']!r})", path=f"{here}field")
    if "op" not in data:
        raise FilterError("a field filter needs an op", path=path or None)

    def place(part: str, exc: FilterError) -> FilterError:
        return FilterError(exc.reason, path=f"{here}{part}")

    return located_condition(
        data["field"], data["op"], data.get("value"), data.get("type"), from_text=False, place=place
    )


def _read_list(kind: str, items: object, path: str, depth: int) -> Filter:
    if not isinstance(items, list):
        raise FilterError(f"{kind} takes a list of filters", path=path)
    read: Iterable[Filter] = [_read(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(items)]
    return all_of(*read) if kind == "and" else any_of(*read)
