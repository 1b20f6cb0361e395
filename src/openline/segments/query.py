"""Filters as SQL: one parameterised SQLAlchemy Core expression over ``members``, for SQLite and PostgreSQL.

Every value is a bound parameter. Each condition is two-valued (true or false, never NULL), so ``not``
means exactly "every member for whom the condition is false": a comparison with a field the member has
not set (NULL, or empty text) is false, and ``!=`` is ``not =``. Comparisons of free text fold ASCII
letters to lower case and order by code point on both databases, exactly as
`openline.segments.evaluate` does in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from openline.db import schema
from openline.segments.fields import Engagement, Field, FilterError, Kind, Op, Scalar, resolve_field
from openline.segments.model import Activity, And, Condition, Filter, Not, Or, Tag, from_json
from openline.states import Direction, MessageState

__all__ = ["count_members", "member_filter", "member_ids", "years_before"]

members = schema.members
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class _folded(FunctionElement[str]):
    """Text with ASCII letters lower-cased, compared by code point (PostgreSQL's own lower() and
    collations follow the locale; SQLite's lower() and BINARY collation do this already)."""

    type = sa.String()
    inherit_cache = True
    name = "folded"


@compiles(_folded)
def _folded_sqlite(element: _folded, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(_folded, "postgresql")
def _folded_postgresql(element: _folded, compiler: SQLCompiler, **kw: Any) -> str:
    return f"translate({compiler.process(element.clauses, **kw)}, '{UPPER}', '{UPPER.lower()}') COLLATE \"C\""


class _bytewise(FunctionElement[str]):
    """Text compared by code point."""

    type = sa.String()
    inherit_cache = True
    name = "bytewise"


@compiles(_bytewise)
def _bytewise_sqlite(element: _bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(_bytewise, "postgresql")
def _bytewise_postgresql(element: _bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "C"'


class _json_kind(FunctionElement[str]):
    """The JSON type of ``custom[key]`` in PostgreSQL's words (string, number, boolean, null, object,
    array), NULL when the key is missing. Arguments: the JSON column, the key."""

    type = sa.String()
    inherit_cache = True
    name = "json_kind"


@compiles(_json_kind)
def _json_kind_sqlite(element: _json_kind, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(c, **kw) for c in element.clauses)
    return (
        f"CASE json_type({column}, '$.' || {key}) WHEN 'text' THEN 'string' WHEN 'integer' THEN 'number' "
        "WHEN 'real' THEN 'number' WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' "
        "WHEN 'null' THEN 'null' WHEN 'object' THEN 'object' WHEN 'array' THEN 'array' END"
    )


@compiles(_json_kind, "postgresql")
def _json_kind_postgresql(element: _json_kind, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(c, **kw) for c in element.clauses)
    return f"json_typeof({column} -> {key})"


class _json_text(FunctionElement[str]):
    """``custom[key]`` as SQL text (a number's digits on PostgreSQL, the number on SQLite)."""

    type = sa.String()
    inherit_cache = True
    name = "json_text"


@compiles(_json_text)
def _json_text_sqlite(element: _json_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(c, **kw) for c in element.clauses)
    return f"json_extract({column}, '$.' || {key})"


@compiles(_json_text, "postgresql")
def _json_text_postgresql(element: _json_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} ->> {key})"


class _iso_date(FunctionElement[bool]):
    """Whether text starts with YYYY-MM-DD (ASCII digits)."""

    type = sa.Boolean()
    inherit_cache = True
    name = "iso_date"


@compiles(_iso_date)
def _iso_date_sqlite(element: _iso_date, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*')"


@compiles(_iso_date, "postgresql")
def _iso_date_postgresql(element: _iso_date, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(({compiler.process(element.clauses, **kw)}) COLLATE \"C\" ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')"


def member_filter(node: Filter, *, now: datetime) -> sa.ColumnElement[bool]:
    """The WHERE condition for ``node`` over ``members``; ``now`` (aware) anchors ages and "within"."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return _sql(node, now)


def member_ids(community_id: int, node: Filter | Mapping[str, Any], *, now: datetime) -> sa.Select[tuple[int]]:
    """``SELECT members.id`` of the community's members matching the filter (unordered)."""
    checked = node if not isinstance(node, Mapping) else from_json(node)
    return sa.select(members.c.id).where(members.c.community_id == community_id, member_filter(checked, now=now))


def count_members(conn: sa.Connection, community_id: int, node: Filter | Mapping[str, Any], now: datetime) -> int:
    """How many of the community's members match the filter now."""
    checked = node if not isinstance(node, Mapping) else from_json(node)
    query = (
        sa.select(sa.func.count())
        .select_from(members)
        .where(members.c.community_id == community_id, member_filter(checked, now=now))
    )
    return int(conn.execute(query).scalar_one())


def _sql(node: Filter, now: datetime) -> sa.ColumnElement[bool]:
    if isinstance(node, And):
        return sa.and_(sa.true(), *(_sql(item, now) for item in node.items))
    if isinstance(node, Or):
        return sa.or_(sa.false(), *(_sql(item, now) for item in node.items))
    if isinstance(node, Not):
        return sa.not_(_sql(node.item, now))
    if isinstance(node, Tag):
        tags = schema.member_tags
        return sa.exists().where(tags.c.member_id == members.c.id, tags.c.tag == node.name)
    if isinstance(node, Activity):
        return _activity(node, now)
    return _condition(node, now)


def _activity(node: Activity, now: datetime) -> sa.ColumnElement[bool]:
    since = None if node.days is None else now - timedelta(days=node.days)
    where: list[sa.ColumnElement[bool]]
    if node.engagement is Engagement.clicked:
        clicks = schema.link_clicks
        where = [clicks.c.member_id == members.c.id]
        if since is not None:
            where.append(clicks.c.clicked_at >= since)
        return sa.exists().where(*where)
    m = schema.messages
    # (community_id, phone) is how ix_messages_phone finds a number's texts; member_id has no index.
    where = [m.c.community_id == members.c.community_id, m.c.phone == members.c.phone]
    if node.engagement is Engagement.replied:
        where.append(m.c.direction == Direction.inbound)
        if since is not None:
            where.append(m.c.created_at >= since)
    else:
        where += [
            m.c.direction == Direction.outbound,
            m.c.state.in_([MessageState.sent, MessageState.delivered]),
            m.c.sent_at.is_not(None) if since is None else m.c.sent_at >= since,
        ]
    return sa.exists().where(*where)


def _condition(node: Condition, now: datetime) -> sa.ColumnElement[bool]:
    field = resolve_field(node.field, node.type)
    if node.op is Op.ne:
        return sa.not_(_condition(Condition(node.field, Op.eq, node.value, node.type), now))
    if node.op is Op.is_not_set:
        return sa.not_(_condition(Condition(node.field, Op.is_set, None, node.type), now))
    if field.custom_key is not None:
        return _custom(field, node)
    column = members.c[field.column or ""]
    if field.kind is Kind.age:
        return _age(column, node, now.astimezone(UTC).date())
    if field.kind is Kind.moment:
        return _moment(column, node, now)
    if node.op is Op.is_set:
        return _guarded(column, sa.true())
    if field.kind is Kind.text:
        return _guarded(column, _compare(_folded(column), node.op, node.value, _fold))
    return _guarded(column, _compare(column, node.op, node.value, lambda v: v))


def _guarded(column: sa.ColumnElement[Any], test: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """``test`` made false, not NULL, where ``column`` is unset: NULL, or empty text."""
    guards: list[sa.ColumnElement[bool]] = []
    if not isinstance(column, sa.Column) or column.nullable:
        guards.append(column.is_not(None))
    if isinstance(column.type, sa.String) and not isinstance(column.type, sa.Enum):
        guards.append(column != "")
    return sa.and_(*guards, test)


def _fold(value: Scalar) -> Scalar:
    return value.translate(ASCII_LOWER) if isinstance(value, str) else value


ASCII_LOWER = str.maketrans(UPPER, UPPER.lower())


def _compare(
    expr: sa.ColumnElement[Any], op: Op, value: object, convert: Callable[[Any], Scalar]
) -> sa.ColumnElement[bool]:
    if op is Op.in_:
        assert isinstance(value, tuple)
        return expr.in_([convert(v) for v in value])
    bound: Scalar = convert(value)
    if op is Op.eq:
        return expr == bound
    if op is Op.lt:
        return expr < bound
    if op is Op.le:
        return expr <= bound
    if op is Op.gt:
        return expr > bound
    if op is Op.ge:
        return expr >= bound
    if op is Op.contains:
        return expr.contains(bound, autoescape=True)
    if op is Op.starts_with:
        return expr.startswith(bound, autoescape=True)
    raise FilterError(f"{op.value!r} cannot compare values here")


def _custom(field: Field, node: Condition) -> sa.ColumnElement[bool]:
    key = sa.literal(field.custom_key, sa.String())
    kind = _json_kind(members.c.custom, key)
    raw = _json_text(members.c.custom, key)
    if node.op is Op.is_set:
        # Any value but JSON null or the empty text counts, whatever its type.
        return sa.and_(kind.is_not(None), kind != "null", sa.not_(sa.and_(kind == "string", raw == "")))
    if field.kind is Kind.number:
        number = sa.case((kind == "number", sa.cast(raw, sa.Float())))
        return _guarded(number, _compare(number, node.op, node.value, float))
    text = sa.case((kind == "string", raw))
    if field.kind is Kind.text:
        return _guarded(text, _compare(_folded(text), node.op, node.value, _fold))
    if field.kind is Kind.date:
        day = _bytewise(sa.func.substr(text, 1, 10))
        test = _compare(day, node.op, node.value, lambda d: d.isoformat())
        return sa.and_(text.is_not(None), _iso_date(text), test)
    return _guarded(text, _compare(text, node.op, node.value, lambda v: v))


def years_before(today: date, years: int) -> date | None:
    """The date ``years`` years before ``today`` (29 February → 28 February); None before year 1.

    Someone born on or before it is at least ``years`` old today.
    """
    year = today.year - years
    if year < 1:
        return None
    try:
        return today.replace(year=year)
    except ValueError:
        return today.replace(year=year, day=28)


def _age(birthday: sa.ColumnElement[date], node: Condition, today: date) -> sa.ColumnElement[bool]:
    def at_least(years: int) -> sa.ColumnElement[bool]:
        limit = years_before(today, years)
        return sa.false() if limit is None else sa.and_(birthday.is_not(None), birthday <= limit)

    def under(years: int) -> sa.ColumnElement[bool]:
        limit = years_before(today, years)
        return birthday.is_not(None) if limit is None else sa.and_(birthday.is_not(None), birthday > limit)

    def exactly(years: int) -> sa.ColumnElement[bool]:
        return sa.and_(at_least(years), under(years + 1))

    value = node.value
    if node.op is Op.is_set:
        return birthday.is_not(None)
    if node.op is Op.in_:
        assert isinstance(value, tuple)
        return sa.or_(sa.false(), *(exactly(v) for v in value if isinstance(v, int)))
    assert isinstance(value, int)
    tests: dict[Op, Callable[[], sa.ColumnElement[bool]]] = {
        Op.eq: lambda: exactly(value),
        Op.ge: lambda: at_least(value),
        Op.gt: lambda: at_least(value + 1),
        Op.lt: lambda: under(value),
        Op.le: lambda: under(value + 1),
    }
    return tests[node.op]()


def _moment(column: sa.ColumnElement[datetime], node: Condition, now: datetime) -> sa.ColumnElement[bool]:
    if node.op is Op.is_set:
        return column.is_not(None)
    if node.op is Op.within:
        assert isinstance(node.value, int)
        return _guarded(column, column >= now - timedelta(days=node.value))
    day = node.value
    assert isinstance(day, date)

    def before(d: date) -> sa.ColumnElement[bool]:  # earlier than day d (UTC)
        return column < datetime.combine(d, time(), UTC)

    def before_next(d: date) -> sa.ColumnElement[bool]:  # on or before day d
        return sa.true() if d == date.max else column < datetime.combine(d + timedelta(days=1), time(), UTC)

    tests: dict[Op, Callable[[], sa.ColumnElement[bool]]] = {
        Op.lt: lambda: before(day),
        Op.le: lambda: before_next(day),
        Op.ge: lambda: sa.not_(before(day)),
        Op.gt: lambda: sa.not_(before_next(day)),
        Op.eq: lambda: sa.and_(sa.not_(before(day)), before_next(day)),
    }
    return _guarded(column, tests[node.op]())
