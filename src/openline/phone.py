"""Phone numbers and sender addresses, checked with libphonenumber's data."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.phonenumberutil import _number_type_helper

from openline.states import SenderKind

__all__ = ["InvalidAddress", "classify_sender_address", "region_and_type", "region_of", "to_e164"]

_SHORT_CODE = re.compile(r"^\d{3,8}$")
# GSM alphanumeric sender IDs: up to 11 letters, digits and spaces, at least one letter.
_ALPHANUMERIC = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")


class InvalidAddress(ValueError):
    """A phone number or sender address that cannot be used; the message says why."""


# A flood repeats the same numbers (each fan texts several times; every text names our number), and
# libphonenumber's parse and validation cost ~15 us; a result depends only on the arguments.
@lru_cache(maxsize=65_536)
def to_e164(raw: str, default_region: str | None = None) -> str:
    """Parse a phone number written by a person or a provider into E.164 (``+393471234567``)."""
    text = raw.strip()
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidAddress(f"{raw!r} is not a phone number ({exc._msg})") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidAddress(f"{raw!r} is not a valid phone number in any numbering plan")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def region_and_type(number: phonenumbers.PhoneNumber) -> tuple[str | None, int]:
    """``(region_code_for_number(number), number_type(number))``, in one pass over the plan's patterns.

    libphonenumber has no public call for both: ``number_type`` finds the region again, which for a
    +1 number means matching it against a region's type patterns twice more. An import of a million
    rows spent a sixth of its time there. This follows ``region_code_for_number`` step by step and
    keeps the type it works out on the way (tests compare both against the public calls).
    """
    unknown = phonenumbers.PhoneNumberType.UNKNOWN
    code = number.country_code or 0
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
    if not regions:
        return None, unknown
    national = phonenumbers.national_significant_number(number)
    if len(regions) == 1:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0])
        return regions[0], unknown if metadata is None else _number_type_helper(national, metadata)
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            # The region is told by leading digits alone; its type is then judged by its patterns.
            if re.match(metadata.leading_digits, national):
                return region, _number_type_helper(national, metadata)
            continue
        kind = _number_type_helper(national, metadata)
        if kind != unknown:
            return region, kind
    return None, unknown


@lru_cache(maxsize=65_536)
def region_of(e164: str) -> str | None:
    """The ISO country code of a valid E.164 number (``IT`` for +39...), None if it has none (+800...)."""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None
    return None if region in (None, "001", "ZZ") else str(region)


def classify_sender_address(raw: str) -> tuple[str, SenderKind]:
    """Normalise a sender address and tell what it is: a number, a short code or an alphanumeric ID."""
    text = raw.strip()
    expected = (
        f"{raw!r} is not a sender address: expected an E.164 number (+14155550100), "
        "a short code (3-8 digits) or an alphanumeric ID (up to 11 letters and digits)"
    )
    if _SHORT_CODE.match(text):
        return text, SenderKind.short_code
    if text.startswith("+") or text.replace(" ", "").replace("-", "").isdigit():
        try:
            e164 = to_e164(text if text.startswith("+") else "+" + text)
        except InvalidAddress as exc:
            raise InvalidAddress(f"{expected}; {exc}") from None
        number = phonenumbers.parse(e164)
        if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.TOLL_FREE:
            return e164, SenderKind.toll_free
        return e164, SenderKind.long_code
    if _ALPHANUMERIC.match(text):
        return text, SenderKind.alphanumeric
    raise InvalidAddress(expected)
