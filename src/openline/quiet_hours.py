"""Sending windows: when a marketing text (a broadcast) may reach a member.

A moment is open for a member when it is inside the legal hours of every law that applies to them
(``LEGAL_RULES``: the country, and each region known for them) and inside the owner's own windows
for that local day (``OwnerWindows``, defined in openline.owner_windows and re-exported here), in
*every* zone the member may be in. Local times are wall
clock times, so a window of 08:00-21:00 moves with daylight saving time, and a window that starts
in the hour skipped in spring starts at the first instant that exists after it.

Only broadcasts obey these rules: replies and openline's own texts are not marketing.
docs/sending-windows.md lists the laws with their sources.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from openline.owner_windows import DAY_NAMES, DAY_SECONDS, OwnerWindows, Spans, clock, parse_owner_windows
from openline.phone import region_of
from openline.regions import US_TERRITORIES, ZIP_COUNTRIES, nanp_region, zip_region
from openline.timezones import country_zones

__all__ = [
    "LEGAL_RULES",
    "LegalRule",
    "NeverOpen",
    "OwnerWindows",  # re-exported from openline.owner_windows, with parse_owner_windows
    "Recipient",
    "closed_reason",
    "frequency_limit",
    "is_open",
    "legal_rules",
    "next_open",
    "parse_owner_windows",
    "recipient_for",
]

_US = 1_000_000  # microseconds in a second: instants are whole microseconds since the epoch
_DAY_US = DAY_SECONDS * _US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ONE_US = timedelta(microseconds=1)
# How far next_open looks before it gives up: a week and a day, so a window open once a week is found.
_HORIZON_DAYS = 8
_DASH = "\u2013"  # an en dash, for spans of time in sentences


class NeverOpen(ValueError):
    """No moment in the coming days is open for the member; the message says which zones and windows."""


# -- the law -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LegalRule:
    """Hours (recipient-local) when marketing texts are allowed somewhere, and how many per 24 hours."""

    where: str  # "US", "US-FL", "IN": an ISO 3166-1 country or 3166-2 region
    start: time
    end: time
    max_per_day: int | None  # marketing texts per rolling 24 hours
    source: str  # the citation
    name: str  # how reasons name it: "Florida law"


LEGAL_RULES: tuple[LegalRule, ...] = (
    LegalRule(
        "US",
        time(8),
        time(21),
        None,
        "47 CFR § 64.1200(c)(1) (FCC rules under the Telephone Consumer Protection Act)",
        "US federal law",
    ),
    LegalRule(
        "US-FL",
        time(8),
        time(20),
        3,
        "Fla. Stat. § 501.616(6)(a) and (b) (Florida Telemarketing Act, as amended by SB 1120 of 2021)",
        "Florida law",
    ),
    LegalRule(
        "US-OK",
        time(8),
        time(20),
        3,
        "Oklahoma Telephone Solicitation Act of 2022 (HB 3168), 15 O.S. § 775C.1 and following",
        "Oklahoma law",
    ),
    LegalRule(
        "US-MD",
        time(8),
        time(20),
        3,
        "Maryland Stop the Spam Calls Act of 2023 (SB 90), Md. Code, Com. Law § 14-4501 and following",
        "Maryland law",
    ),
    LegalRule(
        "US-WA",
        time(8),
        time(20),
        None,
        "RCW 19.158.040(2) (Washington Commercial Telephone Solicitation Act)",
        "Washington law",
    ),
    LegalRule(
        "IN",
        time(9),
        time(21),
        None,
        "TRAI Telecom Commercial Communications Customer Preference Regulations, 2018 (promotional communications)",
        "Indian law (TRAI)",
    ),
)


# -- who the member is ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """Where a member is, as far as sending windows are concerned (hashable: it keys the caches)."""

    country: str | None  # ISO 3166-1 alpha-2
    regions: frozenset[str]  # ISO 3166-2 codes known for the member; several when the clues disagree
    zones: tuple[str, ...]  # every candidate IANA zone; empty: the country's zones, else UTC


def recipient_for(phone: str, country: str | None, postcode: str | None, time_zones: Sequence[str] | None) -> Recipient:
    """A member's Recipient from their number (E.164), the country and postcode they gave, and their zones.

    US regions come from both the ZIP code and the number's area code, and both are kept when they
    differ: someone with a Florida number who moved to Ohio gets both, so the stricter law applies
    (Florida presumes that a Florida area code is a Florida resident).
    """
    code = (country or "").strip().upper() or region_of(phone)
    regions: set[str] = set()
    if postcode and code in ZIP_COUNTRIES:
        found = zip_region(postcode.strip())
        if found is not None:
            regions.add(found)
    if phone.startswith("+1"):
        found = nanp_region(phone)
        if found is not None and found.startswith("US-"):  # the laws here are the US states'
            regions.add(found)
    return Recipient(code, frozenset(regions), _clean_zones(tuple(time_zones or ()), code))


@lru_cache(maxsize=4_096)
def _clean_zones(zones: tuple[str, ...], country: str | None) -> tuple[str, ...]:
    """The zones that zoneinfo knows, each once; none: the country's zones; no country: UTC."""
    known: list[str] = []
    for name in zones:
        if name and name not in known and _zone_or_none(name) is not None:
            known.append(name)
    if known:
        return tuple(known)
    in_country = tuple(country_zones(country)) if country else ()
    return in_country or ("UTC",)


@lru_cache(maxsize=1_024)
def _zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def legal_rules(recipient: Recipient) -> list[LegalRule]:
    """Every legal rule that applies to the member: their country's and each of their regions'.

    A US state among the regions brings the US federal rule too (a US number abroad), and the US
    territories are covered by the federal rule like the states.
    """
    places = set(recipient.regions)
    if recipient.country:
        places.add(recipient.country)
    if recipient.country in US_TERRITORIES or any(r.startswith("US-") for r in recipient.regions):
        places.add("US")
    return [rule for rule in LEGAL_RULES if rule.where in places]


def frequency_limit(recipient: Recipient, owner_cap: int | None) -> int | None:
    """At most this many marketing texts per rolling 24 hours: the smallest legal limit and the owner's cap."""
    limits = [rule.max_per_day for rule in legal_rules(recipient) if rule.max_per_day is not None]
    if owner_cap is not None:
        limits.append(owner_cap)
    return min(limits) if limits else None


# -- evaluation ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    """One way the member may be: a zone, and the holiday calendar (country, subdivision) if it matters."""

    zone: ZoneInfo
    name: str
    calendar: tuple[str, str | None] | None


@dataclass(frozen=True)
class _Profile:
    checks: tuple[_Check, ...]
    rules: tuple[LegalRule, ...]
    legal: tuple[int, int] | None  # the laws' common window in seconds of the day; None: no law applies
    owner: OwnerWindows | None
    week: tuple[Spans, ...]  # open spans per weekday: the owner's windows within the legal one
    holiday: Spans | None  # open spans on a public holiday; None: holidays are ordinary days


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def _within(spans: Spans | None, legal: tuple[int, int] | None) -> Spans:
    base = ((0, DAY_SECONDS),) if spans is None else spans
    if legal is None:
        return base
    low, high = legal
    return tuple((max(s, low), min(e, high)) for s, e in base if max(s, low) < min(e, high))


@lru_cache(maxsize=16_384)
def _profile(recipient: Recipient, owner: OwnerWindows | None) -> _Profile:
    rules = tuple(legal_rules(recipient))
    legal = (max(_seconds(r.start) for r in rules), min(_seconds(r.end) for r in rules)) if rules else None
    names = recipient.zones or _clean_zones((), recipient.country)
    calendars: list[tuple[str, str | None] | None] = [None]
    if owner is not None and owner.holidays is not None and recipient.country:
        country = recipient.country
        subdivisions = sorted(r.split("-", 1)[1] for r in recipient.regions if r.startswith(country + "-"))
        # Several regions are several places the member may be: each calendar is checked, like each zone.
        calendars = [(country, s) for s in subdivisions] or [(country, None)]
    checks = tuple(_Check(_zone(name), name, calendar) for name in names for calendar in calendars)
    week = tuple(_within(owner.day_spans(d, False) if owner else None, legal) for d in range(7))
    holiday = _within(owner.day_spans(0, True), legal) if owner is not None and owner.holidays is not None else None
    return _Profile(checks, rules, legal, owner, week, holiday)


def _zone(name: str) -> ZoneInfo:
    zone = _zone_or_none(name)
    if zone is None:
        raise ValueError(f"{name!r} is not an IANA time zone")
    return zone


@lru_cache(maxsize=1_024)
def _holiday_table(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    """Public holidays by date; a subdivision the package does not know falls back to the country's."""
    for subdiv in (subdivision, None) if subdivision else (None,):
        for language in ("en_US", None):
            try:
                table = holidays.country_holidays(country, subdiv=subdiv, years=year, language=language)
            except NotImplementedError:  # a country or subdivision the package does not know
                break
            except (KeyError, ValueError):  # a language it does not have
                continue
            return {day: str(name) for day, name in table.items()}
    return {}


def _holiday_name(calendar: tuple[str, str | None] | None, day: int) -> str | None:
    if calendar is None:
        return None
    on = date.fromordinal(_EPOCH_ORDINAL + day)
    return _holiday_table(calendar[0], calendar[1], on.year).get(on)


def _spans_on(profile: _Profile, check: _Check, day: int) -> Spans:
    """The open spans of a local day (days since 1970-01-01) for one check."""
    if profile.holiday is not None and _holiday_name(check.calendar, day) is not None:
        return profile.holiday
    return profile.week[(day + 3) % 7]  # 1970-01-01 was a Thursday


def _offset(zone: ZoneInfo, second: int) -> int:
    offset = datetime.fromtimestamp(second, zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _stretches(zone: ZoneInfo, t0: int, t1: int) -> list[tuple[int, int, int]]:
    """[t0, t1) (microseconds, at most a day) cut where the zone's UTC offset changes: (start, end, offset)."""
    first, last = t0 // _US, (t1 - 1) // _US
    before, after = _offset(zone, first), _offset(zone, last)
    if before == after:  # no zone changes its offset twice within a day
        return [(t0, t1, before)]
    low, high = first, last  # the change is in (low, high], at a whole second: find it
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(zone, middle) == before:
            low = middle
        else:
            high = middle
    return [(t0, high * _US, before), (high * _US, t1, after)]


def _open_intervals(profile: _Profile, check: _Check, t0: int, t1: int) -> list[tuple[int, int]]:
    """The instants of [t0, t1) whose wall-clock time in the check's zone is inside an open span."""
    found: list[tuple[int, int]] = []
    for start, end, offset in _stretches(check.zone, t0, t1):
        shift = offset * _US
        for day in range((start + shift) // _DAY_US, (end - 1 + shift) // _DAY_US + 1):
            base = day * _DAY_US - shift
            for low, high in _spans_on(profile, check, day):
                a, b = max(base + low * _US, start), min(base + high * _US, end)
                if a < b:
                    found.append((a, b))
    return found


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        low, high = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if low < high:
            out.append((low, high))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _first_open(profile: _Profile, at: int) -> int | None:
    """The earliest open instant in [at, at + 8 days), in microseconds; None if there is none.

    Day by day, each check's open intervals are intersected: the first point of the intersection is
    exact, whatever the daylight saving changes, since each interval is computed from wall-clock time.
    """
    if profile.legal is not None and profile.legal[0] >= profile.legal[1]:
        return None
    horizon = at + _HORIZON_DAYS * _DAY_US
    t0 = at
    while t0 < horizon:
        t1 = min((t0 // _US + DAY_SECONDS) * _US, horizon)
        common: list[tuple[int, int]] | None = None
        for check in profile.checks:
            intervals = _open_intervals(profile, check, t0, t1)
            common = intervals if common is None else _intersect(common, intervals)
            if not common:
                break
        if common:
            return common[0][0]
        t0 = t1
    return None


def _micros(at: datetime) -> int:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} has no time zone: sending windows need an aware datetime")
    return (at - _EPOCH) // _ONE_US


def _never_message(profile: _Profile) -> str:
    zones = ", ".join(dict.fromkeys(c.name for c in profile.checks))
    laws = "; ".join(f"{r.name} {_window(_seconds(r.start), _seconds(r.end))}" for r in profile.rules) or "none"
    owner = "; ".join(profile.owner.describe()) if profile.owner is not None else "none"
    if profile.legal is not None and profile.legal[0] >= profile.legal[1]:
        return f"the laws that apply have no hour in common ({laws})"
    return (
        f"no moment in the next {_HORIZON_DAYS} days is open in every zone they may be in ({zones}); "
        f"legal hours: {laws}; owner windows: {owner or 'none'}"
    )


# Fan-out asks for a million members at the same instant, and they share a few thousand profiles.
@lru_cache(maxsize=65_536)
def _next_open_cached(recipient: Recipient, at: datetime, owner: OwnerWindows | None) -> int | str | None:
    """None: ``at`` is open; an int: the first open instant (microseconds); a str: why none opens."""
    start = _micros(at)
    profile = _profile(recipient, owner)
    found = _first_open(profile, start)
    if found is None:
        return _never_message(profile)
    return None if found == start else found


def next_open(recipient: Recipient, at: datetime, owner: OwnerWindows | None) -> datetime:
    """``at`` itself when it is open, else the earliest open instant after it (aware, UTC).

    Raises NeverOpen when nothing opens within 8 days.
    """
    found = _next_open_cached(recipient, at, owner)
    if found is None:
        return at.astimezone(UTC)
    if isinstance(found, str):
        raise NeverOpen(found)
    return _EPOCH + timedelta(microseconds=found)


@dataclass(frozen=True)
class _Closed:
    check: _Check
    local: datetime
    day: int
    since_midnight: int  # local wall-clock microseconds since midnight


def _closed_at(profile: _Profile, at: datetime) -> _Closed | None:
    """The first check in which ``at`` is outside the open spans; None when it is open in all."""
    _micros(at)  # refuses a naive datetime
    for check in profile.checks:
        local = at.astimezone(check.zone)
        day = local.toordinal() - _EPOCH_ORDINAL
        wall = (local.hour * 3600 + local.minute * 60 + local.second) * _US + local.microsecond
        if not any(low * _US <= wall < high * _US for low, high in _spans_on(profile, check, day)):
            return _Closed(check, local, day, wall)
    return None


@lru_cache(maxsize=65_536)
def _is_open_cached(recipient: Recipient, at: datetime, owner: OwnerWindows | None) -> bool:
    return _closed_at(_profile(recipient, owner), at) is None


def is_open(recipient: Recipient, at: datetime, owner: OwnerWindows | None) -> bool:
    """Whether a broadcast may reach the member at ``at`` (open in every zone they may be in)."""
    return _is_open_cached(recipient, at, owner)


def _window(start: int, end: int) -> str:
    return f"{clock(start)}{_DASH}{clock(end)}"


def _owner_spans_text(spans: Spans) -> tuple[str, str]:
    """("window" or "windows", the spans as a sentence writes them)."""
    return ("window" if len(spans) == 1 else "windows"), ", ".join(_window(s, e) for s, e in spans)


def closed_reason(recipient: Recipient, at: datetime, owner: OwnerWindows | None) -> str | None:
    """None when ``at`` is open, else why not, in plain words naming the rule and the zone."""
    profile = _profile(recipient, owner)
    closed = _closed_at(profile, at)
    if closed is None:
        return None
    zone = closed.check.name
    if profile.legal is not None:
        low, high = profile.legal
        # Name the rule that sets the bound; a region's law before the country's (it is the reason it is stricter).
        ranked = sorted(profile.rules, key=lambda r: "-" not in r.where)
        if low >= high:
            return _never_message(profile)
        if closed.since_midnight < low * _US:
            rule = next(r for r in ranked if _seconds(r.start) == low)
            return f"before {clock(low)} in {zone} ({rule.name}: {_window(_seconds(rule.start), _seconds(rule.end))})"
        if closed.since_midnight >= high * _US:
            rule = next(r for r in ranked if _seconds(r.end) == high)
            return f"after {clock(high)} in {zone} ({rule.name}: {_window(_seconds(rule.start), _seconds(rule.end))})"
    if owner is None:  # cannot happen: inside the legal hours and no owner windows is open
        return "outside the sending window"
    weekday = closed.local.weekday()
    holiday = _holiday_name(closed.check.calendar, closed.day) if profile.holiday is not None else None
    if holiday is not None:
        spans = owner.day_spans(weekday, True) or ()
        if not spans:
            return f"public holiday ({holiday}) in {zone}: the owner's windows are closed on holidays"
        noun, text = _owner_spans_text(spans)
        return f"public holiday ({holiday}) in {zone}: owner's holiday {noun} {text}"
    spans = owner.day_spans(weekday, False) or ()
    if not spans:
        return f"the owner's windows are closed on {DAY_NAMES[weekday]} in {zone}"
    noun, text = _owner_spans_text(spans)
    return f"outside the owner's {DAY_NAMES[weekday]} {noun} {text} in {zone}"
