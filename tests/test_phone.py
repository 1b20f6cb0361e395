"""openline.phone: region_and_type answers exactly what libphonenumber's public calls answer."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openline.phone import region_and_type

# Calling codes shared by several regions are where the one-pass look-up could part ways with
# region_code_for_number: NANPA (+1), +7, +44 with the Crown dependencies, +262, +590, +599...
_SHARED = sorted(code for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items() if len(regions) > 1)
_ALL = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _public(number: phonenumbers.PhoneNumber) -> tuple[str | None, int]:
    return phonenumbers.region_code_for_number(number), phonenumbers.number_type(number)


def _examples() -> list[phonenumbers.PhoneNumber]:
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in range(phonenumbers.PhoneNumberType.UNKNOWN):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                found.append(example)
    return found


def test_every_example_number_of_every_region_and_type_agrees() -> None:
    examples = _examples()
    assert len(examples) > 1_000
    for number in examples:
        assert region_and_type(number) == _public(number), phonenumbers.format_number(number, 0)


@pytest.mark.parametrize(
    ("e164", "region"),
    [
        ("+12125550123", "US"),
        ("+14165550123", "CA"),
        ("+12685550123", "AG"),  # told by leading digits
        ("+447624123456", "IM"),  # a Crown dependency inside +44
        ("+79161234567", "RU"),
        ("+77012345678", "KZ"),
        ("+80012345678", "001"),  # non-geographic
    ],
)
def test_regions_sharing_a_calling_code_are_told_apart(e164: str, region: str) -> None:
    number = phonenumbers.parse(e164)
    assert region_and_type(number)[0] == region
    assert region_and_type(number) == _public(number)


@settings(max_examples=3_000)
@given(
    code=st.sampled_from(_SHARED) | st.sampled_from(_ALL),
    national=st.integers(min_value=0, max_value=10**14),
    leading_zero=st.booleans(),
)
def test_any_number_valid_or_not_agrees(code: int, national: int, leading_zero: bool) -> None:
    number = phonenumbers.PhoneNumber(country_code=code, national_number=national)
    if leading_zero:
        number.italian_leading_zero = True
    assert region_and_type(number) == _public(number)


@settings(max_examples=3_000)
@given(base=st.sampled_from(_examples()), digits=st.lists(st.integers(0, 9), min_size=1, max_size=3))
def test_numbers_one_digit_away_from_valid_ones_agree(base: phonenumbers.PhoneNumber, digits: list[int]) -> None:
    # Near-valid numbers probe the patterns' edges far more often than random digits do.
    text = str(base.national_number)
    for i, digit in enumerate(digits):
        position = (i * 7 + digit) % len(text)
        text = text[:position] + str(digit) + text[position + 1 :]
    number = phonenumbers.PhoneNumber(country_code=base.country_code, national_number=int(text))
    assert region_and_type(number) == _public(number)


def test_an_unknown_calling_code_has_no_region_and_no_type() -> None:
    number = phonenumbers.PhoneNumber(country_code=999, national_number=12345678)
    assert region_and_type(number) == (None, phonenumbers.PhoneNumberType.UNKNOWN)
