"""Members' time zones from their number and from the place they give."""

from __future__ import annotations

import zoneinfo

import phonenumbers
import pytest

from openline.timezones import country_zones, member_zones, parsed_number_zones, zone_for_place, zones_for_number

IDAHO = "+12085551234"  # area code 208: Mountain time in the south, Pacific in the panhandle
MILAN_MOBILE = "+393471234567"


def test_a_us_number_whose_area_code_spans_two_zones_keeps_both() -> None:
    assert zones_for_number(IDAHO) == ["America/Boise", "America/Los_Angeles"]
    assert member_zones(IDAHO, None, None, None) == (None, ["America/Boise", "America/Los_Angeles"])


def test_a_toll_free_number_may_be_anywhere_in_the_plan() -> None:
    zones = zones_for_number("+18005551234")
    assert {"America/New_York", "America/Los_Angeles", "Pacific/Honolulu"} <= set(zones)
    assert member_zones("+18005551234", None, None, None)[0] is None


def test_an_italian_number_has_one_zone_under_its_own_countrys_name() -> None:
    # libphonenumber says Europe/Rome and Europe/Vatican: one zone under two names, kept once.
    assert zones_for_number(MILAN_MOBILE) == ["Europe/Rome"]
    assert member_zones(MILAN_MOBILE, None, None, None) == ("Europe/Rome", ["Europe/Rome"])


def test_deprecated_names_become_current_ones() -> None:
    assert zones_for_number("+919876543210") == ["Asia/Kolkata"]  # not Asia/Calcutta


@pytest.mark.parametrize("number", ["+447700900123", "+80012345678", "not a number", ""])
def test_numbers_without_a_zone_give_none_and_never_the_unknown_placeholder(number: str) -> None:
    assert zones_for_number(number) == []
    assert member_zones(number, None, None, None) == (None, [])


def test_a_us_zip_code_names_its_zone() -> None:
    assert zone_for_place("US", "10001", None) == "America/New_York"
    assert zone_for_place("US", "10001-1234", None) == "America/New_York"
    assert zone_for_place("US", "83702", None) == "America/Boise"
    assert zone_for_place("US", "abcde", None) is None


def test_a_city_in_a_country_names_its_zone() -> None:
    assert zone_for_place("IT", None, "Milan") == "Europe/Rome"
    assert zone_for_place("it", None, "milano") == "Europe/Rome"
    assert zone_for_place("US", None, "Boise") == "America/Boise"
    assert zone_for_place("ES", None, "Las Palmas de Gran Canaria") == "Atlantic/Canary"
    assert zone_for_place("BR", None, "Sao Paulo") == zone_for_place("BR", None, "São Paulo") == "America/Sao_Paulo"


def test_a_country_with_one_zone_needs_no_city() -> None:
    assert zone_for_place("IT", None, None) == "Europe/Rome"
    assert zone_for_place("IN", None, "a village") == "Asia/Kolkata"
    # The IANA table lists Europe/Busingen too, but no German city of 15,000 is in it.
    assert zone_for_place("DE", None, None) == "Europe/Berlin"
    assert country_zones("IT") == ["Europe/Rome"]


@pytest.mark.parametrize(
    ("country", "postcode", "zone"),
    [
        ("AU", "6000", "Australia/Perth"),
        ("AU", "4000", "Australia/Brisbane"),  # no daylight saving, unlike Sydney
        ("AU", "0800", "Australia/Darwin"),
        ("AU", "2600", "Australia/Sydney"),  # Canberra
        ("AU", "2880", "Australia/Broken_Hill"),
        ("AU", "7000", "Australia/Hobart"),
        ("AU", "6798", "Indian/Christmas"),
        ("AU", "4383", None),  # a New South Wales town with a Queensland postcode
        ("AU", "60000", None),
        ("ES", "38001", "Atlantic/Canary"),
        ("ES", "35 001", "Atlantic/Canary"),
        ("ES", "08001", "Europe/Madrid"),
        ("ES", "51001", "Africa/Ceuta"),
        ("PT", "9500-123", "Atlantic/Azores"),
        ("PT", "9000-001", "Atlantic/Madeira"),
        ("PT", "1000-001", "Europe/Lisbon"),
        ("NZ", "8942", "Pacific/Chatham"),
        ("NZ", "6011", "Pacific/Auckland"),
    ],
)
def test_a_postcode_names_the_zone_where_mobile_numbers_cannot(country: str, postcode: str, zone: str | None) -> None:
    assert zone_for_place(country, postcode, None) == zone
    if zone is not None:
        zoneinfo.ZoneInfo(zone)


def test_an_australian_mobile_is_narrowed_to_its_postcodes_zone() -> None:
    mobile = "+61412345678"
    assert len(zones_for_number(mobile)) > 4  # a mobile number could be anywhere from Christmas Island to Lord Howe
    assert member_zones(mobile, None, "6000", None) == ("Australia/Perth", ["Australia/Perth"])  # the number's country
    assert member_zones(mobile, "AU", "4383", None) == (None, zones_for_number(mobile))  # unsure: the number's zones


def test_nothing_is_guessed_without_a_country_or_in_a_country_with_several_zones() -> None:
    assert zone_for_place(None, "10001", "New York") is None  # could be an Italian CAP
    assert zone_for_place("US", None, None) is None
    assert zone_for_place("US", None, "Nowhere At All") is None
    assert zone_for_place("XX", None, None) is None


def test_the_place_a_member_gives_wins_over_their_number() -> None:
    assert member_zones(IDAHO, "US", "10001", None) == ("America/New_York", ["America/New_York"])
    assert member_zones(IDAHO, None, None, "Boise") == ("America/Boise", ["America/Boise"])  # the number's country
    assert member_zones(MILAN_MOBILE, "US", None, "New York") == ("America/New_York", ["America/New_York"])


def test_a_member_abroad_without_a_city_may_be_anywhere_in_their_country() -> None:
    sure, zones = member_zones(MILAN_MOBILE, "US", None, None)
    assert sure is None
    assert "America/New_York" in zones and "Pacific/Honolulu" in zones and "Europe/Rome" not in zones


def test_every_zone_named_is_one_zoneinfo_knows() -> None:
    names = set(zones_for_number("+18005551234")) | set(zones_for_number("+61412345678")) | set(country_zones("US"))
    for name in names | {zone_for_place("ES", None, "Las Palmas de Gran Canaria") or ""}:
        zoneinfo.ZoneInfo(name)


def test_results_are_copies_callers_may_change() -> None:
    zones_for_number(IDAHO).append("Mars/Olympus")
    member_zones(IDAHO, None, None, None)[1].clear()
    assert zones_for_number(IDAHO) == ["America/Boise", "America/Los_Angeles"]
    assert member_zones(IDAHO, None, None, None)[1] == ["America/Boise", "America/Los_Angeles"]


@pytest.mark.parametrize(
    "number",
    [
        "+12125550123",  # a US number: geographic, one zone
        "+18005550199",  # toll free: the whole plan
        "+393471234567",  # an Italian mobile: not tied to a place, the country's zone
        "+919812345678",  # an Indian mobile
        "+447911123456",  # a UK mobile
        "+61412345678",  # an Australian mobile: the country has several zones
        "+79161234567",  # a Russian mobile: eleven zones
        "+8613812345678",  # a Chinese mobile
    ],
)
def test_zones_given_the_numbers_type_are_the_zones_worked_out_without_it(number: str) -> None:
    parsed = phonenumbers.parse(number)
    region = phonenumbers.region_code_for_number(parsed)
    kind = phonenumbers.number_type(parsed)
    assert kind != phonenumbers.PhoneNumberType.UNKNOWN
    assert parsed_number_zones(parsed, region, kind) == parsed_number_zones(parsed, region)
    assert parsed_number_zones(parsed, region) == tuple(zones_for_number(number))
