"""Segment filters on the database: the SQL finds exactly the members the Python evaluator picks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.db import Database, schema
from openline.segments import (
    Activity,
    And,
    Condition,
    Engagement,
    Filter,
    FilterError,
    MemberFacts,
    Not,
    Op,
    Or,
    Tag,
    age,
    count_members,
    counted_segments,
    delete_segment,
    get_segment,
    list_segments,
    matches,
    member_ids,
    parse_text,
    save_segment,
    to_text,
)
from openline.segments.fields import Kind, resolve_field
from openline.segments.query import years_before
from openline.states import Direction, MemberState, MessageKind

from .test_segments import DATES, HOSTILE, NUMBERS, filters, free_text, leaves, text_values

NOWS = [
    datetime(2024, 2, 28, 23, 30, tzinfo=UTC),
    datetime(2024, 2, 29, 12, 0, tzinfo=UTC),
    datetime(2024, 3, 1, 0, 10, tzinfo=UTC),
    datetime(2025, 2, 28, 12, 0, tzinfo=UTC),
    datetime(2025, 3, 1, 8, 0, tzinfo=UTC),
]
now0 = NOWS[0]
moments = st.datetimes(datetime(2023, 12, 1), datetime(2025, 4, 30), timezones=st.just(UTC))
LEAP_BIRTHDAYS = [date(y, m, d) for y in (2000, 2006, 2007, 2024) for m, d in ((2, 28), (3, 1))] + [
    date(2000, 2, 29),
    date(2004, 2, 29),
    date(2024, 2, 29),
]
birthdays = st.one_of(st.sampled_from(LEAP_BIRTHDAYS), st.dates(date(1940, 1, 1), date(2025, 4, 30)))
TAGS = ["milan", "Milan", "rome", "vip", *HOSTILE[:4]]
custom_values = st.one_of(
    text_values,
    st.sampled_from(
        ["gold", "Gold", "silver", "10", "", "2024-03-01", "2024-03-01T10:00", "2024-3-1", "\uff11\uff12\uff13"]
    ),
    DATES.map(date.isoformat),
    NUMBERS,
    st.booleans(),
    st.none(),
    st.sampled_from([[1], {"a": 1}]),
)


def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.just(""), values)


LIMITS = {"postcode": 20, "country": 2, "region": 6, "language": 8}  # column lengths PostgreSQL enforces
EVENTS = ("inbound", "outbound", "clicks")


def people(near: Near | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Members; with ``near``, their values are often right at the filters' boundaries."""
    near = near or Near()

    def pick(base: st.SearchStrategy[Any], key: str) -> st.SearchStrategy[Any]:
        extra = near.values.get(key)
        return st.one_of(base, st.sampled_from(extra), st.sampled_from(extra)) if extra else base

    moments_near = pick(moments, "moment")
    custom_near = st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in near.custom.items() if v})
    return st.fixed_dictionaries(
        {
            "state": st.sampled_from(list(MemberState)),
            "first_name": pick(maybe(text_values), "first_name"),
            "last_name": pick(maybe(text_values), "last_name"),
            "city": pick(maybe(text_values), "city"),
            "email": pick(maybe(text_values), "email"),
            "postcode": pick(
                maybe(st.one_of(st.sampled_from(["20121", "2012", "MI 1", "a%b_c/d", "é", "É"]), free_text)),
                "postcode",
            ),
            "country": pick(maybe(st.sampled_from(["IT", "it", "US", "GB", "In"])), "country"),
            "region": pick(maybe(st.sampled_from(["US-CA", "US-NY", "CA-ON", "us-ca"])), "region"),
            "language": pick(maybe(st.sampled_from(["en", "EN", "it", "pt-BR"])), "language"),
            "birthday": pick(st.one_of(st.none(), birthdays), "birthday"),
            "joined_at": pick(st.one_of(st.none(), moments), "joined_at"),
            "created_at": pick(moments, "created_at"),
            "custom": st.builds(
                lambda base, extra: {**base, **extra},
                st.dictionaries(st.sampled_from(["tier", "score", "since", "note"]), custom_values, max_size=4),
                custom_near,
            ),
            "tags": st.frozensets(st.one_of(st.sampled_from(TAGS), free_text, pick(st.nothing(), "tag")), max_size=3),
            "inbound": st.lists(moments_near, max_size=2),
            "outbound": st.lists(
                st.tuples(
                    st.sampled_from(["queued", "sent", "delivered", "undelivered", "failed"]), st.none() | moments_near
                ),
                max_size=2,
            ),
            "clicks": st.lists(moments_near, max_size=2),
        }
    )


@dataclass
class Near:
    """Values right at the boundaries of some filters, by members column (or "moment" for texts and
    clicks, "tag" for tags), and by custom key."""

    values: dict[str, list[Any]] = field(default_factory=dict)
    custom: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, nodes: Sequence[Filter], now: datetime) -> Near:
        near = cls()
        for node in nodes:
            for leaf in _leaves(node):
                near._add(leaf, now)
        return near

    def _add(self, leaf: Condition | Tag | Activity, now: datetime) -> None:
        if isinstance(leaf, Tag):
            self.values.setdefault("tag", []).extend(t for t in _variants(leaf.name) if len(t) <= 64)
            return
        if isinstance(leaf, Activity):
            self.values.setdefault("moment", []).extend(_instants(now - timedelta(days=leaf.days or 1)))
            return
        values = leaf.value if isinstance(leaf.value, tuple) else () if leaf.value is None else (leaf.value,)
        spec = resolve_field(leaf.field, leaf.type)
        if spec.custom_key is not None:
            self.custom.setdefault(spec.custom_key, []).extend(v for value in values for v in _custom_near(value))
            return
        column = spec.column or ""
        found = self.values.setdefault(column, [])
        if leaf.op is Op.within:
            found.extend(_instants(now - timedelta(days=int(leaf.value or 0))))
        for value in values:
            if isinstance(value, str):
                found.extend(t for t in _variants(value) if len(t) <= LIMITS.get(column, 100))
            elif spec.kind is Kind.age and isinstance(value, int):
                for years in (value, value + 1):
                    born = years_before(now.date(), years)
                    if born is not None:
                        found.extend(born + timedelta(days=d) for d in (-1, 0, 1))
            elif isinstance(value, date):
                for day in (value, value + timedelta(days=1)):
                    found.extend(_instants(datetime.combine(day, time(), UTC)))


def _leaves(node: Filter) -> Iterator[Condition | Tag | Activity]:
    if isinstance(node, And | Or):
        for item in node.items:
            yield from _leaves(item)
    elif isinstance(node, Not):
        yield from _leaves(node.item)
    else:
        yield node


def _variants(text: str) -> list[str]:
    return [t for t in {text, text.upper(), text.lower(), text.swapcase(), text + "z", text[:-1]} if t]


def _instants(moment: datetime) -> list[datetime]:
    return [moment - timedelta(microseconds=1), moment, moment + timedelta(microseconds=1)]


def _custom_near(value: object) -> list[Any]:
    if isinstance(value, str):
        return _variants(value)
    if isinstance(value, date):
        return [(value + timedelta(days=d)).isoformat() for d in (-1, 0, 1)] + [f"{value.isoformat()}T00:00"]
    if isinstance(value, int | float):
        return [value, value - 0.5, value + 0.5]
    return []


PROFILE = ("state", "first_name", "last_name", "city", "email", "postcode", "country", "language", "birthday")
PROFILE += ("region", "joined_at", "created_at", "custom")


@dataclass(frozen=True)
class Place:
    community_id: int
    sender_id: int


def _place(conn: sa.Connection, slug: str) -> Place:
    community_id = conn.execute(
        sa.insert(schema.communities).values(slug=slug, name=slug, settings={}).returning(schema.communities.c.id)
    ).scalar_one()
    sender_id = conn.execute(
        sa.insert(schema.senders)
        .values(
            community_id=community_id,
            provider="sandbox",
            address=f"+1202555{community_id:04d}",
            kind="long_code",
            mps=1,
        )
        .returning(schema.senders.c.id)
    ).scalar_one()
    return Place(community_id, sender_id)


def _message(
    place: Place, phone: str, direction: Direction, state: str, at: datetime, sent: datetime | None
) -> dict[str, Any]:
    return {
        "community_id": place.community_id,
        "direction": direction,
        "kind": MessageKind.text if direction is Direction.inbound else MessageKind.reply,
        "state": state,
        "sender_id": place.sender_id,
        "phone": phone,
        "body": "hi",
        "provider": "sandbox",
        "attempts": 0,
        "sent_at": sent,
        "created_at": at,
        "updated_at": at,
    }


def _store(
    conn: sa.Connection, place: Place, group: Sequence[dict[str, Any]], busy: datetime | None = None
) -> list[int]:
    """Store the members with their tags, texts and clicks; ``busy``: also give each one a reply, a
    received text and a click at that moment (to prove other communities' activity does not count)."""
    ids = []
    for i, person in enumerate(group):
        phone = f"+39347{i:07d}"
        ids.append(
            conn.execute(
                sa.insert(schema.members)
                .values(community_id=place.community_id, phone=phone, **{k: person[k] for k in PROFILE})
                .returning(schema.members.c.id)
            ).scalar_one()
        )
        if person["tags"]:
            conn.execute(sa.insert(schema.member_tags), [{"member_id": ids[-1], "tag": t} for t in person["tags"]])
        texts = [_message(place, phone, Direction.inbound, "processed", at, None) for at in person["inbound"]]
        texts += [_message(place, phone, Direction.outbound, s, sent or now0, sent) for s, sent in person["outbound"]]
        clicks = [
            {"community_id": place.community_id, "member_id": ids[-1], "url": "https://x", "clicked_at": at}
            for at in person["clicks"]
        ]
        if busy is not None:
            texts += [
                _message(place, phone, Direction.inbound, "processed", busy, None),
                _message(place, phone, Direction.outbound, "delivered", busy, busy),
            ]
            clicks.append(
                {"community_id": place.community_id, "member_id": ids[-1], "url": "https://x", "clicked_at": busy}
            )
        if texts:
            conn.execute(sa.insert(schema.messages), texts)
        if clicks:
            conn.execute(sa.insert(schema.link_clicks), clicks)
    return ids


def _facts(person: dict[str, Any]) -> MemberFacts:
    latest: dict[Engagement, datetime] = {}
    received = [sent for state, sent in person["outbound"] if state in ("sent", "delivered") and sent is not None]
    for kind, times in (
        (Engagement.replied, person["inbound"]),
        (Engagement.received, received),
        (Engagement.clicked, person["clicks"]),
    ):
        if times:
            latest[kind] = max(times)
    return MemberFacts({k: person[k] for k in PROFILE}, frozenset(person["tags"]), latest)


@pytest.fixture
def conn(db: Database) -> Iterator[sa.Connection]:
    """A transaction rolled back afterwards."""
    with db.write_engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
# Single conditions as well as trees: a tree of random conditions often hides a wrong one.
@given(data=st.data(), queries=st.lists(st.one_of(leaves, filters), min_size=1, max_size=8), now=st.sampled_from(NOWS))
def test_sql_finds_exactly_the_members_python_picks(
    db: Database, data: st.DataObject, queries: list[Filter], now: datetime
) -> None:
    group = data.draw(st.lists(people(Near.of(queries, now)), max_size=8), label="members")
    with db.write_engine.connect() as conn:
        transaction = conn.begin()
        try:
            here, elsewhere = _place(conn, "here"), _place(conn, "elsewhere")
            ids = _store(conn, here, group)
            # The same numbers in another community, active right now: none of that may leak in.
            _store(conn, elsewhere, group, busy=now)
            for node in queries:
                expected = {i for i, person in zip(ids, group, strict=True) if matches(node, _facts(person), now=now)}
                found = set(conn.execute(member_ids(here.community_id, node, now=now)).scalars())
                assert found == expected, to_text(node)
                assert count_members(conn, here.community_id, node, now) == len(expected)
        finally:
            transaction.rollback()


def _person(**overrides: Any) -> dict[str, Any]:
    person: dict[str, Any] = dict.fromkeys(PROFILE)
    person.update(state=MemberState.subscribed, created_at=now0, custom={}, tags=frozenset())
    person.update(inbound=[], outbound=[], clicks=[])
    person.update(overrides)
    return person


def _names(conn: sa.Connection, place: Place, text: str, now: datetime = now0) -> list[int]:
    return sorted(conn.execute(member_ids(place.community_id, parse_text(text), now=now)).scalars())


def test_ages_count_whole_years_across_leap_days(conn: sa.Connection) -> None:
    place = _place(conn, "ages")
    ids = _store(conn, place, [_person(birthday=b) for b in (date(2000, 2, 29), date(2006, 2, 28), date(2006, 3, 1))])
    leap, feb28, mar1 = ids
    # 2024-02-28: the leap-day child is still 23; the 28 February one turns 18; 1 March is 17.
    on = datetime(2024, 2, 28, 12, tzinfo=UTC)
    assert _names(conn, place, "age >= 18", on) == [leap, feb28]
    assert _names(conn, place, "age = 23", on) == [leap]
    assert _names(conn, place, "age = 24", on + timedelta(days=1)) == [leap]
    assert _names(conn, place, "age < 18", on) == [mar1]
    # 2025-02-28 (no 29th): a leap-day birthday counts from 1 March, so still 24 on the 28th.
    assert _names(conn, place, "age = 24", datetime(2025, 2, 28, tzinfo=UTC)) == [leap]
    assert _names(conn, place, "age = 25", datetime(2025, 3, 1, tzinfo=UTC)) == [leap]
    assert age(date(2000, 2, 29), date(2025, 2, 28)) == 24


def test_join_dates_are_utc_days(conn: sa.Connection) -> None:
    place = _place(conn, "joins")
    late, early = _store(
        conn,
        place,
        [
            _person(joined_at=datetime(2026, 11, 1, 23, 59, tzinfo=UTC)),
            _person(joined_at=datetime(2026, 11, 2, tzinfo=UTC)),
        ],
    )
    assert _names(conn, place, "joined after 2026-11-01") == [early]
    assert _names(conn, place, "joined on 2026-11-01") == [late]
    assert _names(conn, place, "joined before 2026-11-02") == [late]
    assert _names(conn, place, "joined <= 2026-11-02") == [late, early]
    assert _names(conn, place, "joined within 1 day", datetime(2026, 11, 3, tzinfo=UTC)) == [early]
    assert _names(conn, place, "joined within 2 days", datetime(2026, 11, 3, tzinfo=UTC)) == [late, early]


def test_engagement_matches_the_members_number_in_this_community(conn: sa.Connection) -> None:
    place, other = _place(conn, "fans"), _place(conn, "others")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    quiet, talker = _store(
        conn,
        place,
        [
            _person(outbound=[("failed", None), ("queued", None)]),
            _person(inbound=[now - timedelta(days=3)], outbound=[("delivered", now - timedelta(days=40))]),
        ],
    )
    _store(conn, other, [_person()], busy=now)  # the first number is busy, but elsewhere
    assert _names(conn, place, "replied within 7 days", now) == [talker]
    assert _names(conn, place, "replied within 2 days", now) == []
    assert _names(conn, place, "received", now) == [talker]
    assert _names(conn, place, "received within 30 days", now) == []
    assert _names(conn, place, "not replied within 30 days", now) == [quiet]
    assert _names(conn, place, "clicked", now) == []


def test_text_compares_ascii_case_insensitively_in_code_point_order(conn: sa.Connection) -> None:
    place = _place(conn, "text")
    milan, zurich, e_acute, evry = _store(
        conn, place, [_person(city="MILAN"), _person(city="Zürich"), _person(city="é"), _person(city="ÉVRY")]
    )
    assert _names(conn, place, "city = milan") == [milan]
    assert _names(conn, place, "city = zürich") == [zurich]
    assert _names(conn, place, "city = ZÜRICH") == []  # only ASCII letters fold
    assert _names(conn, place, "city = évry") == []
    assert _names(conn, place, "city = Évry") == [evry]
    assert _names(conn, place, "city startswith mi or city contains RIC") == [milan, zurich]
    assert _names(conn, place, "city < n") == [milan]  # 'é' sorts after every ASCII letter
    assert _names(conn, place, "city != milan") == [zurich, e_acute, evry]
    if conn.dialect.name == "postgresql":
        # A column under a linguistic collation ('é' < 'n' there) still compares by code point.
        conn.exec_driver_sql('ALTER TABLE members ALTER COLUMN city TYPE varchar(100) COLLATE "und-x-icu"')
        assert _names(conn, place, "city < n") == [milan]


def test_unset_fields_never_match_a_comparison_but_match_its_negation(conn: sa.Connection) -> None:
    place = _place(conn, "unset")
    blank, empty, rome = _store(conn, place, [_person(), _person(city=""), _person(city="Rome")])
    assert _names(conn, place, "city = Rome") == [rome]
    assert _names(conn, place, "city != Rome") == [blank, empty]
    assert _names(conn, place, "not city < Z") == [blank, empty]
    assert _names(conn, place, "city is set") == [rome]
    assert _names(conn, place, "city is not set") == [blank, empty]
    assert _names(conn, place, "everyone") == [blank, empty, rome]
    assert _names(conn, place, "nobody") == []


def test_custom_fields_match_only_values_of_their_type(conn: sa.Connection) -> None:
    place = _place(conn, "custom")
    number, text, day, stamped, broken = _store(
        conn,
        place,
        [
            _person(custom={"v": 10}),
            _person(custom={"v": "10"}),
            _person(custom={"v": "2026-01-05"}),
            _person(custom={"v": "2026-01-05T10:00:00Z"}),
            _person(custom={"v": "soon"}),
        ],
    )
    assert _names(conn, place, "custom.v >= 9") == [number]
    assert _names(conn, place, 'custom.v = "10"') == [text]
    assert _names(conn, place, "custom.v:choice in (10, soon)") == [text, broken]
    assert _names(conn, place, "custom.v on 2026-01-05") == [day, stamped]
    assert _names(conn, place, "custom.v > 2025-12-31") == [day, stamped]
    assert _names(conn, place, "custom.v is set") == [number, text, day, stamped, broken]
    assert _names(conn, place, "custom.other is not set") == [number, text, day, stamped, broken]


def test_hostile_values_are_only_ever_values(conn: sa.Connection) -> None:
    place = _place(conn, "hostile")
    ids = _store(conn, place, [_person(city=v, tags=frozenset({v}), custom={"note": v}) for v in HOSTILE])
    for target, value in zip(ids, HOSTILE, strict=True):
        quoted = to_text(Tag(value)).removeprefix("tag ")
        for text in (f"city = {quoted}", f"tag {quoted}", f"custom.note:text = {quoted}"):
            assert _names(conn, place, text) == [target], text
        assert target in _names(conn, place, f"city contains {quoted}")
    assert conn.execute(sa.select(sa.func.count()).select_from(schema.members)).scalar_one() == len(HOSTILE)
    assert conn.execute(sa.select(sa.func.count()).select_from(schema.member_tags)).scalar_one() == len(HOSTILE)


def test_member_ids_and_counts_stay_in_their_community(conn: sa.Connection) -> None:
    here, there = _place(conn, "here"), _place(conn, "there")
    mine = _store(conn, here, [_person(country="IT"), _person(country="US")])
    _store(conn, there, [_person(country="IT")] * 3)
    assert _names(conn, here, "country = IT") == mine[:1]
    assert count_members(conn, there.community_id, {"field": "country", "op": "=", "value": "IT"}, now0) == 3
    with pytest.raises(ValueError, match="aware"):
        member_ids(here.community_id, parse_text("everyone"), now=now0.replace(tzinfo=None))


def test_saved_segments(conn: sa.Connection) -> None:
    here, there = _place(conn, "here"), _place(conn, "there")
    _store(conn, here, [_person(country="IT", tags=frozenset({"milan"})), _person(country="US")])
    assert save_segment(conn, here.community_id, " italians ", parse_text("country = IT"))
    assert save_segment(conn, here.community_id, "milan", {"tag": "milan"})
    assert not save_segment(conn, here.community_id, "italians", parse_text("country = it or country = us"))
    assert [s.name for s in list_segments(conn, here.community_id)] == ["italians", "milan"]
    assert list_segments(conn, there.community_id) == []
    found = get_segment(conn, here.community_id, "italians")
    assert found is not None and to_text(found.filter) == "country = IT or country = US"
    assert [(s.name, n) for s, n in counted_segments(conn, here.community_id, now0)] == [("italians", 2), ("milan", 1)]
    assert delete_segment(conn, here.community_id, "milan")
    assert not delete_segment(conn, here.community_id, "milan")
    assert get_segment(conn, here.community_id, "milan") is None
    for bad in ("", "  ", "x" * 101, "tab\there"):
        with pytest.raises(ValueError, match="segment"):
            save_segment(conn, here.community_id, bad, Tag("a"))
    with pytest.raises(FilterError, match=r"^and\[0\]"):
        save_segment(conn, here.community_id, "broken", {"and": [{"tag": ""}]})
    s = schema.segments.c
    conn.execute(
        sa.update(schema.segments).where(s.name == "italians").values(filter={"field": "shoe_size", "op": "is set"})
    )
    with pytest.raises(FilterError, match="saved segment 'italians': field: unknown field 'shoe_size'"):
        list_segments(conn, here.community_id)
