"""Launch night on paper: how long the autotexts take to leave, and how many would expire on the way.

Every new sender gets one autotext, and a sender number lets out a fixed number of segments per second
(a US long code: 1). Texts queued behind the others wait; Twilio drops a text still queued after its
validity period (``ValidityPeriod``, 36,000 s = 10 h by default, error 30036), and openline's dispatcher
drops its own queued texts after the same 10 hours. So with ``n`` first texts of ``s`` segments each and a
throughput of ``r`` segments/s, text ``k`` (0-based) has left once ``(k + 1) * s / r`` seconds have passed:

- everyone is answered after ``n * s / r`` seconds;
- ``min(n, floor(V * r / s))`` are answered within the validity ``V``; the rest expire;
- nobody expires when ``r >= n * s / V``, the throughput needed.

Worked example: 50,000 first texts of one segment on one 1-segment/s long code take 50,000 s (13.9 h);
36,000 leave within 10 h and 14,000 expire; answering everyone in time needs 50,000 / 36,000 = 1.39
segments/s, so a second long code (or a toll-free number).

The arithmetic is exact (fractions of the given floats), so "nobody expires" and "the throughput is at
least the needed one" always agree, even at the boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["DEFAULT_VALIDITY_SECONDS", "Projection", "describe", "project"]

# Twilio's default (and largest) ValidityPeriod; openline's dispatcher gives up on a queued text after as long.
DEFAULT_VALIDITY_SECONDS = 36_000


@dataclass(frozen=True)
class Projection:
    first_texts: int
    segments_per_text: float  # the autotext's segments (an average when languages differ)
    throughput: float  # segments per second the sender(s) let out
    validity: float  # seconds a text may wait
    drain_seconds: float  # until the last autotext has left (expired ones included, as if none expired)
    answered_in_time: int
    expired: int
    needed_throughput: float  # the least segments/s that answers everyone within the validity

    @property
    def enough(self) -> bool:
        return self.expired == 0


def _exact(value: float, name: str) -> Fraction:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number (got {value!r})")
    return Fraction(value)


def _float_at_least(value: Fraction) -> float:
    """The smallest float not below ``value``: a throughput at least this is enough, and one below it is not."""
    approx = float(value)
    return approx if Fraction(approx) >= value else math.nextafter(approx, math.inf)


def project(
    first_texts: int,
    throughput: float,
    *,
    segments_per_text: float = 1.0,
    validity: float = DEFAULT_VALIDITY_SECONDS,
) -> Projection:
    """What ``first_texts`` autotexts of ``segments_per_text`` segments do to a sender letting out
    ``throughput`` segments/s, with texts expiring after ``validity`` seconds in the queue."""
    if first_texts < 0:
        raise ValueError(f"first_texts must be 0 or more (got {first_texts})")
    n = Fraction(first_texts)
    rate = _exact(throughput, "throughput")
    segments = _exact(segments_per_text, "segments_per_text")
    period = _exact(validity, "validity")
    in_time = min(first_texts, math.floor(period * rate / segments))
    return Projection(
        first_texts=first_texts,
        segments_per_text=segments_per_text,
        throughput=throughput,
        validity=validity,
        drain_seconds=float(n * segments / rate),
        answered_in_time=in_time,
        expired=first_texts - in_time,
        needed_throughput=_float_at_least(n * segments / period),
    )


def _hours(seconds: float) -> str:
    return (
        f"{seconds / 3600:.1f} h"
        if seconds >= 3600
        else f"{seconds / 60:.1f} min"
        if seconds >= 60
        else f"{seconds:.0f} s"
    )


def describe(projection: Projection, sender_mps: float | None = None) -> list[str]:
    """The projection in a few sentences; ``sender_mps`` (one number's rate) turns the need into numbers."""
    p = projection
    lines = [
        f"{p.first_texts:,} first texts x {p.segments_per_text:.3g} segment(s) at {p.throughput:g} segments/s: "
        f"the last autotext leaves after {_hours(p.drain_seconds)}."
    ]
    if p.enough:
        lines.append(
            f"All are answered within the {_hours(p.validity)} validity "
            f"(needed: {p.needed_throughput:.2f} segments/s, available: {p.throughput:g})."
        )
        return lines
    lines.append(
        f"Within the {_hours(p.validity)} validity {p.answered_in_time:,} are answered and {p.expired:,} expire "
        "(Twilio error 30036; openline also drops texts queued for 10 hours)."
    )
    need = f"Answering everyone in time needs at least {p.needed_throughput:.2f} segments/s"
    if sender_mps:
        numbers = math.ceil(p.needed_throughput / sender_mps - 1e-9)
        need += (
            f": {numbers} numbers like this one ({sender_mps:g} segments/s each), or a toll-free number or short code"
        )
    lines.append(need + ".")
    return lines
