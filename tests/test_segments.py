"""Segment filters as language: the text and JSON forms, their errors, and their round trips."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openline.segments import (
    Activity,
    And,
    Condition,
    Engagement,
    FieldType,
    Filter,
    FilterError,
    Not,
    Op,
    Or,
    Tag,
    activity,
    all_of,
    any_of,
    condition,
    from_json,
    parse_filter,
    parse_text,
    to_json,
    to_text,
)
from openline.states import MemberState

HOSTILE = [
    "'; DROP TABLE members; --",
    '" OR 1=1 --',
    "Robert'); DELETE FROM member_tags;--",
    "a%b_c/d",
    "back\\slash",
    'say "hi"',
    "O'Brien",
    "Zürich",
    "ZÜRICH",
    "東京",
    "नमस्ते",
    "🎉 party",
    "\u202eevil",
    "tab\there",
    "new\nline",
    "and",
    "NOT",
    "(x)",
    "a,b",
    "x=y",
    "20121",
    "2026-01-01",
    "-3.5",
]
# Values that differ only in case (ASCII or not) are where text comparisons go wrong, so draw them often.
CASES = ["Milan", "milan", "MILAN", "mi", "É", "é", "Zürich", "ZÜRICH", "zürich", "a", "B", "ab"]
TEXTS = [*CASES, "Rome", "rome", "São Paulo", "são paulo", *HOSTILE]
# Any text a person might type: no NUL (PostgreSQL refuses it) and no lone surrogates (not encodable).
free_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=8)
text_values = st.one_of(st.sampled_from(CASES), st.sampled_from(TEXTS), free_text)
DATES = st.dates(date(2023, 12, 1), date(2025, 4, 30))
NUMBERS = st.one_of(st.sampled_from([-3, 0, 1, 2.5, 10, 1000, 1e16, -0.5]), st.integers(-50, 50))
ORDERED = ["=", "!=", "<", "<=", ">", ">="]
PRESENCE = ["is set", "is not set"]


def _conditions(
    field: str, ops: list[str], values: st.SearchStrategy[Any], type: str | None = None, *, listed: bool = True
) -> Any:
    choices = [
        st.builds(condition, st.just(field), st.sampled_from(ops), values, st.just(type)),
        st.builds(condition, st.just(field), st.sampled_from(PRESENCE)),
    ]
    if listed:
        choices.append(st.builds(lambda vs: condition(field, "in", vs, type), st.lists(values, min_size=1, max_size=3)))
    return st.one_of(*choices)


def _custom(key: str) -> Any:
    field = f"custom.{key}"
    return st.one_of(
        _conditions(field, [*ORDERED, "contains", "startswith"], text_values, "text"),
        _conditions(field, ORDERED, NUMBERS, "number"),
        _conditions(field, ORDERED, DATES, "date"),
        _conditions(field, ["=", "!="], st.sampled_from(["gold", "Gold", "silver", "10"]), "choice"),
    )


TEXT_FIELDS = ["first_name", "last_name", "city", "postcode", "email", "language"]
leaves = st.one_of(
    st.sampled_from(TEXT_FIELDS).flatmap(lambda f: _conditions(f, [*ORDERED, "contains", "startswith"], text_values)),
    _conditions("country", ["=", "!="], st.sampled_from(["IT", "it", "US", "GB", "In"])),
    _conditions("region", ["=", "!="], st.sampled_from(["US-CA", "us-ca", "CA-ON", "US-NY", "IT-25"])),
    _conditions("state", ["=", "!="], st.sampled_from([s.value for s in MemberState])),
    # Ages around those of people born near leap days in 2000-2007, seen in 2024-2025.
    _conditions("age", ORDERED, st.one_of(st.integers(16, 25), st.integers(0, 80))),
    st.sampled_from(["joined", "created"]).flatmap(lambda f: _conditions(f, ORDERED, DATES, listed=False)),
    st.builds(condition, st.sampled_from(["joined", "created"]), st.just("within"), st.integers(1, 400)),
    st.sampled_from(["tier", "score", "since", "note"]).flatmap(_custom),
    st.builds(Tag, st.one_of(st.sampled_from(["milan", "Milan", "rome", "vip", *HOSTILE[:4]]), free_text)),
    st.builds(activity, st.sampled_from(list(Engagement)), st.one_of(st.none(), st.integers(1, 400))),
)
filters: st.SearchStrategy[Filter] = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda items: all_of(*items)),
        st.lists(children, max_size=3).map(lambda items: any_of(*items)),
        children.map(Not),
    ),
    max_leaves=8,
)


@settings(max_examples=300)
@given(filters)
def test_the_text_form_reads_back_as_the_same_filter(node: Filter) -> None:
    written = to_text(node)
    assert parse_text(written) == node, written
    assert to_text(parse_text(written)) == written


@settings(max_examples=300)
@given(filters)
def test_the_json_form_reads_back_as_the_same_filter(node: Filter) -> None:
    data = json.loads(json.dumps(to_json(node)))
    assert from_json(data) == node
    assert parse_filter(json.dumps(data)) == node


@pytest.mark.parametrize(
    "text",
    [
        "country = IT and tag milan and not replied within 30 days",
        "age >= 18 and (city = Milan or city = Rome) and joined after 2026-11-01",
        "custom.tier in (gold, silver)",
        "AGE >= 18 AND NOT (City = milan OR city = \"Rome\") or tag 'two words'",
        "((state = subscribed))",
        "custom.n >= 1e3 or custom.d on 2026-01-01 and created within 1 day or nobody and not everyone",
    ],
)
def test_format_of_parse_parses_to_the_same_structure(text: str) -> None:
    first = parse_text(text)
    assert parse_text(to_text(first)) == first


def test_the_readme_examples_mean_what_they_say() -> None:
    assert parse_text("country = IT and tag milan and not replied within 30 days") == And(
        (
            Condition("country", Op.eq, "IT"),
            Tag("milan"),
            Not(Activity(Engagement.replied, 30)),
        )
    )
    assert parse_text("age >= 18 and (city = Milan or city = Rome) and joined after 2026-11-01") == And(
        (
            Condition("age", Op.ge, 18),
            Or((Condition("city", Op.eq, "Milan"), Condition("city", Op.eq, "Rome"))),
            Condition("joined", Op.gt, date(2026, 11, 1)),
        )
    )
    assert parse_text("custom.tier in (gold, silver)") == Condition(
        "custom.tier", Op.in_, ("gold", "silver"), FieldType.text
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = 1 or b = 2 and c = 3", "or"),  # and binds tighter than or
        ("not a = 1 and b = 2", "and"),  # not binds tighter than and
    ],
)
def test_precedence(text: str, expected: str) -> None:
    node = parse_text(text.replace("a ", "custom.a ").replace("b ", "custom.b ").replace("c ", "custom.c "))
    assert next(iter(to_json(node))) == expected


def test_chains_flatten_and_parentheses_group() -> None:
    a, b, c = (Tag(x) for x in "abc")
    assert parse_text("tag a and tag b and tag c") == And((a, b, c))
    assert parse_text("(tag a and tag b) and tag c") == And((a, b, c))
    assert parse_text("tag a or (tag b and tag c)") == Or((a, And((b, c))))
    assert parse_text("not not tag a") == Not(Not(a))
    assert parse_text("everyone") == And(()) and parse_text("nobody") == Or(())
    assert from_json({"and": [{"tag": "a"}]}) == a
    assert to_text(And((a, Or((b, c))))) == "tag a and (tag b or tag c)"


def test_values_are_read_for_their_field() -> None:
    # Built-in fields know their type: a postcode is text even when it looks like a number.
    assert parse_text("postcode = 20121") == Condition("postcode", Op.eq, "20121")
    assert parse_text("country = it") == Condition("country", Op.eq, "IT")
    assert parse_text("state = Subscribed") == Condition("state", Op.eq, "subscribed")
    assert parse_text("joined on 2026-11-01").op is Op.eq
    assert parse_text("created before 2026-11-01").op is Op.lt
    assert parse_text("joined within 1 day") == Condition("joined", Op.within, 1)
    # Custom fields take their type from how values are written, or from :type.
    assert parse_text("custom.score >= 10").type is FieldType.number
    assert parse_text("custom.score >= -2.5e3").value == -2500.0
    assert parse_text("custom.renewal < 2027-01-01").type is FieldType.date
    assert parse_text('custom.code = "123"') == Condition("custom.code", Op.eq, "123", FieldType.text)
    assert parse_text("custom.tier:choice = gold").type is FieldType.choice
    assert parse_text("custom.code:text = 123") == Condition("custom.code", Op.eq, "123", FieldType.text)
    assert parse_text("custom.code contains 12").type is FieldType.text
    assert parse_text("custom.tier:number is set") == Condition("custom.tier", Op.is_set)
    assert parse_text("replied") == Activity(Engagement.replied)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_strings_are_just_values(value: str) -> None:
    node = condition("city", "=", value)
    written = to_text(node)
    assert parse_text(written) == node
    assert parse_text(f"city contains {written.split(' = ', 1)[1]}") == condition("city", "contains", value)
    assert parse_text(f"tag {to_text(Tag(value)).removeprefix('tag ')}") == Tag(value)
    assert from_json(json.loads(json.dumps(to_json(node)))) == node


def test_quoted_text_escapes() -> None:
    assert parse_text(r"city = 'O\'Brien'") == condition("city", "=", "O'Brien")
    assert parse_text(r'city = "a \"b\" \\ c"') == condition("city", "=", 'a "b" \\ c')
    assert parse_text("city = São") == condition("city", "=", "São")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "column 1: expected a condition"),
        ("country = ", "column 11: expected a value after '='"),
        ("country IT", "column 9: expected an operator"),
        ("(city = a", "column 10: expected ')' to close the '(' at column 1"),
        ("city = a b", "column 10: expected 'and', 'or' or the end of the filter, found 'b'"),
        ("city = 'abc", "column 12: expected a closing ' for the quoted text opened at column 8"),
        (r"city = 'a\b'", "column 10: expected \\\\, \\\" or \\'"),
        ("city ! a", "column 6: expected '!='"),
        ("city in ()", "column 10: expected a value in the list"),
        ("city in (a b)", "column 12: expected ',' or ')' to end the list"),
        ("city is nothing", "column 9: expected 'set' or 'not set'"),
        ("replied within x days", "column 16: expected a whole number of days after 'within'"),
        ("replied within 3 weeks", "column 18: expected 'days'"),
        ("tag", "column 4: expected a tag after 'tag'"),
        ("and = 3", "column 1: expected a condition"),
        ("contry = IT", "column 1: unknown field 'contry'; did you mean country?"),
        ("age >= abc", "column 8: expected a whole number of years (got 'abc')"),
        ("age >= 300", "column 8: age takes 0 to 200 years"),
        ("joined after 2026-13-01", "column 14: joined takes a date written YYYY-MM-DD (got '2026-13-01')"),
        ("age after 2020-01-01", "column 5: 'after' compares dates"),
        ("country = ITA", "column 11: country takes a two-letter ISO 3166 code"),
        ("state = gone", "column 9: state is one of new, pending, subscribed, unsubscribed, blocked"),
        ("country < IT", "column 9: country does not take '<'"),
        ("city within 3 days", "column 6: city does not take 'within'"),
        ("custom.tier:colour = x", "column 1: unknown field type 'colour'"),
        ("custom.tier: = x", "column 1: expected a type after ':'"),
        ("custom.1x = 3", "column 1: 'custom.1x' is not a custom field name"),
        ("custom.n:number = abc", "column 19: custom.n is a number field; 'abc' is not a number"),
        ("custom.t:choice contains x", "column 17: custom.t does not take 'contains'"),
        ("city:text = x", "column 1: city is a built-in field"),
        ("city = ''", "column 8: a value cannot be empty"),
        ("replied within 0 days", "column 16: days is a whole number from 1 to 36500"),
        ("(" * 70 + "tag a" + ")" * 70, "nest at most 64 deep"),
    ],
)
def test_parse_errors_say_where_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_text(text)
    assert str(caught.value).startswith(message) or message in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a filter is a JSON object (got list)"),
        ({}, "a filter object has exactly one of the keys"),
        ({"tag": "a", "field": "city"}, "exactly one of the keys"),
        ({"tag": "a", "x": 1}, "unknown key 'x' in a tag filter"),
        ({"and": {"tag": "a"}}, "and: and takes a list of filters"),
        ({"and": [{"tag": 1}]}, "and[0].tag: a tag is a text (got the number 1)"),
        ({"or": [{"tag": "a"}, {"field": "x", "op": "="}]}, "or[1].field: unknown field 'x'"),
        ({"not": {"field": "city", "op": "~", "value": "a"}}, "not.op: unknown operator '~'"),
        ({"field": "city", "value": "a"}, "a field filter needs an op"),
        ({"field": 3, "op": "="}, "field: field is a name"),
        ({"field": "age", "op": ">=", "value": "18"}, "value: expected a whole number of years (got '18')"),
        ({"field": "age", "op": ">=", "value": True}, "value: expected a whole number of years (got the boolean true)"),
        ({"field": "city", "op": "=", "value": 3}, "value: city takes text (got the number 3)"),
        ({"field": "city", "op": "in", "value": "a"}, "value: 'in' takes a list of values"),
        ({"field": "city", "op": "in", "value": []}, "value: 'in' takes 1 to 1000 values"),
        ({"field": "city", "op": "is set", "value": "a"}, "value: 'is set' takes no value"),
        ({"field": "city", "op": "=", "value": "a\x00"}, "value: a value cannot contain the NUL character"),
        ({"field": "custom.n", "type": "number", "op": "=", "value": "x"}, "value: custom.n is a number field"),
        ({"field": "custom.n", "type": "number", "op": "=", "value": 1e400}, "takes a finite number"),
        ({"field": "custom.n", "op": "=", "value": 10**400}, "takes a finite number"),
        ({"field": "custom.d", "type": "date", "op": "<", "value": "2026-02-30"}, "takes a date written YYYY-MM-DD"),
        ({"field": "custom.t", "type": "choice", "op": "<", "value": "a"}, "op: custom.t does not take '<'"),
        ({"field": "custom.t", "type": 5, "op": "=", "value": "a"}, "type: type is one of text, number, date, choice"),
        ({"engagement": "opened"}, "engagement: unknown engagement 'opened'"),
        ({"engagement": "replied", "days": 0}, "days is a whole number from 1 to 36500"),
        ({"and": [{"not": {"tag": ""}}]}, "and[0].not.tag: a value cannot be empty"),
    ],
)
def test_json_errors_name_the_path(data: object, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        from_json(data)
    assert message in str(caught.value), str(caught.value)


def test_json_custom_types_follow_the_value_unless_given() -> None:
    assert from_json({"field": "custom.n", "op": ">", "value": 3}).type is FieldType.number  # type: ignore[union-attr]
    assert from_json({"field": "custom.n", "op": "in", "value": [1, 2.5]}).type is FieldType.number  # type: ignore[union-attr]
    assert from_json({"field": "custom.n", "op": "=", "value": "3"}).type is FieldType.text  # type: ignore[union-attr]
    dated = from_json({"field": "custom.d", "type": "date", "op": "<", "value": "2026-01-02"})
    assert dated == Condition("custom.d", Op.lt, date(2026, 1, 2), FieldType.date)
    assert to_json(dated) == {"field": "custom.d", "op": "<", "type": "date", "value": "2026-01-02"}


def test_parse_filter_reads_json_or_text() -> None:
    assert parse_filter(' {"tag": "milan"}') == Tag("milan")
    assert parse_filter("tag milan") == Tag("milan")
    with pytest.raises(FilterError, match=r"^column 13: not valid JSON"):
        parse_filter('{"tag": "a",}')
