"""Exact pacing for one sender: sends spaced so the carrier's segments-per-second is never exceeded.

A virtual clock rather than a bucket of saved-up tokens: a text of ``s`` segments makes the next send
wait ``s / rate`` seconds, so a 1-segment/s long code sends one single-segment text a second (60 a
minute, never 2 in one second) and a 3-segment text costs three seconds. Idle time is not banked as a
burst, because carriers measure throughput over short windows and filter bursts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Pacer"]


class Pacer:
    def __init__(self, segments_per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if segments_per_second <= 0:
            raise ValueError("a sender's rate must be more than 0 segments per second")
        self._per_segment = 1.0 / segments_per_second
        self._clock = clock
        self._next = clock()

    def ready_at(self) -> float:
        """The clock time from which the next text may go."""
        return max(self._clock(), self._next)

    def reserve(self, segments: int) -> float:
        """Take the next slot for a text of ``segments``; returns the clock time it may be sent at."""
        start = self.ready_at()
        self._next = start + max(1, segments) * self._per_segment
        return start
