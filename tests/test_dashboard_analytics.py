"""/analytics on SQLite and PostgreSQL (roles, the charts and their tables, an empty community), and the
server-side SVG charts of openline.web.charts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from openline.communities import get_community
from openline.db import schema
from openline.runtime import Runtime
from openline.senders import list_senders
from openline.states import MemberState, MessageKind, MessageState, UserRole
from openline.web.charts import Chart, Series, count, has_data, percent, render_chart, seconds

from .test_analytics import Community, autotext
from .test_dashboard_auth import assert_dashboard_headers, make_user, session_token, use
from .test_dashboard_settings import assert_unique_ids, table_rows

CHARTS = ("subscribed", "joined", "texts", "delivery", "replies", "clicks", "opt-outs", "autotext")


def sign_in_as_owner(client: httpx.AsyncClient, runtime: Runtime) -> None:
    make_user(runtime, "ada@example.org")
    use(client, session_token(runtime, "ada@example.org")[0])


def numbers(html: str, key: str) -> list[list[str]]:
    """The rows of a chart's table of numbers."""
    found = re.search(rf'<details id="{key}-numbers">(.*?)</details>', html, re.S)
    assert found is not None, key
    return table_rows(found.group(1))


async def test_only_the_owner_and_admins(client: httpx.AsyncClient, runtime: Runtime) -> None:
    make_user(runtime, "ada@example.org")
    make_user(runtime, "bo@example.org", UserRole.agent)
    assert (await client.get("/analytics")).headers["location"] == "/login?next=%2Fanalytics"
    use(client, session_token(runtime, "bo@example.org")[0])
    assert (await client.get("/analytics")).status_code == 403
    use(client, session_token(runtime, "ada@example.org")[0])
    page = await client.get("/analytics")
    assert page.status_code == 200
    assert_dashboard_headers(page)
    assert 'href="/analytics" aria-current="page"' in page.text


async def test_an_empty_community_has_no_data_yet(client: httpx.AsyncClient, runtime: Runtime) -> None:
    sign_in_as_owner(client, runtime)
    for days in ("30", "90", "365"):
        page = await client.get("/analytics", params={"days": days})
        assert page.status_code == 200
        assert "No data yet: nothing happened in these" in page.text
        assert page.text.count("No data yet for these days.") == len(CHARTS)
        assert "<svg" not in page.text
        assert f'href="/analytics?days={days}" aria-current="true"' in page.text


async def test_the_charts_and_their_numbers(client: httpx.AsyncClient, runtime: Runtime) -> None:
    sign_in_as_owner(client, runtime)
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    label = day.date().isoformat()
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        c = Community(conn, community_id, list_senders(conn, community_id)[0].id)
        c.member("A", MemberState.subscribed, joined=day + timedelta(hours=9))
        c.consent("A", MemberState.pending, MemberState.subscribed, day + timedelta(hours=9))
        autotext(c, "A", day + timedelta(hours=8), 1)
        c.member("B", MemberState.unsubscribed)
        c.consent("B", None, MemberState.unsubscribed, day + timedelta(hours=10))
        autotext(c, "B", day + timedelta(hours=10), 3)
        spring = c.broadcast("spring")
        c.outbound("A", MessageKind.broadcast, MessageState.delivered, day + timedelta(hours=11), None, spring)
        c.click("A", spring, day + timedelta(hours=12))

    response = await client.get("/analytics")
    assert response.status_code == 200
    html = response.text
    assert_unique_ids(html)
    assert "No data yet: nothing happened" not in html
    assert "UTC days" in html
    # Every chart with data is an SVG image named by its title and described in words, with its numbers.
    assert html.count('<svg role="img"') == len(CHARTS) - 1
    assert html.count("No data yet for these days.") == 1  # no broadcast text was sent (sent_at) yet
    for key in CHARTS:
        if key == "replies":
            continue
        assert f'aria-labelledby="{key}-title {key}-desc"' in html and f'<title id="{key}-title">' in html
        assert f'<desc id="{key}-desc">' in html
        assert len(numbers(html, key)) == 31  # the heading row and 30 days
    assert [label, "2", "2"] in numbers(html, "texts")
    assert numbers(html, "texts")[0] == ["Day", "Received", "Sent"]
    assert [label, "100%"] in numbers(html, "delivery")
    assert [label, "1.0 s", "3.0 s"] in numbers(html, "autotext")  # nearest rank of [1, 3]: p50 1, p95 3
    assert [label, "1"] in numbers(html, "joined") and [label, "1"] in numbers(html, "opt-outs")
    assert [label, "1"] in numbers(html, "clicks")
    before = (day - timedelta(days=1)).date().isoformat()
    assert [before, "0"] in numbers(html, "subscribed") and [label, "1"] in numbers(html, "subscribed")
    assert [before, "\u2013", "\u2013"] in numbers(html, "autotext")  # no new numbers: no value, not zero
    assert f"Received: highest 2 on {label}" in html

    # The finished days were kept: the next visit reads them back (a text added to one now is not seen).
    with runtime.db.write_engine.begin() as conn:
        kept = conn.execute(sa.select(sa.func.count()).select_from(schema.analytics_days)).scalar_one()
        assert kept == 28  # the 30 days but today and yesterday
        Community(conn, community_id, c.sender_id).inbound("A", day + timedelta(hours=13))
    again = await client.get("/analytics")
    assert numbers(again.text, "texts") == numbers(html, "texts")

    longer = await client.get("/analytics", params={"days": "90"})
    assert len(numbers(longer.text, "texts")) == 91
    odd = await client.get("/analytics", params={"days": "7"})
    assert 'href="/analytics?days=30" aria-current="true"' in odd.text and len(numbers(odd.text, "texts")) == 31


def chart(*series: Series, **options: object) -> Chart:
    return Chart("c", "Title", "What it counts.", ["2025-03-01", "2025-03-02", "2025-03-03"], series, **options)  # type: ignore[arg-type]


def test_charts_escape_every_text() -> None:
    html = render_chart(
        Chart("x", "<script>alert(1)</script>", "a & b", ['<img src=x onerror="y">'], [Series("<b>", [1.0])])
    )
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html and "<b>" not in html and "a &amp; b" in html


def test_lines_break_where_there_is_no_value() -> None:
    gap = render_chart(chart(Series("s", [1.0, None, 2.0])))
    assert gap.count("<polyline") == 0 and gap.count("<circle") == 2  # two lone values
    line = render_chart(chart(Series("s", [1.0, 2.0, None])))
    assert line.count("<polyline") == 1 and "<circle" not in line
    assert "s: highest 2 on 2025-03-02; 2025-03-02: 2." in line


def test_bars_and_axes() -> None:
    bars = render_chart(chart(Series("n", [0, 3, 7]), kind="bar"))
    assert bars.count("<rect") == 2  # no bar for zero
    labels = re.findall(r'text-anchor="end"[^>]*>([^<]+)</text>', bars)
    assert labels[:5] == ["0", "2", "4", "6", "8"]  # round steps from zero, above the highest
    rates = render_chart(chart(Series("r", [0.5, 1.0, None]), fmt=percent, top=1.0))
    assert re.findall(r'text-anchor="end"[^>]*>([^<]+)</text>', rates)[:5] == ["0%", "25%", "50%", "75%", "100%"]
    two = render_chart(chart(Series("a", [1, 2, 3]), Series("b", [3, 2, 1])))
    assert 'class="legend"' in two and 'stroke-dasharray="6 3"' in two  # told apart by dash too


def test_what_counts_as_data_and_formats() -> None:
    assert not has_data(chart(Series("n", [0, 0, 0])))
    assert not has_data(chart(Series("r", [None, None, None]), fmt=percent, top=1.0))
    assert has_data(chart(Series("r", [None, 0.0, None]), fmt=percent, top=1.0))  # 0 % delivered is news
    assert "No data yet" in render_chart(chart(Series("n", [0, 0, 0])))
    assert (count(12345), percent(0.5), percent(0.125), seconds(2.25), seconds(90), seconds(7200)) == (
        "12,345",
        "50%",
        "12.5%",
        "2.2 s",
        "1.5 min",
        "2.0 h",
    )
