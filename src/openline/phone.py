"""Phone numbers and sender addresses, checked with libphonenumber's data."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from openline.states import SenderKind

__all__ = ["InvalidAddress", "classify_sender_address", "region_of", "to_e164"]

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
