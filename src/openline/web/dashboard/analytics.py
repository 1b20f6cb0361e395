"""/analytics, for the owner and admins: the community's numbers per UTC day over the last 30, 90 or 365
days, as charts drawn on the server (openline.web.charts) with the exact numbers beneath each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from openline.accounts import Session
from openline.analytics import RANGES, REPLY_HOURS, Day, Report, cached_report, day_range, remember
from openline.states import UserRole
from openline.web.charts import Chart, Series, has_data, percent, render_chart, seconds
from openline.web.dashboard.auth import read, write
from openline.web.dashboard.deps import render, require, runtime_of

__all__ = ["ChartView", "chart_specs", "router"]

router = APIRouter()

Admin = Annotated[Session, require(UserRole.admin)]
DEFAULT_DAYS = RANGES[0]


@dataclass(frozen=True)
class ChartView:
    """A chart as the page shows it: its heading, the sentence defining it, and the drawing."""

    key: str
    title: str
    definition: str
    html: Markup
    has_data: bool


def chart_specs(days: Sequence[Day]) -> list[Chart]:
    """The page's charts, in order; each description defines exactly what is counted."""
    labels = [d.day.isoformat() for d in days]
    waits = [d.waits for d in days]
    return [
        Chart(
            "subscribed",
            "Subscribed members",
            "Members subscribed at the end of each day (today: now).",
            labels,
            [Series("Subscribed", [d.subscribed for d in days])],
        ),
        Chart(
            "joined",
            "New members",
            "Members who subscribed for the first time that day (coming back after opting out does not count).",
            labels,
            [Series("New members", [d.joined for d in days])],
            kind="bar",
        ),
        Chart(
            "texts",
            "Texts in and out",
            "Texts received that day, and texts sent that day: inbox replies, openline's own texts (autotext, "
            "confirmations, HELP and STOP answers) and broadcasts.",
            labels,
            [Series("Received", [d.inbound for d in days]), Series("Sent", [d.outbound.sent for d in days])],
        ),
        Chart(
            "delivery",
            "Delivery rate",
            "Of the texts sent that day that have a final receipt, the share delivered: delivered / (delivered "
            "+ undelivered + failed). Texts still waiting for their receipt are not counted.",
            labels,
            [Series("Delivered", [d.delivery_rate for d in days])],
            fmt=percent,
            top=1.0,
        ),
        Chart(
            "replies",
            "Reply rate to broadcasts",
            f"Of the broadcast texts sent that day, the share whose recipient texted back (anything, STOP "
            f"included) within {REPLY_HOURS} hours of it. The latest day can still rise for {REPLY_HOURS} hours.",
            labels,
            [Series("Replied", [d.reply_rate for d in days])],
            fmt=percent,
            top=1.0,
        ),
        Chart(
            "clicks",
            "Link clicks",
            "Clicks on the links in broadcasts, every click counted.",
            labels,
            [Series("Clicks", [d.clicks for d in days])],
            kind="bar",
        ),
        Chart(
            "opt-outs",
            "Opt-outs",
            "Changes to unsubscribed that day: STOP, including a first text that was STOP.",
            labels,
            [Series("Opt-outs", [d.opt_outs for d in days])],
            kind="bar",
        ),
        Chart(
            "autotext",
            "Time to autotext",
            "For numbers that texted for the first time that day: from their first text to openline's first "
            "answer (the autotext) being sent. Half of them waited at most the median (p50), 95 in 100 at most "
            "the p95; in a flood this shows how far the answers fell behind.",
            labels,
            [
                Series("Median (p50)", [None if w is None else w.p50 for w in waits]),
                Series("p95", [None if w is None else w.p95 for w in waits]),
            ],
            fmt=seconds,
        ),
    ]


@router.get("/analytics")
async def analytics_page(request: Request, session: Admin, days: str = str(DEFAULT_DAYS)) -> HTMLResponse:
    # Only the offered ranges: anything else (a mistyped address) shows the default one.
    period = int(days) if days in {str(n) for n in RANGES} else DEFAULT_DAYS
    now = datetime.now(UTC)
    span = day_range(period, now)
    community_id = session.user.community_id
    runtime = runtime_of(request)

    def load(conn: sa.Connection) -> Report:
        return cached_report(conn, community_id, span, now)

    found = await read(runtime, load)
    if found.settled:  # counted for the first time: kept, so the next visit reads them back

        def keep(conn: sa.Connection) -> None:
            remember(conn, community_id, found.settled)

        await write(runtime, keep)
    specs = chart_specs(found.days)
    charts = [ChartView(c.key, c.title, c.description, render_chart(c), has_data(c)) for c in specs]
    return render(
        request,
        "dashboard/analytics.html",
        section="analytics",
        days=period,
        ranges=RANGES,
        first=span.first,
        last=span.last,
        charts=charts,
        empty=not any(c.has_data for c in charts),
    )
