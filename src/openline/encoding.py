"""How many SMS segments a text costs: GSM-7 when every character fits, UCS-2 otherwise.

GSM 03.38: the basic table costs one septet a character, the extension table (``^{}\\[~]|€`` and form
feed) two. A single message holds 160 septets; concatenated messages lose 7 septets each to the
header (153). UCS-2 counts UTF-16 code units (an emoji is two, a flag four): 70 in one message, 67 per
part. A part never ends in the middle of a user-perceived character (an escape pair, a surrogate pair,
a flag, an emoji sequence joined by ZWJ, a Devanagari syllable with its vowel signs, CR LF): the whole
grapheme moves to the next part, as Twilio's segment calculator does.

:func:`smart_encode` optionally replaces look-alike punctuation (curly quotes, dashes, ellipses, odd
spaces) with GSM-7 equivalents, so one stray apostrophe does not turn a 1-segment text into a
3-segment UCS-2 one.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import regex

__all__ = ["SMART_ENCODING", "Encoding", "SegmentCount", "count_segments", "smart_encode"]

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")
_GSM = _GSM_BASIC | _GSM_EXTENSION
_GRAPHEME = regex.compile(r"\X")
_ESCAPES = regex.compile("[" + regex.escape("".join(sorted(_GSM_EXTENSION))) + "]")
# What can make several code points one character: combining marks (Devanagari vowel signs, accents),
# ZWJ and variation selectors (emoji sequences), regional indicators (flags), skin tones, CR (of CR LF).
_JOINING = regex.compile(r"[\p{M}\u200d\ufe0f\U0001f1e6-\U0001f1ff\U0001f3fb-\U0001f3ff\r]")
# A grapheme boundary surely lies between two characters when the left one joins nothing that follows
# it and the right one joins nothing before it (Unicode's GB3-GB9c, GB11), unless both are regional
# indicators (GB12-13, flags): otherwise GB999 breaks. LEFT: CR, Prepend, ZWJ, Hangul jamo and
# syllables, Indic linkers and the marks inside conjuncts; RIGHT: LF, Extend, ZWJ, SpacingMark, Hangul
# vowels and trailing consonants.
_JOINS_RIGHT = regex.compile(
    r"[\r\p{Grapheme_Cluster_Break=Prepend}\p{Grapheme_Cluster_Break=ZWJ}\p{Grapheme_Cluster_Break=L}"
    r"\p{Grapheme_Cluster_Break=V}\p{Grapheme_Cluster_Break=T}\p{Grapheme_Cluster_Break=LV}"
    r"\p{Grapheme_Cluster_Break=LVT}\p{InCB=Linker}\p{InCB=Extend}]"
)
_JOINS_LEFT = regex.compile(
    r"[\n\p{Grapheme_Cluster_Break=Extend}\p{Grapheme_Cluster_Break=ZWJ}\p{Grapheme_Cluster_Break=SpacingMark}"
    r"\p{Grapheme_Cluster_Break=V}\p{Grapheme_Cluster_Break=T}]"
)
_REGIONAL = regex.compile(r"\p{Grapheme_Cluster_Break=Regional_Indicator}")
_ASTRAL = regex.compile(r"[\U00010000-\U0010ffff]")

# Look-alikes and the GSM-7 text that replaces them (smart encoding). Each maps to characters of the
# basic table, so the replacement never costs more septets than a plain ASCII writer would have used.
SMART_ENCODING: dict[str, str] = {
    "\u00ab": '"',
    "\u00bb": '"',
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u02ba": '"',
    "\u02dd": '"',
    "\u02ee": '"',
    "\u301d": '"',
    "\u301e": '"',
    "\uff02": '"',
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u02b9": "'",
    "\u02bc": "'",
    "\u02c8": "'",
    "\u0301": "'",
    "\u275b": "'",
    "\u275c": "'",
    "\uff07": "'",
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    "\ufe58": "-",
    "\ufe63": "-",
    "\uff0d": "-",
    "\u2026": "...",
    "\u2022": "-",
    "\u00b7": ".",
    "\u2044": "/",
    "\u2215": "/",
    "\uff0f": "/",
    "\u00a0": " ",
    "\u2000": " ",
    "\u2001": " ",
    "\u2002": " ",
    "\u2003": " ",
    "\u2004": " ",
    "\u2005": " ",
    "\u2006": " ",
    "\u2007": " ",
    "\u2008": " ",
    "\u2009": " ",
    "\u200a": " ",
    "\u202f": " ",
    "\u205f": " ",
    "\u3000": " ",
    "\u200b": "",
    "\u200c": "",
    "\u200d": "",
    "\u2060": "",
    "\ufeff": "",
    "\u02c6": "^",
    "\u02dc": "~",
    "\u2039": "<",
    "\u203a": ">",
    "\u02c2": "<",
    "\u02c3": ">",
    "\u00bc": "1/4",
    "\u00bd": "1/2",
    "\u00be": "3/4",
}
_SMART_TABLE = str.maketrans(SMART_ENCODING)


class Encoding(StrEnum):
    gsm7 = "gsm7"
    ucs2 = "ucs2"


@dataclass(frozen=True)
class SegmentCount:
    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def smart_encode(text: str) -> str:
    """``text`` with look-alike punctuation replaced by GSM-7 characters (see SMART_ENCODING)."""
    return text.translate(_SMART_TABLE)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _septets(text: str) -> int:
    return len(text) + sum(text.count(c) for c in _GSM_EXTENSION)  # str.count runs in C


def _parts(text: str, part: int, size: Callable[[int, int], int]) -> int:
    """Parts of ``part`` units for a long text in which every code point is its own character, where
    ``size(start, end)`` is the units of ``text[start:end]``. Each cut is found by arithmetic, not by
    walking characters (a code-point index never splits a surrogate pair); a CR LF is kept together."""
    parts, start = 0, 0
    while start < len(text):
        end = min(len(text), start + part)
        while (over := size(start, end) - part) > 0:  # two-unit characters: take fewer
            end -= (over + 1) // 2
        if end < len(text) and text[end - 1] == "\r" and text[end] == "\n":
            end -= 1
        parts += 1
        start = end
    return parts


def _gsm_parts(text: str) -> int:
    """Parts of 153 septets for a long GSM-7 text; escape positions are found once and bisected."""
    escapes = [match.start() for match in _ESCAPES.finditer(text)]
    return _parts(text, 153, lambda a, b: b - a + bisect_left(escapes, b) - bisect_left(escapes, a))


def _surely_boundary(text: str, at: int) -> bool:
    """Whether a grapheme boundary lies before ``text[at]`` whatever surrounds the pair."""
    left, right = text[at - 1], text[at]
    if _JOINS_RIGHT.match(left) or _JOINS_LEFT.match(right):
        return False
    return not (_REGIONAL.match(left) and _REGIONAL.match(right))


def _ucs2_parts(text: str) -> int:
    """Parts of 67 code units for a long UCS-2 text that has joining characters somewhere.

    Whole graphemes are packed greedily (one that does not fit starts the next part), but they are
    only walked near each cut: a cut that is surely a boundary stands; otherwise the walk starts at the
    nearest earlier position that surely is one (or the part's start, always one)."""
    astral = [match.start() for match in _ASTRAL.finditer(text)]

    def units(a: int, b: int) -> int:
        return b - a + bisect_left(astral, b) - bisect_left(astral, a)

    parts, start, length = 0, 0, len(text)
    while start < length:
        parts += 1
        end = min(length, start + 67)
        while (over := units(start, end) - 67) > 0:
            end -= (over + 1) // 2
        if end >= length:
            break
        if _surely_boundary(text, end):
            start = end
            continue
        safe = end - 1
        while safe > start and not _surely_boundary(text, safe):
            safe -= 1
        cut = safe
        for grapheme in _GRAPHEME.finditer(text, safe):
            if grapheme.end() > end:
                break
            cut = grapheme.end()
        if cut == start:  # one grapheme longer than a part: it goes alone, whole
            cut = _GRAPHEME.match(text, start).end()  # type: ignore[union-attr]
        start = cut
    return parts


def count_segments(text: str) -> SegmentCount:
    """Encoding, units and segments of ``text`` as carriers count them."""
    if _GSM.issuperset(text):
        units = _septets(text)
        if units <= 160:
            return SegmentCount(Encoding.gsm7, units, 1)
        if "\r\n" not in text and _GSM_EXTENSION.isdisjoint(text):
            return SegmentCount(Encoding.gsm7, units, -(-units // 153))  # one septet per grapheme: no splits
        return SegmentCount(Encoding.gsm7, units, _gsm_parts(text))
    units = _utf16_units(text)
    if units <= 70:
        return SegmentCount(Encoding.ucs2, units, 1)
    if _JOINING.search(text) is None:  # every code point stands alone: no grapheme analysis needed
        return SegmentCount(Encoding.ucs2, units, _parts(text, 67, lambda a, b: _utf16_units(text[a:b])))
    return SegmentCount(Encoding.ucs2, units, _ucs2_parts(text))
