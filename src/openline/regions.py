"""A member's state or province, as an ISO 3166-2 code (``US-CA``, ``CA-ON``).

Known in the US and its territories, from the ZIP code (the ``zipcodes`` package) or else the
number's area code, and in Canada, from the postal code's first letter or else the area code
(libphonenumber's place data; area codes never cross a state or provincial line). Segments ask it
("fans in California"); sending windows ask the US states' laws by it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import phonenumbers

from openline.phone import region_of

__all__ = ["US_TERRITORIES", "ZIP_COUNTRIES", "member_region", "nanp_region", "zip_entry", "zip_region"]

# ISO 3166-2 codes of the states, DC and the territories, which the US federal rules cover.
_US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA", "Colorado": "CO",
    "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA",
    "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN",
    "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX",
    "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington State": "WA", "West Virginia": "WV",
    "Wisconsin": "WI", "Wyoming": "WY", "Washington D.C.": "DC", "District of Columbia": "DC",
    "Puerto Rico": "PR", "Guam": "GU", "American Samoa": "AS", "Northern Mariana Islands": "MP",
    "U.S. Virgin Islands": "VI", "United States Virgin Islands": "VI",
}  # fmt: skip
US_TERRITORIES = frozenset({"PR", "VI", "GU", "AS", "MP", "UM"})
_US_CODES = frozenset(_US_STATES.values()) | US_TERRITORIES
# Countries whose postcodes are US ZIP codes (the territories the US Postal Service serves).
ZIP_COUNTRIES = frozenset({"US"}) | US_TERRITORIES
# libphonenumber's names for Canadian area codes. Two cover several provinces ("Nova Scotia/Prince
# Edward Island", the three territories) and so tell none.
_CA_PROVINCES = {
    "Alberta": "AB", "British Columbia": "BC", "Manitoba": "MB", "New Brunswick": "NB",
    "Newfoundland and Labrador": "NL", "Nova Scotia": "NS", "Ontario": "ON", "Prince Edward Island": "PE",
    "Quebec": "QC", "Saskatchewan": "SK", "Yukon": "YT", "Northwest Territories": "NT", "Nunavut": "NU",
}  # fmt: skip
_CA_CODES = frozenset(_CA_PROVINCES.values())
# Canada Post: a postal code's first letter is its province (X is both the Northwest Territories and Nunavut).
_POSTAL_LETTERS = {
    "A": "NL", "B": "NS", "C": "PE", "E": "NB", "G": "QC", "H": "QC", "J": "QC", "K": "ON", "L": "ON",
    "M": "ON", "N": "ON", "P": "ON", "R": "MB", "S": "SK", "T": "AB", "V": "BC", "Y": "YT",
}  # fmt: skip
_POSTAL_CODE = re.compile(r"[A-Za-z][0-9][A-Za-z]")
_PLACE_SUFFIX = re.compile(r",\s*([A-Z]{2})$")  # libphonenumber's "New York, NY"


def member_region(phone: str, country: str | None, postcode: str | None, number_country: str | None = "") -> str | None:
    """Where the member lives, as an ISO 3166-2 code, or None where it is not known.

    The postcode wins over the number, which may have moved with them. A member who gave a country
    other than their number's gets no region from the number. ``number_country``, when the caller
    has it already (an import's checked numbers), saves parsing the number again.
    """
    if number_country == "":
        number_country = region_of(phone)
    code = (country or "").strip().upper() or number_country
    place = (postcode or "").strip()
    if place and code in ZIP_COUNTRIES:
        found = zip_region(place)
        if found is not None:
            return found
    if place and code == "CA" and _POSTAL_CODE.match(place) and place[0].upper() in _POSTAL_LETTERS:
        return f"CA-{_POSTAL_LETTERS[place[0].upper()]}"
    if code == number_country and phone.startswith("+1"):
        return nanp_region(phone)
    return None


# Imports and forms repeat the same places; time zones and regions both read a ZIP's entry.
@lru_cache(maxsize=65_536)
def zip_entry(postcode: str) -> Mapping[str, Any] | None:
    """The ``zipcodes`` package's entry for a ZIP code (ZIP+4 allowed: its first five digits), or None."""
    import zipcodes

    digits = postcode.strip()[:5]
    if len(digits) != 5 or not digits.isdigit():
        return None
    try:
        found = zipcodes.matching(digits)  # type: ignore[no-untyped-call]
    except ValueError:
        return None
    return found[0] if found else None


def zip_region(postcode: str) -> str | None:
    """``US-XX`` for a ZIP code of a state, DC or a territory (ZIP+4 allowed); else None."""
    entry = zip_entry(postcode)
    state = str(entry.get("state") or "") if entry else ""
    return f"US-{state}" if state in _US_CODES else None


def nanp_region(phone: str) -> str | None:
    """``US-XX`` or ``CA-XX`` for a +1 number whose area code (or exchange) tells it; else None."""
    digits = phone[2:]
    if len(digits) != 10 or not digits.isdigit():  # not E.164: take its digits
        digits = "".join(c for c in phone if c.isdigit())[1:]
        if len(digits) != 10:
            return None
    return _exchange_region(digits[:6])


# A million members share a few thousand area codes. The cache is per area code and exchange
# (NPA-NXX) because for some area codes (203, 310, 713, 718...) libphonenumber only knows places per
# exchange; its data never looks further than the exchange, so any number of it stands for all.
@lru_cache(maxsize=65_536)
def _exchange_region(npa_nxx: str) -> str | None:
    # Imported on first use: the place data takes a fifth of a second to load, which every command
    # would otherwise pay at start.
    from phonenumbers import geocoder

    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(npa_nxx + "0000"))
    place = str(geocoder.description_for_valid_number(number, "en")).strip()
    if place in _US_STATES:
        return f"US-{_US_STATES[place]}"
    if place in _CA_PROVINCES:
        return f"CA-{_CA_PROVINCES[place]}"
    # "Toronto, ON" or "New York, NY": no US state shares a code with a Canadian province.
    suffix = _PLACE_SUFFIX.search(place)
    code = suffix.group(1) if suffix else ""
    return f"US-{code}" if code in _US_CODES else f"CA-{code}" if code in _CA_CODES else None
