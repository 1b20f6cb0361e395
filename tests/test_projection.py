"""The launch-night projection: how long autotexts take to leave a sender, and how many expire on the way."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openline.simulate.projection import DEFAULT_VALIDITY_SECONDS, describe, project


def test_the_worked_example() -> None:
    # 50,000 first texts on one 1-segment/s long code, Twilio's 10-hour validity.
    p = project(50_000, 1.0)
    assert p.validity == DEFAULT_VALIDITY_SECONDS == 36_000
    assert p.drain_seconds == 50_000  # 13.9 h
    assert round(p.drain_seconds / 3600, 1) == 13.9
    assert (p.answered_in_time, p.expired) == (36_000, 14_000)
    assert p.needed_throughput == pytest.approx(50_000 / 36_000) and round(p.needed_throughput, 2) == 1.39
    assert not p.enough
    text = "\n".join(describe(p, sender_mps=1.0))
    assert "13.9 h" in text and "36,000 are answered and 14,000 expire" in text
    assert "at least 1.39 segments/s: 2 numbers like this one" in text

    # A second long code (2 segments/s) answers everyone, in 6.9 h.
    two = project(50_000, 2.0)
    assert (two.expired, two.answered_in_time, round(two.drain_seconds / 3600, 1)) == (0, 50_000, 6.9)
    assert two.enough and "All are answered" in describe(two)[1]


def test_segments_and_validity_count() -> None:
    # A two-segment autotext (e.g. one in Hindi) halves what one number answers.
    p = project(50_000, 1.0, segments_per_text=2)
    assert (p.answered_in_time, p.expired, p.drain_seconds) == (18_000, 32_000, 100_000)
    assert p.needed_throughput == pytest.approx(100_000 / 36_000)
    # A shorter ValidityPeriod: 1 hour at 1 segment/s answers 3,600.
    assert project(50_000, 1.0, validity=3_600).answered_in_time == 3_600
    assert project(0, 1.0).enough and project(0, 1.0).needed_throughput == 0


def test_nonsense_is_refused() -> None:
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError):
            project(10, bad)
    with pytest.raises(ValueError):
        project(-1, 1.0)


rates = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


@given(
    n=st.integers(min_value=0, max_value=2_000_000),
    throughput=rates,
    segments=st.sampled_from([1, 2, 3, 1.5, 2.39]),
    validity=st.integers(min_value=1, max_value=36_000),
)
def test_nothing_expires_exactly_when_the_throughput_is_enough(
    n: int, throughput: float, segments: float, validity: int
) -> None:
    p = project(n, throughput, segments_per_text=segments, validity=validity)
    assert (p.expired == 0) == (throughput >= p.needed_throughput)
    assert p.answered_in_time + p.expired == n
    # At exactly the needed throughput nobody expires; just below it someone does.
    at_need = project(n, p.needed_throughput, segments_per_text=segments, validity=validity) if n else None
    if at_need is not None:
        assert at_need.expired == 0
        below = math.nextafter(p.needed_throughput, 0)
        if below > 0:
            assert project(n, below, segments_per_text=segments, validity=validity).expired > 0


@given(n=st.integers(min_value=1, max_value=1_000_000), throughput=rates)
def test_more_throughput_never_expires_more(n: int, throughput: float) -> None:
    slower, faster = project(n, throughput), project(n, throughput * 2)
    assert faster.expired <= slower.expired
    assert faster.drain_seconds == pytest.approx(slower.drain_seconds / 2)
