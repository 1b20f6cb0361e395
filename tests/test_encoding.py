from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openline.encoding import Encoding, SegmentCount, count_segments


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", Encoding.gsm7, 0, 1),
        ("a" * 160, Encoding.gsm7, 160, 1),
        ("a" * 161, Encoding.gsm7, 161, 2),
        ("a" * 306, Encoding.gsm7, 306, 2),
        ("a" * 307, Encoding.gsm7, 307, 3),
        ("€" * 80, Encoding.gsm7, 160, 1),
        ("a" * 152 + "€" + "a", Encoding.gsm7, 155, 1),
        ("a" * 152 + "€" + "a" * 152, Encoding.gsm7, 306, 3),  # the escape pair is not split: 152 | 2+151 | 1
        ("perché più così", Encoding.gsm7, 15, 1),
        ("È vero", Encoding.ucs2, 6, 1),  # È is not in GSM 03.38
        ("😀" * 35, Encoding.ucs2, 70, 1),
        ("😀" * 36, Encoding.ucs2, 72, 2),
        ("नमस्ते", Encoding.ucs2, 6, 1),
    ],
)
def test_known_counts(text: str, encoding: Encoding, units: int, segments: int) -> None:
    assert count_segments(text) == SegmentCount(encoding, units, segments)


@given(st.text(max_size=400))
def test_segments_hold_the_text(text: str) -> None:
    count = count_segments(text)
    per_part = 160 if count.encoding is Encoding.gsm7 else 70
    if count.units <= per_part:
        assert count.segments == 1
    else:
        part = 153 if count.encoding is Encoding.gsm7 else 67
        assert count.segments * part >= count.units
        assert (count.segments - 1) * part < count.units + count.segments  # at most one unit lost per split


ITALY = "\U0001f1ee\U0001f1f9"  # a flag: two regional indicators, four UTF-16 units, one character
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 11 units joined by ZWJ


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        (ITALY * 17, Encoding.ucs2, 68, 1),
        # 18 flags: 16 fit in the first part (64 units); the 17th would need 68, so it moves on whole.
        (ITALY * 18, Encoding.ucs2, 72, 2),
        ("a" * 66 + ITALY, Encoding.ucs2, 70, 1),
        ("a" * 66 + ITALY + "b", Encoding.ucs2, 71, 2),  # the flag is not cut: 66 | 4 + 1
        ("a" * 60 + FAMILY, Encoding.ucs2, 71, 2),  # the family moves whole to the second part
        ("a" * 152 + "\r\n" + "a" * 10, Encoding.gsm7, 164, 2),  # CR LF stays together: 152 | 2 + 10
        ("a" * 159 + "\r\n", Encoding.gsm7, 161, 2),
        ("L'ÈRA È QUI", Encoding.ucs2, 11, 1),  # Italian accented capitals other than É are not GSM-7
        ("É VERO", Encoding.gsm7, 6, 1),
        ("नमस्ते " * 12, Encoding.ucs2, 84, 2),
    ],
)
def test_calculator_cases(text: str, encoding: Encoding, units: int, segments: int) -> None:
    assert count_segments(text) == SegmentCount(encoding, units, segments)


def test_smart_encoding_keeps_a_text_in_gsm7() -> None:
    from openline.encoding import SMART_ENCODING, smart_encode

    text = "Don\u2019t miss it \u2014 doors open at 8\u2026 \u201cVIP\u201d only"
    assert count_segments(text).encoding is Encoding.ucs2
    plain = smart_encode(text)
    assert plain == 'Don\'t miss it - doors open at 8... "VIP" only'
    assert count_segments(plain).encoding is Encoding.gsm7
    assert all(count_segments(v).encoding is Encoding.gsm7 for v in SMART_ENCODING.values())
    assert smart_encode("नमस्ते 🎉") == "नमस्ते 🎉"  # only look-alikes change


@given(
    st.text(
        alphabet=st.sampled_from(
            [
                *list("ab €[]\r\n^{}~|\x0c"),
                *["é", "日", "😀", "👍", "\U0001f3fd", "\ufe0f", "🇮", "🇹", "\u200d", "\u0301"],
                *["क", "ष", "\u094d", "ि", "ं", "\u0600", "\u1100", "\u1161", "\u11a8", "가"],
            ]
        ),
        min_size=60,
        max_size=700,
    )
)
def test_the_fast_paths_agree_with_grapheme_packing(text: str) -> None:
    from openline.encoding import _GRAPHEME, _septets, _utf16_units

    count = count_segments(text)
    graphemes = _GRAPHEME.findall(text)
    if count.encoding is Encoding.gsm7:
        sizes, single, part = [_septets(g) for g in graphemes], 160, 153
    else:
        sizes, single, part = [_utf16_units(g) for g in graphemes], 70, 67
    expected, used = 1, 0
    if sum(sizes) > single:
        for size in sizes:
            if used + size > part and used > 0:
                expected, used = expected + 1, 0
            used += size
    assert count.segments == expected
