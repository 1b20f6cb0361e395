"""Small line and bar charts drawn on the server as inline SVG.

Drawn here rather than by a chart library: those run in the browser (more JavaScript, a build step, or
a CDN, none of which the dashboard has), and these charts need little: one or a few series over days,
a y axis from zero, a few labelled ticks. Each chart is an ``<svg role="img">`` with a ``<title>`` and a
``<desc>`` that sums it up in words, followed by the exact numbers in a ``<table>`` inside a
``<details>``, for screen readers and for reading values off. Every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from markupsafe import Markup, escape

__all__ = ["Chart", "Series", "count", "has_data", "percent", "render_chart", "seconds"]

Format = Callable[[float], str]

# The drawing's own units; the SVG scales to the width it is given (360 px phones included).
WIDTH, HEIGHT = 360, 190
LEFT, RIGHT, TOP, BOTTOM = 48, 10, 10, 26
FONT = 'font-family="system-ui, sans-serif" font-size="11"'
# Distinct by dash as well as colour, so the series stay apart without colour vision or in print.
COLOURS = ("#0b5cad", "#a4161a", "#2b6a10")
DASHES = ("", "6 3", "2 3")
NO_VALUE = "\u2013"  # an en dash: no value that day


def count(value: float) -> str:
    return f"{value:,.0f}"


def percent(value: float) -> str:
    """A share from 0 to 1, as a percentage."""
    return f"{value * 100:.1f}%".replace(".0%", "%")


def seconds(value: float) -> str:
    if abs(value) < 60:
        return f"{value:.1f} s"
    if abs(value) < 3600:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # one per label; None: nothing to show that day


@dataclass(frozen=True)
class Chart:
    key: str  # unique on the page: the ids of the title, description and table derive from it
    title: str
    description: str  # what is counted, in a sentence; the chart adds what its numbers show
    labels: Sequence[str]  # the x axis, one per value (days)
    series: Sequence[Series]
    kind: Literal["line", "bar"] = "line"
    fmt: Format = count
    top: float | None = None  # a fixed top of the y axis (1.0 for rates), else from the data
    label_heading: str = "Day"


def _values(chart: Chart) -> list[float]:
    return [v for s in chart.series for v in s.values if v is not None]


def has_data(chart: Chart) -> bool:
    """Something to draw: a value that is not zero, or for a rate any value at all."""
    values = _values(chart)
    # A rate (fixed top) of 0 % is news; a count that is zero every day is not.
    return any(values) or (chart.top is not None and bool(values))


def _ticks(highest: float, fixed: float | None, whole: bool) -> list[float]:
    """0 up to a round top at or above ``highest``, in four or five round steps."""
    if fixed is not None:
        return [fixed * i / 4 for i in range(5)]
    if highest <= 0:
        return [0.0, 1.0]
    raw = highest / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if whole:
        step = max(1.0, math.ceil(step))
    return [step * i for i in range(math.ceil(highest / step) + 1)]


def _summary(chart: Chart) -> str:
    """The chart in words, for the SVG's <desc>: the range, and each series' highest and last value."""
    labels = chart.labels
    parts = [chart.description, f"From {labels[0]} to {labels[-1]}."]
    for series in chart.series:
        known = [(v, labels[i]) for i, v in enumerate(series.values) if v is not None]
        if not known:
            parts.append(f"{series.name}: no data.")
            continue
        high, when = max(known, key=lambda pair: pair[0])
        parts.append(f"{series.name}: highest {chart.fmt(high)} on {when}; {known[-1][1]}: {chart.fmt(known[-1][0])}.")
    return " ".join(parts)


def _svg(chart: Chart) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    ticks = _ticks(max(_values(chart)), chart.top, chart.fmt is count)
    top = ticks[-1] or 1.0
    n = len(chart.labels)
    band = plot_w / n

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * max(0.0, min(value, top)) / top

    out = [
        f'<svg role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'aria-labelledby="{chart.key}-title {chart.key}-desc" style="max-width:36rem;display:block">',
        f'<title id="{chart.key}-title">{escape(chart.title)}</title>',
        f'<desc id="{chart.key}-desc">{escape(_summary(chart))}</desc>',
    ]
    for tick in ticks:  # grid lines and y labels
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e2e2e2"/>')
        out.append(
            f'<text x="{LEFT - 4}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="#555" {FONT}>'
            f"{escape(chart.fmt(tick))}</text>"
        )
    base = TOP + plot_h
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}" stroke="#767676"/>')
    for i in sorted({0, n // 2, n - 1}):  # the first, middle and last day: three labels fit on a phone
        anchor = "start" if i == 0 and n > 1 else "end" if i == n - 1 and n > 1 else "middle"
        x = LEFT + (i if anchor == "start" else i + 1 if anchor == "end" else i + 0.5) * band
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" fill="#555" {FONT}>'
            f"{escape(chart.labels[i])}</text>"
        )
    for k, series in enumerate(chart.series):
        colour, dash = COLOURS[k % len(COLOURS)], DASHES[k % len(DASHES)]
        if chart.kind == "bar":
            width = band * 0.8 / len(chart.series)
            for i, value in enumerate(series.values):
                if value:
                    x = LEFT + i * band + band * 0.1 + k * width
                    out.append(
                        f'<rect x="{x:.2f}" y="{y(value):.1f}" width="{max(width, 0.5):.2f}" '
                        f'height="{base - y(value):.1f}" fill="{colour}"/>'
                    )
            continue
        runs: list[list[str]] = [[]]  # a day without a value breaks the line
        for i, value in enumerate(series.values):
            if value is None:
                runs.append([])
            else:
                runs[-1].append(f"{LEFT + (i + 0.5) * band:.1f},{y(value):.1f}")
        for run in runs:
            if len(run) == 1:  # a lone value shows as a dot
                cx, cy = run[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
            elif run:
                dashes = f' stroke-dasharray="{dash}"' if dash else ""
                out.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2"{dashes}/>'
                )
    out.append("</svg>")
    return "".join(out)


def _legend(chart: Chart) -> str:
    if len(chart.series) < 2:
        return ""
    items = []
    for k, series in enumerate(chart.series):
        colour, dash = COLOURS[k % len(COLOURS)], DASHES[k % len(DASHES)]
        dashes = f' stroke-dasharray="{dash}"' if dash and chart.kind == "line" else ""
        width = 3 if chart.kind == "line" else 10
        items.append(
            f'<li><svg width="24" height="10" aria-hidden="true"><line x1="0" x2="24" y1="5" y2="5" '
            f'stroke="{colour}" stroke-width="{width}"{dashes}/></svg> {escape(series.name)}</li>'
        )
    return '<ul class="legend" style="list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:4px 16px">' + (
        "".join(items) + "</ul>"
    )


def _cell(chart: Chart, value: float | None) -> str:
    return NO_VALUE if value is None else chart.fmt(value)


def _table(chart: Chart) -> str:
    head = "".join(f'<th scope="col">{escape(s.name)}</th>' for s in chart.series)
    rows = []
    for i, label in enumerate(chart.labels):
        cells = "".join(f"<td>{escape(_cell(chart, s.values[i]))}</td>" for s in chart.series)
        rows.append(f'<tr><th scope="row">{escape(label)}</th>{cells}</tr>')
    return (
        f'<details id="{chart.key}-numbers"><summary>The numbers</summary>'
        '<div style="overflow-x:auto"><table style="border-collapse:collapse;text-align:right">'
        f"<caption>{escape(chart.title)}</caption>"
        f'<thead><tr><th scope="col">{escape(chart.label_heading)}</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></details>"
    )


def render_chart(chart: Chart) -> Markup:
    """The chart as HTML: the SVG, a legend when there are several series, and the table of numbers;
    a short "no data yet" paragraph when there is nothing to draw."""
    if not chart.labels or not has_data(chart):
        return Markup('<p class="meta">No data yet for these days.</p>')
    return Markup(f'<figure class="chart" style="margin:0">{_svg(chart)}{_legend(chart)}{_table(chart)}</figure>')
