"""The owner's windows: the compact form owners write, its JSON form, and what is wrong with a bad one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openline.owner_windows import OwnerWindows, parse_owner_windows

SHOP = parse_owner_windows(["mon-fri 10:00-20:00", "sat,sun 10:00-18:00", "holidays 11:00-13:00"])


# -- the compact form ----------------------------------------------------------------------------------


def test_parse_and_describe() -> None:
    assert SHOP.describe() == ["mon-fri 10:00-20:00", "sat,sun 10:00-18:00", "holidays 11:00-13:00"]
    assert SHOP.mon == ("10:00-20:00",) and SHOP.holidays == ("11:00-13:00",)
    owner = parse_owner_windows(["Monday, wed 09:00-12:00,12:00-13:00 20:00-24:00", "fri-sun closed"])
    assert owner.mon == owner.wed == ("09:00-13:00", "20:00-24:00")  # sorted and merged
    assert owner.tue is None and owner.holidays is None and owner.sun == ()
    assert owner.describe() == ["mon,wed 09:00-13:00 20:00-24:00", "fri-sun closed"]
    assert parse_owner_windows("mon-fri 10:00-20:00; holidays closed") == parse_owner_windows(
        ["mon-fri 10:00-20:00", "holidays closed"]
    )
    assert parse_owner_windows([]) == OwnerWindows()


def test_equal_windows_are_equal_and_hash_equal() -> None:
    a = parse_owner_windows(["mon 9:00-10:00 10:00-11:00"])
    b = OwnerWindows(mon=("09:00-11:00",))
    assert a == b and hash(a) == hash(b)
    assert len({a, b, SHOP}) == 2


def test_json_form() -> None:
    assert SHOP.to_json()["sat"] == ["10:00-18:00"]
    assert OwnerWindows.from_json(SHOP.to_json()) == SHOP
    assert OwnerWindows.from_json('{"sun": [], "holidays": null}') == OwnerWindows(sun=())
    with pytest.raises(ValueError, match="'someday' is not a day name"):
        OwnerWindows.from_json({"someday": []})
    with pytest.raises(ValueError, match="give a list of spans"):
        OwnerWindows.from_json({"mon": "10:00-12:00"})


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["mon 25:00-26:00"], "'25:00' is not a time of day (HH:MM)"),
        (["mon 10:60-11:00"], "'10:60' is not a time of day (HH:MM)"),
        (["mon 10:00-24:30"], "'24:30' is not a time of day (HH:MM)"),
        (["mon 10:00-09:00"], "10:00-09:00: the end is before the start"),
        (["fri 22:00-02:00"], "cannot cross midnight"),
        (["mon 10:00-10:00"], "10:00-10:00: the window is empty"),
        (["mon 24:00-24:00"], "cannot start at 24:00"),
        (["mnday 10:00-12:00"], "'mnday' is not a day name"),
        (["10:00-12:00"], "say which days first"),
        (["mon-fri"], "give the hours"),
        (["mon 10-12"], "'10' is not a time of day (HH:MM)"),
        (["mon closed 10:00-12:00"], "'closed' cannot be combined with hours"),
        (["mon-fri 10:00-20:00", "fri 08:00-09:00"], "'fri' is given twice"),
    ],
)
def test_invalid_windows_say_exactly_what_is_wrong(lines: list[str], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_owner_windows(lines)
    assert message in str(caught.value)


# -- properties ----------------------------------------------------------------------------------------


@st.composite
def day_spans(draw: st.DrawFn) -> tuple[str, ...]:
    spans = []
    for _ in range(draw(st.integers(0, 2))):
        start = draw(st.integers(0, 1439))
        end = draw(st.integers(start + 1, 1440))
        spans.append(f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}")
    return tuple(spans)


day = st.one_of(st.none(), day_spans())
owners = st.one_of(
    st.none(),
    st.builds(OwnerWindows, mon=day, tue=day, wed=day, thu=day, fri=day, sat=day, sun=day, holidays=day),
)


@settings(max_examples=100, deadline=None)
@given(owners.filter(lambda o: o is not None))
def test_the_compact_and_json_forms_read_back_the_same_windows(owner: OwnerWindows) -> None:
    assert parse_owner_windows(owner.describe()) == owner
    assert OwnerWindows.from_json(owner.to_json()) == owner
