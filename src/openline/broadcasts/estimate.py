"""The estimate: before anything is sent, who gets what, how many segments, what it costs, how long it takes.

It plans every member exactly as fan-out will (same Planner, same personalisation, same rewritten
links), so its numbers are the ones the send produces, as of now.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from openline.broadcasts.plan import Planned, Planner, Skipped
from openline.broadcasts.store import Broadcast
from openline.encoding import Encoding, count_segments

__all__ = ["Estimate", "SenderTime", "estimate"]

_ENCODING_NAMES = {Encoding.gsm7: "GSM-7", Encoding.ucs2: "UCS-2"}
_BATCH = 2000
_DISPLAY_FIELDS = ("first_name", "last_name", "city")


@dataclass(frozen=True)
class SenderTime:
    address: str
    mps: float
    texts: int
    segments: int
    finishes_at: datetime


@dataclass
class Estimate:
    start: datetime
    recipients: int = 0
    segments: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    by_encoding: Counter[str] = field(default_factory=Counter)
    by_segments: Counter[int] = field(default_factory=Counter)
    by_variant: Counter[str] = field(default_factory=Counter)
    # Why texts are UCS-2 (a character, and where it came from), and why some cost three or more segments.
    tipped: Counter[str] = field(default_factory=Counter)
    waits: Counter[str] = field(default_factory=Counter)
    currency: str = "USD"
    cost: float = 0.0
    unpriced: Counter[str] = field(default_factory=Counter)  # segments to countries with no price
    senders: list[SenderTime] = field(default_factory=list)
    finishes_at: datetime | None = None

    @property
    def duration(self) -> timedelta:
        return (self.finishes_at - self.start) if self.finishes_at else timedelta(0)

    def summary(self) -> list[str]:
        """The estimate in a few plain lines (the CLI prints them; the API sends them along)."""
        lines = [f"{_count(self.recipients, 'recipient')}, {_count(self.segments, 'segment')}, {self._cost_text()}"]
        if self.senders:
            rates = ", ".join(f"{s.address} at {s.mps:g} seg/s" for s in self.senders)
            lines.append(f"≈ {_duration_text(self.duration)} to send ({rates})")
        for reason, n in self.waits.most_common():
            lines.append(f"{n:,} wait for {reason}")
        for reason, n in self.skipped.most_common():
            lines.append(f"{n:,} skipped: {reason}")
        encodings = ", ".join(f"{n:,} {name}" for name, n in sorted(self.by_encoding.items()))
        if encodings:
            spread = ", ".join(f"{n:,} x {k}" for k, n in sorted(self.by_segments.items()))
            lines.append(f"encoding: {encodings}; segments per text: {spread}")
        for why, n in self.tipped.most_common(5):
            lines.append(f"{n:,} {why}")
        return lines

    def _cost_text(self) -> str:
        text = f"≈ {self.cost:,.2f} {self.currency}"
        if self.unpriced:
            missing = ", ".join(f"{country} ({_count(n, 'segment')})" for country, n in self.unpriced.most_common())
            text += f" plus texts to countries with no price set: {missing} (`openline broadcast price`)"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "recipients": self.recipients,
            "segments": self.segments,
            "skipped": dict(self.skipped),
            "encoding": dict(self.by_encoding),
            "segments_per_text": {str(k): n for k, n in sorted(self.by_segments.items())},
            "variants": dict(self.by_variant),
            "tipped": dict(self.tipped),
            "waits": dict(self.waits),
            "cost": round(self.cost, 4),
            "currency": self.currency,
            "unpriced_segments": dict(self.unpriced),
            "start": self.start.isoformat(),
            "finishes_at": self.finishes_at.isoformat() if self.finishes_at else None,
            "duration_seconds": round(self.duration.total_seconds()),
            "senders": [
                {
                    "address": s.address,
                    "mps": s.mps,
                    "texts": s.texts,
                    "segments": s.segments,
                    "finishes_at": s.finishes_at.isoformat(),
                }
                for s in self.senders
            ],
            "summary": self.summary(),
        }


def estimate(
    conn: sa.Connection,
    broadcast: Broadcast,
    *,
    now: datetime,
    base_url: str,
    link_key: bytes,
    join_key: bytes | None = None,
) -> Estimate:
    """Plan every member of the broadcast's segment as of ``now`` and add it all up (the keys as for
    :class:`Planner`)."""
    planner = Planner(conn, broadcast, now=now, base_url=base_url, link_key=link_key, join_key=join_key)
    schedule_start = broadcast.schedule.at or broadcast.schedule.fanout_at() or now
    result = Estimate(start=max(now, schedule_start), currency=planner.settings.currency)
    per_sender: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    senders = {}
    cursor: int | None = None
    while True:
        rows = planner.members(conn, cursor, _BATCH)
        if not rows:
            break
        cursor = rows[-1].id
        for row, plan in zip(rows, planner.plan(conn, rows), strict=True):
            if isinstance(plan, Skipped):
                result.skipped[plan.reason] += 1
                continue
            _add(result, planner, plan, row)
            senders[plan.sender.id] = plan.sender
            per_sender[plan.sender.id].append((plan.not_before, plan.segments))
    for sender_id, texts in per_sender.items():
        sender = senders[sender_id]
        done = _send_time(texts, sender.mps, sender.daily_cap)
        result.senders.append(SenderTime(sender.address, sender.mps, len(texts), sum(s for _, s in texts), done))
        result.finishes_at = max(result.finishes_at or done, done)
    return result


def _add(result: Estimate, planner: Planner, plan: Planned, row: Any) -> None:
    result.recipients += 1
    result.segments += plan.segments
    result.by_encoding[_ENCODING_NAMES[plan.encoding]] += 1
    result.by_segments[plan.segments] += 1
    result.by_variant[plan.variant] += 1
    if plan.deferred_by is not None and plan.not_before > result.start + timedelta(minutes=1):
        result.waits[plan.deferred_by] += 1
    price = planner.settings.price_for(plan.country)
    if price is None:
        result.unpriced[plan.country or "unknown country"] += plan.segments
    else:
        result.cost += price * plan.segments
    if plan.encoding is Encoding.ucs2:
        result.tipped[f"are UCS-2 because {_ucs2_cause(planner, plan, row)}"] += 1
    if plan.segments >= 3:
        result.tipped[f"cost {plan.segments} segments: {len(plan.body)} characters once personalised"] += 1


def _ucs2_cause(planner: Planner, plan: Planned, row: Any) -> str:
    """Where the first character that GSM-7 cannot carry came from: the text, or the member's data."""
    odd = next((c for c in plan.body if count_segments(c).encoding is Encoding.ucs2), "?")
    variant = next(v for v in planner.broadcast.message.variants if v.name == plan.variant)
    source = variant.translations.get(plan.language, variant.body) if plan.language else variant.body
    if odd in source or odd in planner.settings.disclosure:
        return f"the text itself has {odd!r}"
    for name in _DISPLAY_FIELDS:
        value = getattr(row, name, None)
        if value and odd in str(value):
            return f"their {name.replace('_', ' ')} has {odd!r}"
    return f"their personal data has {odd!r}"


def _send_time(texts: list[tuple[datetime, int]], mps: float, daily_cap: int | None) -> datetime:
    """When one sender finishes, pacing ``mps`` segments a second from each text's earliest time and
    keeping to its daily cap (which resets at midnight UTC)."""
    texts.sort(key=lambda t: t[0])
    clock = texts[0][0]
    day, used = clock.date(), 0
    for not_before, segments in texts:
        clock = max(clock, not_before)
        if daily_cap is not None:
            if clock.date() != day:
                day, used = clock.date(), 0
            if used + segments > daily_cap:
                clock = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
                day, used = clock.date(), 0
            used += segments
        clock += timedelta(seconds=segments / mps)
    return clock


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _duration_text(duration: timedelta) -> str:
    seconds = duration.total_seconds()
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
