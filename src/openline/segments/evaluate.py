"""Filters in plain Python over one member: the same answers as the SQL in `openline.segments.query`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from openline.segments.fields import ISO_DATE, Engagement, Kind, Op, Scalar, resolve_field
from openline.segments.model import Activity, And, Condition, Filter, Not, Or, Tag

__all__ = ["MemberFacts", "age", "matches"]

ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class MemberFacts:
    """What a filter can ask about one member.

    ``profile``: the member's ``members`` columns by name (``birthday`` a date, ``joined_at`` and
    ``created_at`` aware datetimes, ``custom`` a dict); ``latest``: when the member last replied,
    received a sent text and clicked a link (absent: never).
    """

    profile: Mapping[str, Any]
    tags: frozenset[str] = frozenset()
    latest: Mapping[Engagement, datetime] = field(default_factory=dict)


def age(birthday: date, today: date) -> int:
    """Whole years from ``birthday`` to ``today``."""
    return today.year - birthday.year - ((today.month, today.day) < (birthday.month, birthday.day))


def matches(node: Filter, facts: MemberFacts, *, now: datetime) -> bool:
    """Whether the member matches the filter at ``now`` (an aware datetime)."""
    if isinstance(node, And):
        return all(matches(item, facts, now=now) for item in node.items)
    if isinstance(node, Or):
        return any(matches(item, facts, now=now) for item in node.items)
    if isinstance(node, Not):
        return not matches(node.item, facts, now=now)
    if isinstance(node, Tag):
        return node.name in facts.tags
    if isinstance(node, Activity):
        last = facts.latest.get(node.engagement)
        return last is not None and (node.days is None or last >= now - timedelta(days=node.days))
    return _condition(node, facts, now)


def _condition(node: Condition, facts: MemberFacts, now: datetime) -> bool:
    if node.op is Op.ne:
        return not _condition(Condition(node.field, Op.eq, node.value, node.type), facts, now)
    if node.op is Op.is_not_set:
        return not _condition(Condition(node.field, Op.is_set, None, node.type), facts, now)
    spec = resolve_field(node.field, node.type)
    if spec.custom_key is not None:
        custom = facts.profile.get("custom") or {}
        present = isinstance(custom, Mapping) and spec.custom_key in custom
        value = custom[spec.custom_key] if present else None
        if node.op is Op.is_set:
            return present and value is not None and value != ""
        return _custom(spec.kind, node, value)
    value = facts.profile.get(spec.column or "")
    if value is None or value == "":  # empty text is no value
        return False
    if node.op is Op.is_set:
        return True
    if spec.kind is Kind.age:
        today = now.astimezone(UTC).date()
        return _compare(node.op, age(value, today), node.value, lambda v: v)
    if spec.kind is Kind.moment:
        if node.op is Op.within:
            assert isinstance(node.value, int)
            return bool(value >= now - timedelta(days=node.value))
        return _compare(node.op, value.astimezone(UTC).date(), node.value, lambda v: v)
    if spec.kind is Kind.text:
        return _compare(node.op, _fold(value), node.value, _fold)
    return _compare(node.op, value, node.value, lambda v: v)


def _custom(kind: Kind, node: Condition, value: object) -> bool:
    if kind is Kind.number:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return _compare(node.op, float(value), node.value, float)
    if not isinstance(value, str) or not value:
        return False
    if kind is Kind.text:
        return _compare(node.op, _fold(value), node.value, _fold)
    if kind is Kind.date:
        if not ISO_DATE.match(value):
            return False
        return _compare(node.op, value[:10], node.value, lambda d: d.isoformat())
    return _compare(node.op, value, node.value, lambda v: v)


def _fold(value: Any) -> Any:
    return value.translate(ASCII_LOWER) if isinstance(value, str) else value


def _compare(op: Op, actual: Any, expected: object, convert: Callable[[Any], Any]) -> bool:
    if op is Op.in_:
        assert isinstance(expected, tuple)
        return any(actual == convert(v) for v in expected)
    bound: Scalar = convert(expected)
    if op is Op.eq:
        return bool(actual == bound)
    if op is Op.lt:
        return bool(actual < bound)
    if op is Op.le:
        return bool(actual <= bound)
    if op is Op.gt:
        return bool(actual > bound)
    if op is Op.ge:
        return bool(actual >= bound)
    if op is Op.contains:
        return isinstance(bound, str) and bound in actual
    if op is Op.starts_with:
        return isinstance(bound, str) and bool(actual.startswith(bound))
    raise ValueError(f"{op.value!r} cannot compare values here")
