"""Sending windows: the legal hours, the owner's windows, several zones, daylight saving time.

Speed, measured by hand on a 2-core box (not asserted here): ``next_open`` for a new (recipient,
instant, owner) about 140,000 calls/s (7 us; 25,000/s in the worst case, a member for whom nothing
opens, where all 8 days are scanned); repeated lookups from the cache about 1,200,000/s;
``recipient_for`` about 270,000/s.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openline.quiet_hours import (
    LEGAL_RULES,
    LegalRule,
    NeverOpen,
    OwnerWindows,
    Recipient,
    closed_reason,
    frequency_limit,
    is_open,
    legal_rules,
    next_open,
    parse_owner_windows,
    recipient_for,
)

from .test_owner_windows import SHOP, owners

NEW_YORK, LOS_ANGELES, ROME, KOLKATA = "America/New_York", "America/Los_Angeles", "Europe/Rome", "Asia/Kolkata"
MIAMI_NUMBER = "+13055550100"  # area code 305: Florida


def local(zone: str, *parts: int) -> datetime:
    """An instant given as wall-clock time in a zone, as the UTC datetime callers pass."""
    return datetime(*parts, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def reason(recipient: Recipient, at: datetime, owner: OwnerWindows | None) -> str | None:
    """closed_reason, with its en dashes (08:00\u201320:00) written as hyphens to keep these lines ASCII."""
    found = closed_reason(recipient, at, owner)
    return None if found is None else found.replace("\u2013", "-")


def us(*regions: str, zones: tuple[str, ...] = (NEW_YORK,)) -> Recipient:
    return Recipient("US", frozenset(regions), zones)


ITALIAN = Recipient("IT", frozenset(), (ROME,))


# -- the law ------------------------------------------------------------------------------------------


def test_us_federal_hours_are_8_to_21_local() -> None:
    chicago = us(zones=("America/Chicago",))
    assert not is_open(chicago, local("America/Chicago", 2026, 7, 1, 7, 59), None)
    assert is_open(chicago, local("America/Chicago", 2026, 7, 1, 8, 0), None)
    assert is_open(chicago, local("America/Chicago", 2026, 7, 1, 20, 59), None)
    late = local("America/Chicago", 2026, 7, 1, 21, 0)
    assert not is_open(chicago, late, None)
    assert closed_reason(chicago, late, None) == "after 21:00 in America/Chicago (US federal law: 08:00\u201321:00)"
    assert reason(chicago, late, None) == "after 21:00 in America/Chicago (US federal law: 08:00-21:00)"
    assert next_open(chicago, late, None) == local("America/Chicago", 2026, 7, 2, 8, 0)
    assert frequency_limit(chicago, None) is None
    assert frequency_limit(chicago, 5) == 5


def test_florida_is_stricter_and_caps_three_a_day() -> None:
    florida = us("US-FL")
    evening = local(NEW_YORK, 2026, 7, 1, 20, 30)
    assert is_open(us(), evening, None)  # federal law alone allows it
    assert not is_open(florida, evening, None)
    assert reason(florida, evening, None) == "after 20:00 in America/New_York (Florida law: 08:00-20:00)"
    assert reason(florida, local(NEW_YORK, 2026, 7, 1, 7, 0), None) == (
        "before 08:00 in America/New_York (Florida law: 08:00-20:00)"
    )
    assert next_open(florida, evening, None) == local(NEW_YORK, 2026, 7, 2, 8, 0)
    assert [r.where for r in legal_rules(florida)] == ["US", "US-FL"]
    assert frequency_limit(florida, None) == 3
    assert frequency_limit(florida, 2) == 2
    assert frequency_limit(florida, 10) == 3


@pytest.mark.parametrize(("region", "cap"), [("US-OK", 3), ("US-MD", 3), ("US-WA", None)])
def test_other_states_close_at_20(region: str, cap: int | None) -> None:
    member = us(region)
    assert not is_open(member, local(NEW_YORK, 2026, 7, 1, 20, 0), None)
    assert is_open(member, local(NEW_YORK, 2026, 7, 1, 19, 59), None)
    assert frequency_limit(member, None) == cap


def test_a_florida_number_with_an_ohio_zip_keeps_both_and_gets_florida_hours() -> None:
    member = recipient_for(MIAMI_NUMBER, "US", "44101", [NEW_YORK])
    assert member == Recipient("US", frozenset({"US-FL", "US-OH"}), (NEW_YORK,))
    assert not is_open(member, local(NEW_YORK, 2026, 7, 1, 20, 0), None)
    assert frequency_limit(member, None) == 3


@pytest.mark.parametrize(
    ("phone", "postcode", "regions"),
    [
        ("+12065550100", None, {"US-WA"}),  # libphonenumber: "Washington State"
        ("+12125550100", None, {"US-NY"}),  # "New York, NY"
        ("+12037530000", None, {"US-CT"}),  # 203: places known only per exchange ("Waterbury, CT")
        ("+14055550100", "73101", {"US-OK"}),  # number and ZIP agree
        ("+18005550100", None, set()),  # toll free: no place
        ("+1 (301) 555-0100", None, {"US-MD"}),  # not E.164: its digits still tell the area code
    ],
)
def test_us_regions_come_from_the_area_code_and_the_zip(phone: str, postcode: str | None, regions: set[str]) -> None:
    assert recipient_for(phone, "US", postcode, [NEW_YORK]).regions == frozenset(regions)


def test_recipients_outside_the_us() -> None:
    canadian = recipient_for("+14165550100", None, None, ["America/Toronto"])  # Ontario: not a US state
    assert canadian == Recipient("CA", frozenset(), ("America/Toronto",))
    # A five-digit Italian postcode is not looked up as a ZIP code.
    assert recipient_for("+393471234567", None, "33101", []) == Recipient("IT", frozenset(), (ROME,))
    indian = recipient_for("+919876543210", None, None, [])
    assert indian == Recipient("IN", frozenset(), (KOLKATA,))  # no zones given: the country's
    assert recipient_for("+80012345678", None, None, ["Not/AZone"]) == Recipient(None, frozenset(), ("UTC",))


def test_puerto_rico_is_under_the_us_federal_rule() -> None:
    member = recipient_for("+17875550100", None, "00601", None)
    assert member == Recipient("PR", frozenset({"US-PR"}), ("America/Puerto_Rico",))
    assert [r.where for r in legal_rules(member)] == ["US"]


def test_india_allows_promotions_from_9_to_21() -> None:
    indian = Recipient("IN", frozenset(), (KOLKATA,))
    early = local(KOLKATA, 2026, 7, 1, 8, 59)
    assert reason(indian, early, None) == "before 09:00 in Asia/Kolkata (Indian law (TRAI): 09:00-21:00)"
    assert next_open(indian, early, None) == local(KOLKATA, 2026, 7, 1, 9, 0)
    assert is_open(indian, local(KOLKATA, 2026, 7, 1, 20, 59), None)
    assert not is_open(indian, local(KOLKATA, 2026, 7, 1, 21, 0), None)


def test_every_rule_cites_a_source() -> None:
    assert all(isinstance(rule, LegalRule) and rule.source and rule.start < rule.end for rule in LEGAL_RULES)
    assert {rule.where for rule in LEGAL_RULES} == {"US", "US-FL", "US-OK", "US-MD", "US-WA", "IN"}
    assert next(r for r in LEGAL_RULES if r.where == "US").end == time(21)


# -- the owner's windows ------------------------------------------------------------------------------


def test_italy_has_no_legal_hours_so_only_the_owners_windows_apply() -> None:
    night = local(ROME, 2026, 8, 18, 3, 0)  # a Tuesday
    assert legal_rules(ITALIAN) == []
    assert is_open(ITALIAN, night, None)
    assert reason(ITALIAN, night, None) is None
    assert not is_open(ITALIAN, night, SHOP)
    assert next_open(ITALIAN, night, SHOP) == local(ROME, 2026, 8, 18, 10, 0)


def test_weekday_and_weekend_windows() -> None:
    assert is_open(ITALIAN, local(ROME, 2026, 8, 17, 19, 0), SHOP)  # Monday
    sunday_evening = local(ROME, 2026, 8, 16, 19, 0)
    assert reason(ITALIAN, sunday_evening, SHOP) == ("outside the owner's Sunday window 10:00-18:00 in Europe/Rome")
    assert next_open(ITALIAN, sunday_evening, SHOP) == local(ROME, 2026, 8, 17, 10, 0)


def test_an_italian_holiday_uses_the_holiday_window() -> None:
    ferragosto = local(ROME, 2026, 8, 15, 10, 30)  # a Saturday: the Saturday window would be open
    why = reason(ITALIAN, ferragosto, SHOP)
    assert why is not None
    assert why.startswith("public holiday (")
    assert why.endswith(") in Europe/Rome: owner's holiday window 11:00-13:00")
    assert next_open(ITALIAN, ferragosto, SHOP) == local(ROME, 2026, 8, 15, 11, 0)
    # Without holiday spans a holiday is an ordinary Saturday.
    ordinary = parse_owner_windows(["mon-fri 10:00-20:00", "sat,sun 10:00-18:00"])
    assert is_open(ITALIAN, ferragosto, ordinary)


def test_a_holiday_closed_all_day_moves_to_the_next_day() -> None:
    owner = parse_owner_windows(["mon-fri 10:00-20:00", "holidays closed"])
    republic_day = local(ROME, 2026, 6, 2, 12, 0)  # Festa della Repubblica, a Tuesday
    why = reason(ITALIAN, republic_day, owner)
    assert why is not None and why.endswith("in Europe/Rome: the owner's windows are closed on holidays")
    assert next_open(ITALIAN, republic_day, owner) == local(ROME, 2026, 6, 3, 10, 0)
    # Without a country there is no holiday calendar: an ordinary Tuesday.
    assert is_open(Recipient(None, frozenset(), (ROME,)), republic_day, owner)


def test_a_closed_day_and_a_day_not_given() -> None:
    owner = parse_owner_windows(["sun closed", "mon 10:00-12:00 14:00-18:00"])
    sunday = local(ROME, 2026, 8, 16, 12, 0)
    assert reason(ITALIAN, sunday, owner) == "the owner's windows are closed on Sunday in Europe/Rome"
    lunch = local(ROME, 2026, 8, 17, 13, 0)
    assert reason(ITALIAN, lunch, owner) == (
        "outside the owner's Monday windows 10:00-12:00, 14:00-18:00 in Europe/Rome"
    )
    assert next_open(ITALIAN, lunch, owner) == local(ROME, 2026, 8, 17, 14, 0)
    assert is_open(ITALIAN, local(ROME, 2026, 8, 18, 3, 0), owner)  # Tuesday: not given, open all day


def test_legal_hours_come_before_the_owners_in_the_reason() -> None:
    owner = parse_owner_windows(["daily 07:00-22:00"])
    assert reason(us("US-FL"), local(NEW_YORK, 2026, 7, 1, 7, 30), owner) == (
        "before 08:00 in America/New_York (Florida law: 08:00-20:00)"
    )


# -- several zones -----------------------------------------------------------------------------------


def test_a_member_in_one_of_two_zones_is_open_only_when_both_are() -> None:
    either = us(zones=(NEW_YORK, LOS_ANGELES))
    morning = local(NEW_YORK, 2026, 7, 1, 10, 0)  # 07:00 in Los Angeles
    assert is_open(us(), morning, None)
    assert not is_open(either, morning, None)
    assert reason(either, morning, None) == "before 08:00 in America/Los_Angeles (US federal law: 08:00-21:00)"
    assert next_open(either, morning, None) == local(LOS_ANGELES, 2026, 7, 1, 8, 0)
    assert is_open(either, local(NEW_YORK, 2026, 7, 1, 20, 59), None)
    evening = local(NEW_YORK, 2026, 7, 1, 21, 0)  # 18:00 in Los Angeles
    assert reason(either, evening, None) == "after 21:00 in America/New_York (US federal law: 08:00-21:00)"
    assert next_open(either, evening, None) == local(LOS_ANGELES, 2026, 7, 2, 8, 0)


def test_no_zones_means_every_zone_of_the_country() -> None:
    anywhere = Recipient("IN", frozenset(), ())
    assert next_open(anywhere, local(KOLKATA, 2026, 7, 1, 7, 0), None) == local(KOLKATA, 2026, 7, 1, 9, 0)


def test_zones_too_far_apart_never_open() -> None:
    weird = us(zones=("Pacific/Honolulu", KOLKATA))
    owner = parse_owner_windows(["daily 10:00-18:00"])
    at = datetime(2026, 7, 1, tzinfo=UTC)
    with pytest.raises(NeverOpen, match="Pacific/Honolulu, Asia/Kolkata"):
        next_open(weird, at, owner)
    assert not is_open(weird, at, owner)
    assert reason(weird, at, owner) is not None
    # Florida's 12 hours in zones 12 hours apart touch and never overlap.
    with pytest.raises(NeverOpen, match="Florida law 08:00\u201320:00"):
        next_open(us("US-FL", zones=("Pacific/Honolulu", "Europe/Kaliningrad")), at, None)


def test_an_owner_closed_every_day_never_opens() -> None:
    with pytest.raises(NeverOpen, match="owner windows: mon-sun closed"):
        next_open(ITALIAN, datetime(2026, 7, 1, tzinfo=UTC), parse_owner_windows(["daily closed"]))


# -- daylight saving time ----------------------------------------------------------------------------


def test_new_york_spring_forward_moves_the_legal_window() -> None:
    # 2026-03-08: 02:00 EST becomes 03:00 EDT, so 08:00 is 12:00 UTC instead of 13:00.
    assert next_open(us(), datetime(2026, 3, 8, 10, 0, tzinfo=UTC), None) == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert next_open(us(), datetime(2026, 3, 7, 10, 0, tzinfo=UTC), None) == datetime(2026, 3, 7, 13, 0, tzinfo=UTC)


def test_a_window_starting_in_the_skipped_hour_opens_when_the_clock_jumps() -> None:
    nowhere = Recipient(None, frozenset(), (NEW_YORK,))
    owner = parse_owner_windows(["mon-sat closed", "sun 02:30-04:00"])
    at = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)  # 01:00 EST
    assert next_open(nowhere, at, owner) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert not is_open(nowhere, datetime(2026, 3, 8, 6, 59, 59, 999_999, tzinfo=UTC), owner)
    rome = parse_owner_windows(["mon-sat closed", "sun 02:30-04:00"])
    # 2026-03-29 in Rome: 02:00 CET becomes 03:00 CEST.
    assert next_open(ITALIAN, datetime(2026, 3, 29, 0, 0, tzinfo=UTC), rome) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_a_window_in_the_repeated_hour_opens_twice() -> None:
    nowhere = Recipient(None, frozenset(), (NEW_YORK,))
    owner = parse_owner_windows(["mon-sat closed", "sun 01:30-01:45"])
    # 2026-11-01 in New York: 02:00 EDT becomes 01:00 EST, so 01:30 happens twice.
    assert next_open(nowhere, datetime(2026, 11, 1, 5, 0, tzinfo=UTC), owner) == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )
    assert next_open(nowhere, datetime(2026, 11, 1, 5, 50, tzinfo=UTC), owner) == datetime(
        2026, 11, 1, 6, 30, tzinfo=UTC
    )
    rome = parse_owner_windows(["mon-sat closed", "sun 02:30-02:45"])
    # 2026-10-25 in Rome: 03:00 CEST becomes 02:00 CET.
    assert next_open(ITALIAN, datetime(2026, 10, 25, 0, 0, tzinfo=UTC), rome) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )
    assert next_open(ITALIAN, datetime(2026, 10, 25, 0, 50, tzinfo=UTC), rome) == datetime(
        2026, 10, 25, 1, 30, tzinfo=UTC
    )


# -- instants ------------------------------------------------------------------------------------------


def test_results_are_utc_and_naive_datetimes_are_refused() -> None:
    at = datetime(2026, 7, 1, 12, 0, tzinfo=ZoneInfo(ROME))
    result = next_open(ITALIAN, at, None)
    assert result == at and result.utcoffset() == timedelta(0)
    assert next_open(us(), datetime(2026, 7, 1, 3, 0, tzinfo=UTC), None).tzinfo is UTC
    with pytest.raises(ValueError, match="aware"):
        next_open(ITALIAN, datetime(2026, 7, 1, 12, 0), None)
    with pytest.raises(ValueError, match="aware"):
        is_open(ITALIAN, datetime(2026, 7, 1, 12, 0), None)


# -- properties ----------------------------------------------------------------------------------------

ZONES = [
    NEW_YORK,
    LOS_ANGELES,
    ROME,
    KOLKATA,
    "Pacific/Honolulu",
    "Australia/Lord_Howe",  # a half-hour daylight saving change
    "Pacific/Chatham",  # UTC+12:45
    "America/St_Johns",
    "Asia/Kathmandu",
    "America/Santiago",  # its changes happen at midnight
    "UTC",
]
# Instants around daylight saving changes in 2026, where mistakes would hide.
CHANGES = [
    datetime(2026, 3, 8, 7, tzinfo=UTC),
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 4, 5, 2, tzinfo=UTC),
    datetime(2026, 4, 5, 15, tzinfo=UTC),
    datetime(2026, 9, 6, 4, tzinfo=UTC),
    datetime(2026, 10, 4, 15, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2026, 11, 1, 6, tzinfo=UTC),
]

recipients = st.builds(
    Recipient,
    st.sampled_from(["US", "IT", "IN", None]),
    st.frozensets(st.sampled_from(["US-FL", "US-OH", "US-WA", "US-OK", "US-MD"]), max_size=2),
    st.lists(st.sampled_from(ZONES), max_size=3, unique=True).map(tuple),
)


instants = st.one_of(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 20), timezones=st.just(UTC)),
    st.builds(
        lambda change, seconds, micro: change + timedelta(seconds=seconds, microseconds=micro),
        st.sampled_from(CHANGES),
        st.integers(-4 * 3600, 4 * 3600),
        st.integers(0, 999_999),
    ),
)


@settings(max_examples=150, deadline=None)
@given(recipients, owners, instants, st.randoms(use_true_random=False))
def test_next_open_is_the_first_open_instant(
    recipient: Recipient, owner: OwnerWindows | None, at: datetime, rng: random.Random
) -> None:
    open_now = is_open(recipient, at, owner)
    assert (reason(recipient, at, owner) is None) == open_now
    try:
        found = next_open(recipient, at, owner)
    except NeverOpen:
        assert not open_now
        end = at + timedelta(days=8)
    else:
        assert found >= at
        assert found.utcoffset() == timedelta(0)
        assert is_open(recipient, found, owner)
        assert (found == at) == open_now
        end = found
        if found > at:
            assert not is_open(recipient, found - timedelta(microseconds=1), owner)
    minutes = int((end - at).total_seconds() // 60)
    for k in sorted(rng.sample(range(minutes), min(50, minutes))):
        assert not is_open(recipient, at + timedelta(minutes=k), owner), at + timedelta(minutes=k)
