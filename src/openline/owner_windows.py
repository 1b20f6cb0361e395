"""The owner's own sending windows: which hours of each weekday, and of public holidays, broadcasts may use.

On top of the law (openline.quiet_hours), an owner may narrow the hours their broadcasts go out, in
each member's local time. Owners write them in a compact form (``parse_owner_windows``: "mon-fri
10:00-20:00", "sat,sun 10:00-18:00", "holidays closed"), settings store them as JSON
(``OwnerWindows.to_json``/``from_json``), and ``describe`` writes the compact form back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DAY_NAMES",
    "DAY_SECONDS",
    "OwnerWindows",
    "Spans",
    "clock",
    "parse_owner_windows",
]

DAY_SECONDS = 86_400  # seconds in a day of wall-clock time
_DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_ALIASES = {
    **{key: i for i, key in enumerate(_DAY_KEYS)},
    **{name.lower(): i for i, name in enumerate(DAY_NAMES)},
    "tues": 1,
    "wednes": 2,
    "thur": 3,
    "thurs": 3,
}
_HOLIDAYS = ("holidays", "holiday")

Spans = tuple[tuple[int, int], ...]  # [start, end) in seconds of the local day, sorted, disjoint


def _parse_time(text: str) -> int:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    hours, minutes = (int(match.group(1)), int(match.group(2))) if match else (99, 99)
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):  # 24:00 is allowed, as an end
        raise ValueError(f"{text!r} is not a time of day (HH:MM)")
    return hours * 3600 + minutes * 60


def _parse_span(text: str) -> tuple[int, int]:
    parts = text.split("-")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError(f"{text!r} is not a span of time (HH:MM-HH:MM, e.g. 10:00-20:00)")
    start, end = _parse_time(parts[0]), _parse_time(parts[1])
    if start == DAY_SECONDS:
        raise ValueError(f"{text}: a window cannot start at 24:00 (start the next day at 00:00)")
    if end < start:
        raise ValueError(
            f"{text}: the end is before the start; a window cannot cross midnight, so write two "
            f"(one ending at 24:00, the other starting at 00:00 the next day)"
        )
    if end == start:
        raise ValueError(f"{text}: the window is empty (the end is the start)")
    return start, end


def clock(seconds: int) -> str:
    """Seconds since midnight as the compact form writes them: 36000 is "10:00"."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _span_text(span: tuple[int, int]) -> str:
    return f"{clock(span[0])}-{clock(span[1])}"


def _merge(spans: Iterable[tuple[int, int]]) -> Spans:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


def _spans_of(value: Iterable[str] | None, label: str) -> Spans | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ValueError(f"{label}: give a list of spans such as ['10:00-20:00'], not one string")
    return _merge(_parse_span(str(text).strip()) for text in value)


@dataclass(frozen=True)
class OwnerWindows:
    """The owner's sending windows, on top of the law, in each member's local time.

    Per weekday a tuple of "HH:MM-HH:MM" spans (the end may be "24:00"); an empty tuple closes that
    day, and a day not given (None) is open all day. ``holidays`` are the spans used instead on a public
    holiday of the member's country (and region, where known); None treats holidays as ordinary days.
    Spans are kept sorted and merged, so equal windows compare (and hash) equal.
    """

    mon: tuple[str, ...] | None = None
    tue: tuple[str, ...] | None = None
    wed: tuple[str, ...] | None = None
    thu: tuple[str, ...] | None = None
    fri: tuple[str, ...] | None = None
    sat: tuple[str, ...] | None = None
    sun: tuple[str, ...] | None = None
    holidays: tuple[str, ...] | None = None
    _parsed: tuple[Spans | None, ...] = field(default=(), init=False, repr=False, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parsed = tuple(_spans_of(getattr(self, key), key) for key in (*_DAY_KEYS, "holidays"))
        for key, spans in zip((*_DAY_KEYS, "holidays"), parsed, strict=True):
            object.__setattr__(self, key, None if spans is None else tuple(_span_text(s) for s in spans))
        object.__setattr__(self, "_parsed", parsed)
        # Hashed once: the same windows key a cache lookup for each of a million members.
        object.__setattr__(self, "_hash", hash(parsed))

    def __hash__(self) -> int:
        return self._hash

    def day_spans(self, weekday: int, holiday: bool) -> Spans | None:
        """The spans (seconds of the day) for a weekday (0 = Monday), or a holiday; None: open all day."""
        if holiday and self._parsed[7] is not None:
            return self._parsed[7]
        return self._parsed[weekday]

    def describe(self) -> list[str]:
        """The compact form ``parse_owner_windows`` reads: ["mon-fri 10:00-20:00", "sat,sun 10:00-18:00"]."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, key in enumerate(_DAY_KEYS):
            spans = getattr(self, key)
            if spans is not None:
                groups.setdefault(spans, []).append(i)
        lines = [f"{_day_list(days)} {' '.join(spans) or 'closed'}" for spans, days in groups.items()]
        if self.holidays is not None:
            lines.append(f"holidays {' '.join(self.holidays) or 'closed'}")
        return lines

    def to_json(self) -> dict[str, list[str]]:
        """The days (and holidays) given, each with its spans: {"mon": ["10:00-20:00"], "sun": []}."""
        return {key: list(value) for key in (*_DAY_KEYS, "holidays") if (value := getattr(self, key)) is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> OwnerWindows:
        """Windows from ``to_json``'s form (a mapping, or its JSON text); ValueError says what is wrong."""
        mapping = json.loads(data) if isinstance(data, str) else data
        if not isinstance(mapping, Mapping):
            raise ValueError('owner windows must be an object such as {"mon": ["10:00-20:00"]}')
        unknown = sorted(set(mapping) - {*_DAY_KEYS, "holidays"})
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a day name ({', '.join(_DAY_KEYS)}, or holidays)")
        values: dict[str, tuple[str, ...] | None] = {}
        for key, value in mapping.items():
            if value is not None and (isinstance(value, str) or not isinstance(value, Sequence)):
                raise ValueError(f'{key}: give a list of spans such as ["10:00-20:00"]')
            values[key] = None if value is None else tuple(str(v) for v in value)
        return cls(**values)


def _day_list(days: list[int]) -> str:
    """Days as the compact form writes them: runs of three or more as a range ("mon-fri"), else a list."""
    runs: list[list[int]] = []
    for day in days:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts: list[str] = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{_DAY_KEYS[run[0]]}-{_DAY_KEYS[run[-1]]}")
        else:
            parts.extend(_DAY_KEYS[d] for d in run)
    return ",".join(parts)


def _parse_days(text: str) -> list[int | str]:
    """Day names, ranges ("mon-fri", "fri-mon" wraps) and "holidays", comma separated."""
    found: list[int | str] = []
    for piece in (p.strip().lower() for p in text.split(",")):
        if not piece:
            continue
        if piece in _HOLIDAYS:
            found.append("holidays")
        elif piece in ("daily", "everyday"):
            found.extend(range(7))
        elif "-" in piece:
            first, _, last = piece.partition("-")
            a, b = _day_index(first), _day_index(last)
            found.extend((a + i) % 7 for i in range((b - a) % 7 + 1))
        else:
            found.append(_day_index(piece))
    return found


def _day_index(name: str) -> int:
    index = _DAY_ALIASES.get(name.strip().lower())
    if index is None:
        raise ValueError(f"{name!r} is not a day name ({', '.join(_DAY_KEYS)}, daily, or holidays)")
    return index


def parse_owner_windows(lines: Iterable[str] | str) -> OwnerWindows:
    """Owner windows from the compact form: ``["mon-fri 10:00-20:00", "sat,sun 10:00-18:00",
    "holidays 10:00-18:00", "sun closed"]``. One line per set of days; a day with two windows gives
    both on its line ("mon 10:00-12:00 14:00-18:00"). A single string may separate lines with ";".
    """
    if isinstance(lines, str):
        lines = re.split(r"[;\n]", lines)
    given: dict[str, tuple[str, ...]] = {}
    where: dict[str, str] = {}
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        tokens = line.replace(",", ", ").split()
        first_hours = next((i for i, t in enumerate(tokens) if t[0].isdigit() or t.lower() == "closed"), len(tokens))
        days_text, hours = " ".join(tokens[:first_hours]), [t.strip(",") for t in tokens[first_hours:]]
        hours = [h for h in hours if h]
        if not days_text:
            raise ValueError(f"{line!r}: say which days first, e.g. 'mon-fri {line}'")
        if not hours:
            raise ValueError(f"{line!r}: give the hours, e.g. '{days_text} 10:00-20:00', or 'closed'")
        if any(h.lower() == "closed" for h in hours):
            if len(hours) > 1:
                raise ValueError(f"{line!r}: 'closed' cannot be combined with hours")
            spans: tuple[str, ...] = ()
        else:
            spans = tuple(_span_text(s) for s in _merge(_parse_span(h) for h in hours))
        for day in _parse_days(days_text.replace(" ", "")):
            key = day if isinstance(day, str) else _DAY_KEYS[day]
            if key in given:
                raise ValueError(
                    f"{key!r} is given twice ({where[key]!r} and {line!r}); put all of a day's windows on one line"
                )
            given[key], where[key] = spans, line
    return OwnerWindows(**given)
