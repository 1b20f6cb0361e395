"""What a draft broadcast would do, worked out before it is sent: the estimate, kept for a while,
and the texts a few members would get.

Tracked links are registered in a short write of their own before anything is planned, so the estimate,
the preview and "why" then run on a read connection whose writes, if any, are dropped.

An estimate plans every member of the segment (tens of seconds for a million), so a draft's page loads
it separately (htmx, or a link without JavaScript), and this process keeps each broadcast's estimate
for a few minutes: the confirmation step then shows the numbers the owner just read, at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import Request

from openline.broadcasts import Broadcast, Estimate, estimate
from openline.broadcasts.plan import Planned, Planner, register_links
from openline.encoding import Encoding
from openline.runtime import Runtime
from openline.web.dashboard.auth import read, sentence, write
from openline.web.dashboard.deps import runtime_of

__all__ = [
    "ESTIMATE_LIFETIME",
    "SAMPLES",
    "Sample",
    "estimate_of",
    "forget_estimate",
    "link_settings",
    "register_draft_links",
    "samples_of",
]

ESTIMATE_LIFETIME = timedelta(minutes=5)
SAMPLES = 3


@dataclass(frozen=True)
class Sample:
    """The text one member would get (or why they would get none)."""

    member_id: int
    phone: str
    skipped: str | None = None
    variant: str = ""
    language: str | None = None
    body: str = ""
    encoding: str = ""
    segments: int = 0
    not_before: datetime | None = None
    deferred_by: str | None = None
    zone: str = "UTC"

    @property
    def local_time(self) -> str:
        """When it would go out, on the member's own clock."""
        if self.not_before is None:
            return ""
        return f"{self.not_before.astimezone(ZoneInfo(self.zone)):%Y-%m-%d %H:%M} {self.zone}"


@dataclass(frozen=True)
class _Cached:
    at: datetime
    result: Estimate


def _cache(request: Request) -> dict[int, _Cached]:
    """This process's recent estimates by broadcast id (the app's, so each app and test has its own)."""
    state = request.app.state
    cache: dict[int, _Cached] | None = getattr(state, "dashboard_estimates", None)
    if cache is None:
        cache = state.dashboard_estimates = {}
    return cache


def forget_estimate(request: Request, broadcast_id: int) -> None:
    """Drop the broadcast's kept estimate: it was sent, paused, resumed or cancelled."""
    _cache(request).pop(broadcast_id, None)


def link_settings(runtime: Runtime) -> tuple[str, bytes]:
    """The base URL and key that tracked links are made with."""
    return runtime.base_url, runtime.key_for("tracked-link")


async def register_draft_links(runtime: Runtime, broadcast: Broadcast) -> None:
    """Register the broadcast's tracked links, in a write of their own, before it is planned."""
    base_url, key = link_settings(runtime)
    await write(runtime, lambda conn: register_links(conn, broadcast, base_url, key))


async def estimate_of(
    request: Request, broadcast: Broadcast, *, fresh: bool = False
) -> tuple[Estimate | str, datetime]:
    """The draft's estimate and when it was made: kept for ESTIMATE_LIFETIME unless ``fresh``. A
    problem (no sender yet) comes back as a sentence."""
    cache, now = _cache(request), datetime.now(UTC)
    kept = cache.get(broadcast.id)
    if kept is not None and not fresh and now - kept.at < ESTIMATE_LIFETIME:
        return kept.result, kept.at
    runtime = runtime_of(request)
    base_url, key = link_settings(runtime)
    await register_draft_links(runtime, broadcast)
    try:
        result = await read(runtime, lambda conn: estimate(conn, broadcast, now=now, base_url=base_url, link_key=key))
    except ValueError as exc:
        return sentence(exc), now
    for stale in [i for i, c in cache.items() if now - c.at >= ESTIMATE_LIFETIME]:
        del cache[stale]
    cache[broadcast.id] = _Cached(now, result)
    return result, now


async def samples_of(request: Request, broadcast: Broadcast) -> list[Sample] | str:
    """The texts the first SAMPLES members would get, or a sentence for a problem (no sender yet)."""
    runtime = runtime_of(request)
    base_url, key = link_settings(runtime)
    await register_draft_links(runtime, broadcast)

    def plan(conn: sa.Connection) -> list[Sample]:
        planner = Planner(conn, broadcast, now=datetime.now(UTC), base_url=base_url, link_key=key)
        rows = planner.members(conn, None, SAMPLES)
        found = []
        for row, planned in zip(rows, planner.plan(conn, rows), strict=True):
            if isinstance(planned, Planned):
                found.append(
                    Sample(
                        member_id=row.id,
                        phone=row.phone,
                        variant=planned.variant,
                        language=planned.language,
                        body=planned.body,
                        encoding="UCS-2" if planned.encoding is Encoding.ucs2 else "GSM-7",
                        segments=planned.segments,
                        not_before=planned.not_before,
                        deferred_by=planned.deferred_by,
                        zone=planned.zone,
                    )
                )
            else:
                found.append(Sample(member_id=row.id, phone=row.phone, skipped=planned.reason))
        return found

    try:
        return await read(runtime, plan)
    except ValueError as exc:  # no sender yet
        return sentence(exc)
