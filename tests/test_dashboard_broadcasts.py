"""The dashboard's /broadcasts pages on SQLite and PostgreSQL: the composer and its errors, the live
segment counter, a draft's estimate and preview, sending with a confirmation, live stats, pause,
resume, cancel, "why", the list's progress, and the roles that may see them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from openline.broadcasts import create_broadcast, fan_out_batch, get_broadcast, start
from openline.communities import get_community
from openline.db import schema
from openline.engine.config import update_config
from openline.runtime import Runtime
from openline.senders import SANDBOX_NUMBER
from openline.states import BroadcastState, MemberState, UserRole

from .test_dashboard_members import Signed, add_members, assert_accessible, audit_actions, sign_in_as
from .test_join import Html

BODY = 'Hi {{ first_name | default("friend") }}! Tickets: https://example.org/t'
ITALIAN = 'Ciao {{ first_name | default("amico") }}! Biglietti: https://example.org/t'
PEOPLE: list[dict[str, Any]] = [
    {"phone": "+12125550101", "state": MemberState.subscribed, "first_name": "Ada", "country": "US",
     "time_zone": "America/New_York"},
    {"phone": "+393471234567", "state": MemberState.subscribed, "first_name": "Łukasz", "country": "IT",
     "language": "it", "time_zone": "Europe/Rome"},
    {"phone": "+13105550102", "state": MemberState.subscribed, "country": "US", "time_zone": "America/Los_Angeles"},
    {"phone": "+12125550104", "state": MemberState.pending, "country": "US", "time_zone": "America/New_York"},
]  # fmt: skip


def state_of(runtime: Runtime, broadcast_id: int) -> BroadcastState:
    with runtime.db.read_engine.connect() as conn:
        return get_broadcast(conn, broadcast_id).state


def draft(runtime: Runtime, name: str = "tickets", **options: Any) -> int:
    message = {"variants": [{"body": BODY, "translations": {"it": ITALIAN}}]}
    with runtime.db.write_engine.begin() as conn:
        return create_broadcast(conn, get_community(conn).id, name, message, segment={"and": []}, **options).id


def started(runtime: Runtime, name: str = "tickets") -> int:
    """A broadcast to everyone, started and fanned out: its texts are queued, nothing sent yet."""
    broadcast_id = draft(runtime, name)
    now = datetime.now(UTC)
    with runtime.db.write_engine.begin() as conn:
        start(conn, get_broadcast(conn, broadcast_id), now)
    while True:
        with runtime.db.write_engine.begin() as conn:
            done = fan_out_batch(
                conn, broadcast_id, now=now, base_url=runtime.base_url, link_key=runtime.key_for("tracked-link")
            )
        if not done:
            return broadcast_id


def composed(**fields: str) -> dict[str, str]:
    """The composer's fields as a browser posts them, with everything optional left empty."""
    form = {"name": "milan-show", "body": BODY, "filter": "everyone", "when": "now", "weight_b": "50"}
    form |= {f"{kind}_{i}": "" for kind in ("lang", "text") for i in (1, 2, 3)}
    form |= {"variant_b": "", "segment_name": "", "sender": "", "at": "", "at_zone": "", "local_date": ""}
    return form | {"local_time": ""} | fields


def checked(page: Html, name: str) -> str:
    return next(i["value"] for i in page.inputs if i.get("name") == name and "checked" in i)


async def test_the_composer_shows_each_problem_by_its_field_and_keeps_what_was_typed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    add_members(runtime, PEOPLE)
    owner = sign_in_as(client, runtime)
    page = await client.get("/broadcasts/new")
    assert page.status_code == 200
    assert_accessible(Html(page.text))
    assert f'<option value="{SANDBOX_NUMBER}">' in page.text
    assert '<script src="/dashboard/static/compose.js" defer></script>' in page.text
    script = await client.get("/dashboard/static/compose.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]

    typed = composed(
        body="Hi {{ frist_name }}!\r\nSee you",
        lang_1="it",
        text_1=ITALIAN,
        lang_2="xx-not a code",
        text_2="Hola",
        variant_b="Hey {% if %}",
        weight_b="30",
        filter="country = IT and contry = US",
        when="at",
        at="2030-01-01T10:00",
        at_zone="Mars/Olympus",
    )
    refused = await owner.post("/broadcasts/new", typed)
    assert refused.status_code == 400
    shown = Html(refused.text)
    assert_accessible(shown)
    body_error = shown.text("body-error")
    assert body_error.startswith("Line 1, column 7:") and "first_name" in body_error, body_error
    assert shown.text("variant_b-error").startswith("Line 1, column")
    assert "not a language code" in shown.text("lang_2-error")
    assert shown.text("filter-error").startswith("Column 18:") and "country" in shown.text("filter-error")
    assert "not a time zone" in shown.text("at_zone-error")
    for field in ("body", "variant_b", "lang_2", "filter", "at_zone"):
        element = next(i for i in [*shown.inputs, *_textareas(refused.text)] if i.get("name") == field)
        assert f"{field}-error" in element["aria-describedby"] and element["aria-invalid"] == "true", field
    # Everything typed comes back as it was.
    assert shown.value("name") == "milan-show" and shown.value("lang_1") == "it" and shown.value("weight_b") == "30"
    assert shown.text("body") == "Hi {{ frist_name }}! See you" and "Ciao {{ first_name" in shown.text("text_1")
    assert shown.value("filter") == "country = IT and contry = US" and shown.value("at") == "2030-01-01T10:00"
    assert shown.value("at_zone") == "Mars/Olympus" and checked(shown, "when") == "at"
    assert "Hey {% if %}" in shown.text("variant_b")

    # Server-side checks that need the database: a name taken, a time already past.
    draft(runtime, "taken")
    again = await owner.post("/broadcasts/new", composed(name="taken", when="at", at="2020-01-01T10:00"))
    assert again.status_code == 400 and "has passed" in Html(again.text).text("at-error")
    taken = await owner.post("/broadcasts/new", composed(name="taken"))
    assert taken.status_code == 400 and "already a broadcast named" in Html(taken.text).text("name-error")
    everyone = await owner.post("/broadcasts/new", composed(filter=""))
    assert "Choose a saved segment or write a filter" in Html(everyone.text).text("filter-error")
    with runtime.db.read_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.broadcasts)).scalar_one() == 1
    assert (await client.post("/broadcasts/new", data=composed())).status_code == 403  # no CSRF token


def _textareas(html: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'([\w-]+)="([^"]*)"', attrs)) for attrs in re.findall(r"<textarea([^>]*)>", html)]


async def test_a_draft_is_created_estimated_previewed_and_sent_after_asking(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ids = add_members(runtime, PEOPLE)
    owner = sign_in_as(client, runtime)
    created = await owner.post(
        "/broadcasts/new", composed(lang_1="it", text_1=ITALIAN, filter="country = IT or country = US")
    )
    assert created.status_code == 303
    broadcast_id = int(created.headers["location"].rsplit("/", 1)[1])
    with runtime.db.read_engine.connect() as conn:
        made = get_broadcast(conn, broadcast_id)
    assert made.state is BroadcastState.draft and made.message.variants[0].translations == {"it": ITALIAN}

    page = await client.get(created.headers["location"])
    assert page.status_code == 200
    text = Html(page.text).all_text
    assert "country = IT or country = US" in text and BODY in text and "In Italian:" in text
    assert f'hx-get="/broadcasts/{broadcast_id}/estimate" hx-trigger="load"' in page.text
    # The preview: the first three members as they would get it, links already tracked.
    assert re.search(r"Hi Ada! Tickets: https://sms\.example\.org/l/\w+", page.text)
    assert re.search(r"Ciao Łukasz! Biglietti: https://sms\.example\.org/l/\w+", page.text)
    assert "Hi friend!" in page.text and "UCS-2" in text and f'href="/members/{ids[0]}"' in page.text

    fragment = await client.get(f"/broadcasts/{broadcast_id}/estimate", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    numbers = Html(fragment.text).all_text
    assert "Recipients 3" in numbers and "1: never confirmed (pending)" in numbers
    assert "3 recipients, " in numbers and "are UCS-2 because their first name has 'Ł'" in numbers
    without_js = await client.get(f"/broadcasts/{broadcast_id}/estimate")
    assert "<html" in without_js.text and "Recipients 3" in Html(without_js.text).all_text

    # Send asks first, with the estimate; only the answer starts it. Both need the CSRF token.
    assert (await client.post(f"/broadcasts/{broadcast_id}/send", data={"confirm": "yes"})).status_code == 403
    asked = await owner.post(f"/broadcasts/{broadcast_id}/send")
    assert asked.status_code == 200 and state_of(runtime, broadcast_id) is BroadcastState.draft
    question = Html(asked.text)
    assert question.text("confirm-heading") == "Send to 3 people now?"
    assert "3 recipients" in question.all_text and question.hidden()["confirm"] == "yes"
    sent = await owner.post(f"/broadcasts/{broadcast_id}/send", {"confirm": "yes"})
    assert (sent.status_code, sent.headers["location"]) == (303, f"/broadcasts/{broadcast_id}?done=started")
    assert state_of(runtime, broadcast_id) is BroadcastState.fanning_out
    after = await client.get(sent.headers["location"])
    assert "Started." in Html(after.text).all_text and 'hx-trigger="every 3s"' in after.text
    twice = await owner.post(f"/broadcasts/{broadcast_id}/send", {"confirm": "yes"})
    assert twice.status_code == 409 and "only a draft can be started" in Html(twice.text).all_text
    asked_again = await owner.post(f"/broadcasts/{broadcast_id}/send")
    assert asked_again.status_code == 409 and "It is fanning out: only a draft can be sent." in asked_again.text
    assert audit_actions(runtime) == [("broadcast.create", "milan-show"), ("broadcast.send", "milan-show")]


async def test_a_local_time_schedule_asks_to_schedule(client: httpx.AsyncClient, runtime: Runtime) -> None:
    add_members(runtime, PEOPLE)
    owner = sign_in_as(client, runtime)
    typed = composed(name="later", when="local", local_date="2099-12-01", local_time="10:00")
    created = await owner.post("/broadcasts/new", typed)
    broadcast_id = int(created.headers["location"].rsplit("/", 1)[1])
    asked = await owner.post(f"/broadcasts/{broadcast_id}/send")
    assert Html(asked.text).text("confirm-heading") == (
        "Schedule it for 3 people, to send at 10:00 on 2099-12-01 in each member's time zone?"
    )
    scheduled = await owner.post(f"/broadcasts/{broadcast_id}/send", {"confirm": "yes"})
    assert scheduled.headers["location"].endswith("?done=scheduled")
    assert state_of(runtime, broadcast_id) is BroadcastState.scheduled


async def test_a_running_broadcast_shows_live_stats_and_is_paused_resumed_and_cancelled(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    add_members(runtime, PEOPLE)
    broadcast_id = started(runtime)
    assert state_of(runtime, broadcast_id) is BroadcastState.sending
    old = draft(runtime, "old draft")
    owner = sign_in_as(client, runtime)

    listing = await client.get("/broadcasts")
    assert listing.status_code == 200
    row = Html(listing.text).text(f"broadcast-{broadcast_id}")
    assert "tickets sending 3 recipients · 0 sent · 0 delivered · started" in row
    assert f'hx-get="/broadcasts/{broadcast_id}/row" hx-trigger="every 3s"' in listing.text
    assert f'hx-get="/broadcasts/{old}/row"' not in listing.text  # drafts do not poll
    assert "old draft draft not sent yet · created" in Html(listing.text).text(f"broadcast-{old}")
    polled = await client.get(f"/broadcasts/{broadcast_id}/row")
    assert polled.text.startswith(f'<li id="broadcast-{broadcast_id}" hx-get=')

    page = await client.get(f"/broadcasts/{broadcast_id}")
    live = Html(page.text).text("live")
    assert "sending · 3 recipients so far" in live and "1: never confirmed (pending)" in live
    # Queued, or deferred until a member's sending window opens (it depends on the hour the test runs).
    assert sum(int(n) for n in re.findall(r"(?:queued|deferred) (\d+)", live)) == 3
    assert "Clicks: 0 (0 members)" in live
    assert f'hx-get="/broadcasts/{broadcast_id}/stats?polling=1" hx-trigger="every 3s"' in page.text
    stats = await client.get(f"/broadcasts/{broadcast_id}/stats", params={"polling": 1})
    assert stats.status_code == 200 and stats.text.startswith('<div id="live" hx-get=')
    assert "hx-refresh" not in stats.headers

    paused = await owner.post(f"/broadcasts/{broadcast_id}/pause")
    assert paused.headers["location"] == f"/broadcasts/{broadcast_id}?done=paused"
    assert state_of(runtime, broadcast_id) is BroadcastState.paused
    # The page that was polling reloads itself once, so its buttons match; then it stops polling.
    stopped = await client.get(f"/broadcasts/{broadcast_id}/stats", params={"polling": 1})
    assert stopped.headers["hx-refresh"] == "true" and "hx-get" not in stopped.text
    page = await client.get(paused.headers["location"])
    assert "/resume" in page.text and "/pause" not in page.text and "every 3s" not in page.text

    resumed = await owner.post(f"/broadcasts/{broadcast_id}/resume")
    assert resumed.headers["location"].endswith("?done=resumed")
    assert state_of(runtime, broadcast_id) is BroadcastState.sending
    refused = await owner.post(f"/broadcasts/{broadcast_id}/resume")
    assert refused.status_code == 409 and "not paused" in Html(refused.text).all_text

    # Why: answered in place for htmx, as a page without JavaScript; a bad number says so.
    why = await owner.htmx(f"/broadcasts/{broadcast_id}/why", {"phone": "+1 212 555 0104"})
    assert why.status_code == 200 and "<html" not in why.text
    assert "No text was written for them at fan-out; as of now: skipped: never confirmed (pending)." in why.text
    queued = await owner.post(f"/broadcasts/{broadcast_id}/why", {"phone": "+12125550101"})
    assert "<html" in queued.text and Html(queued.text).value("phone") == "+12125550101"
    assert re.search(r"(Queued: it goes out|Deferred until)", Html(queued.text).text("why-answer"))
    wrong = await owner.htmx(f"/broadcasts/{broadcast_id}/why", {"phone": "12"})
    assert 'class="error"' in wrong.text and "not" in wrong.text
    assert (await client.post(f"/broadcasts/{broadcast_id}/why", data={"phone": "+12125550101"})).status_code == 403

    cancelled = await owner.post(f"/broadcasts/{broadcast_id}/cancel")
    assert cancelled.headers["location"].endswith("?done=cancelled")
    assert state_of(runtime, broadcast_id) is BroadcastState.cancelled
    final = Html((await client.get(f"/broadcasts/{broadcast_id}")).text)
    assert "cancelled 3" in final.text("live") and "finished" not in final.text("live")
    assert audit_actions(runtime) == [
        ("broadcast.pause", "tickets"),
        ("broadcast.resume", "tickets"),
        ("broadcast.cancel", "tickets"),
    ]


async def test_the_live_segment_counter(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = sign_in_as(client, runtime)

    async def count(field: str = "body", **fields: str) -> str:
        response = await owner.htmx("/broadcasts/count", composed(field=field, **fields))
        assert response.status_code == 200
        return Html(response.text).all_text

    assert await count(body="Hello") == "1 segment · GSM-7 · 5/160"
    assert await count(body="a" * 200) == "2 segments · GSM-7 · 200/306"
    assert await count(body="Ł" + "a" * 84) == "2 segments · UCS-2 · 85/134"
    assert await count(body="Hello", sponsored="1") == "1 segment · GSM-7 · 9/160 (with “#ad” first)"
    templated = await count(body=BODY)
    assert templated.startswith("1 segment · GSM-7 · ") and "Personalisation changes the length" in templated
    assert "Too long" in await count(body="a" * 1601)
    with runtime.db.write_engine.begin() as conn:
        update_config(conn, get_community(conn).id, broadcasts={"footer": {"*": "STOP to opt out", "it": "STOP per"}})
    assert await count(body="Hello") == "1 segment · GSM-7 · 21/160 (with the footer)"
    assert await count("text_1", lang_1="it", text_1="Ciao") == "1 segment · GSM-7 · 13/160 (with the footer)"
    assert await count("variant_b", variant_b="") == "1 segment · GSM-7 · 16/160 (with the footer)"
    assert (await client.post("/broadcasts/count", data=composed(field="body"))).status_code == 403

    # The composer page shows the counters of what it brings back, without waiting for a keystroke.
    page = await owner.post("/broadcasts/new", composed(name="", body="Hello"))
    assert Html(page.text).text("body-count") == "1 segment · GSM-7 · 21/160 (with the footer)"


@pytest.mark.parametrize("role", [UserRole.agent, UserRole.admin])
async def test_broadcast_pages_are_for_admins_and_the_owner(
    client: httpx.AsyncClient, runtime: Runtime, role: UserRole
) -> None:
    add_members(runtime, PEOPLE)
    broadcast_id = draft(runtime)
    user: Signed = sign_in_as(client, runtime, role)
    expected = 403 if role is UserRole.agent else 200
    for path in ("/broadcasts", "/broadcasts/new", f"/broadcasts/{broadcast_id}", f"/broadcasts/{broadcast_id}/row"):
        assert (await client.get(path)).status_code == expected, path
    for path in (f"/broadcasts/{broadcast_id}/send", "/broadcasts/count", f"/broadcasts/{broadcast_id}/why"):
        assert (await user.post(path, {"phone": "+12125550101"})).status_code == expected, path
    assert (await client.get("/broadcasts/999999")).status_code == (403 if role is UserRole.agent else 404)
    assert state_of(runtime, broadcast_id) is BroadcastState.draft
