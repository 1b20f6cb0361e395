"""A member's state or province, from their postcode or else their number."""

from __future__ import annotations

import pytest

from openline.regions import member_region, nanp_region, zip_region


@pytest.mark.parametrize(
    ("phone", "country", "postcode", "region"),
    [
        ("+12125550123", None, None, "US-NY"),  # the area code
        ("+12035550123", "US", None, "US-CT"),  # an area code libphonenumber knows per exchange
        ("+12125550123", None, "94103", "US-CA"),  # the ZIP code wins: they moved
        ("+12125550123", "US", "94103-1234", "US-CA"),
        ("+12125550123", "US", "not a zip", "US-NY"),
        ("+17875550123", None, None, "US-PR"),
        ("+14165550123", None, None, "CA-ON"),
        ("+14165550123", "CA", "V6B 1A1", "CA-BC"),  # a Vancouver postal code
        ("+14165550123", "ca", "x0a 0h0", "CA-ON"),  # X is two territories: the number decides
        ("+19025550123", None, None, None),  # Nova Scotia and Prince Edward Island share 902
        ("+12125550123", "IT", None, None),  # lives in Italy: the number says nothing of where
        ("+393471234567", None, "20121", None),  # no regions outside the US and Canada
        ("+393471234567", "US", "10001", "US-NY"),  # an Italian number living in New York
    ],
)
def test_a_members_region(phone: str, country: str | None, postcode: str | None, region: str | None) -> None:
    assert member_region(phone, country, postcode) == region


def test_the_number_country_may_be_given_and_must_agree() -> None:
    assert member_region("+12125550123", None, None, "US") == "US-NY"
    assert member_region("+12125550123", "US", None, None) is None  # the caller found no country in it


def test_zip_and_area_code_lookups() -> None:
    assert zip_region("83702") == "US-ID" and zip_region("00000") is None and zip_region("1234") is None
    assert nanp_region("+16045550123") == "CA-BC" and nanp_region("+1 (212) 555-0123") == "US-NY"
    assert nanp_region("+44") is None
