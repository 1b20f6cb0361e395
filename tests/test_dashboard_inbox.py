"""The inbox pages on SQLite and PostgreSQL, through the app with a signed-in session: the list, its
filters and keyset pages, htmx fragments, one conversation, reply (CSRF, opted out, twice), assign,
done, notes, the segment counter (server and browser agree), and the live event stream."""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import subprocess
import threading
import time
from datetime import timedelta
from importlib.resources import files
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

import openline.web.dashboard.inbox as pages
from openline.communities import get_community
from openline.db import schema
from openline.encoding import SMART_ENCODING
from openline.engine.config import update_config
from openline.inbox import Cursor
from openline.runtime import Runtime
from openline.states import UserRole
from openline.web import create_app
from openline.web.dashboard.deps import COOKIE
from openline.web.dashboard.inbox import EVENT_STREAMS, count_label

from .test_cli import free_port
from .test_dashboard_auth import HOST, assert_accessible_form, assert_dashboard_headers, make_user, session_token, use
from .test_engine import process, send
from .test_inbox import T0, seed
from .test_join import Html

NODE = shutil.which("node")


def community_id(runtime: Runtime) -> int:
    with runtime.db.read_engine.connect() as conn:
        return get_community(conn).id


def seeded(runtime: Runtime, **values: object) -> int:
    with runtime.db.write_engine.begin() as conn:
        return seed(conn, get_community(conn).id, **values)  # type: ignore[arg-type]


async def sign_in_as(client: httpx.AsyncClient, runtime: Runtime, role: UserRole = UserRole.owner) -> str:
    """A signed-in browser (the owner is Ada; another role gets its own account); returns its CSRF token."""
    email = "ada@example.org"
    make_user(runtime, email)
    if role is not UserRole.owner:
        email = f"{role.value}@example.org"
        make_user(runtime, email, role)
    token, csrf = session_token(runtime, email)
    use(client, token)
    return csrf


def rows(html: str) -> list[str]:
    """The conversation ids a list shows, in order."""
    return re.findall(r'<a href="/inbox/(\d+)" class="name">', html)


def queued(runtime: Runtime) -> list[tuple[str, str, str]]:
    m = schema.messages.c
    with runtime.db.read_engine.connect() as conn:
        return [
            (r.kind, r.phone, r.body)
            for r in conn.execute(sa.select(m.kind, m.phone, m.body).where(m.direction == "outbound").order_by(m.id))
        ]


def unread(runtime: Runtime, conversation_id: int) -> int:
    c = schema.conversations.c
    with runtime.db.read_engine.connect() as conn:
        return int(conn.execute(sa.select(c.unread).where(c.id == conversation_id)).scalar_one())


def assert_no_inline_script(html: str) -> None:
    """The CSP allows scripts from this server only: no inline script, no inline handler, no hx-on."""
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert not re.search(r"\son[a-z]+\s*=", html) and "hx-on" not in html


def assert_labelled(html: str) -> None:
    page = Html(html)
    assert_accessible_form(page)
    for textarea in re.findall(r"<textarea\b[^>]*\bid=\"([^\"]+)\"", html):
        assert textarea in page.labels, textarea


# -- the list --------------------------------------------------------------------------------------


async def test_the_inbox_needs_a_session(client: httpx.AsyncClient, runtime: Runtime) -> None:
    make_user(runtime, "ada@example.org")
    for path in ("/inbox", "/inbox/1", "/inbox/events"):
        answer = await client.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), path


async def test_the_list_pages_newest_first_through_the_older_link(client: httpx.AsyncClient, runtime: Runtime) -> None:
    made = [seeded(runtime, at=T0 + timedelta(minutes=k // 4), bodies=(f"text number {k}",)) for k in range(57)]
    expected = [str(i) for i in sorted(made, key=lambda i: (made.index(i) // 4, i), reverse=True)]
    await sign_in_as(client, runtime)
    first = await client.get("/inbox")
    assert first.status_code == 200
    assert_dashboard_headers(first)
    assert_no_inline_script(first.text)
    assert_labelled(first.text)
    assert rows(first.text) == expected[:50]
    assert "text number 56" in first.text and first.headers["vary"] == "HX-Request"
    older = re.search(r'<a href="(/inbox\?before=[\w-]+)" rel="next"', first.text)
    assert older is not None
    # A text arrives between the two page loads: the next page neither repeats nor skips anyone.
    with runtime.db.write_engine.begin() as conn:
        conn.execute(
            sa.update(schema.conversations)
            .where(schema.conversations.c.id == int(expected[3]))
            .values(last_message_at=T0 + timedelta(days=1))
        )
    second = await client.get(older.group(1))
    assert rows(second.text) == expected[50:] and 'rel="next"' not in second.text
    assert 'href="/inbox" hx-get="/inbox"' in second.text  # back to the newest
    fragment = await client.get(older.group(1), headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and rows(fragment.text) == expected[50:]
    restore = await client.get("/inbox", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text


async def test_views_and_filters(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await sign_in_as(client, runtime)
    with runtime.db.read_engine.connect() as conn:
        me = conn.execute(sa.select(schema.users.c.id)).scalar_one()
    a = seeded(runtime, at=T0, unread=1, tags=("vip",), language="it", bodies=("Quando arrivano i BIGLIETTI?",))
    b = seeded(runtime, at=T0 + timedelta(minutes=1), assigned=me, language="en", bodies=("hello",))
    c = seeded(runtime, at=T0 + timedelta(minutes=2), state="pending", bodies=("hi?",))
    d = seeded(runtime, at=T0 + timedelta(minutes=3), archived=True, bodies=("thanks",))

    async def shown(query: str) -> list[int]:
        answer = await client.get(f"/inbox{query}")
        assert answer.status_code == 200, answer.text
        return [int(i) for i in rows(answer.text)]

    assert await shown("") == [b, a]
    assert await shown("?view=pending") == [c]
    assert await shown("?view=done") == [d]
    assert await shown("?unread=1") == [a]
    assert await shown("?mine=1") == [b]
    assert await shown("?unassigned=1") == [a]
    assert await shown("?tag=vip") == [a]
    assert await shown("?language=en") == [b]
    assert await shown("?q=biglietti") == [a]
    assert await shown("?q=biglietti&unread=1&tag=vip&language=it&unassigned=1&tag=") == [a]
    assert await shown("?q=nowhere") == []
    short = await client.get("/inbox?q=b")
    assert "A search needs 2 to 100 characters" in short.text and [int(i) for i in rows(short.text)] == [b, a]
    stale = await client.get("/inbox?before=garbage")
    assert "not valid any more" in stale.text and [int(i) for i in rows(stale.text)] == [b, a]
    pending = await client.get("/inbox?view=pending")
    assert '<a href="/inbox?view=pending" aria-current="page">Pending</a>' in pending.text
    assert (await client.get("/inbox?view=everything")).status_code == 422


async def test_an_agent_uses_the_inbox_too(client: httpx.AsyncClient, runtime: Runtime) -> None:
    conversation_id = seeded(runtime, bodies=("hello",))
    await sign_in_as(client, runtime, UserRole.agent)
    assert (await client.get("/inbox")).status_code == 200
    assert (await client.get(f"/inbox/{conversation_id}")).status_code == 200


# -- one conversation ------------------------------------------------------------------------------


async def test_a_conversation_page_reads_well_and_marks_read(client: httpx.AsyncClient, runtime: Runtime) -> None:
    conversation_id = seeded(
        runtime,
        at=schema.utcnow() - timedelta(minutes=5),
        bodies=("Ciao!", "Quando suonate a Milano?"),
        first_name="Giulia",
        city="Milano",
        language="it",
        tags=("milan",),
        unread=2,
    )
    await sign_in_as(client, runtime)
    page = await client.get(f"/inbox/{conversation_id}")
    assert page.status_code == 200
    assert_dashboard_headers(page)
    assert_no_inline_script(page.text)
    assert_labelled(page.text)
    html = Html(page.text)
    assert "<h1>Giulia</h1>" in page.text and "Milano" in html.text("main") and "milan" in html.text("main")
    # Each message says who wrote it and when.
    assert re.search(r'<span class="author">Giulia</span>,\s*<time datetime="[^"]+">[^<]+UTC</time>', page.text)
    assert html.text("reply-count") == "1 segment · GSM-7 · 0/160"
    assert unread(runtime, conversation_id) == 0
    assert (await client.get(f"/inbox/{conversation_id + 999}")).status_code == 404
    fragment = await client.get(f"/inbox/{conversation_id}", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and 'id="conversation"' in fragment.text


async def test_saved_replies_fill_the_reply_box(client: httpx.AsyncClient, runtime: Runtime) -> None:
    conversation_id = seeded(runtime, bodies=("When are tickets on sale?",))
    await sign_in_as(client, runtime, UserRole.agent)
    page = await client.get(f"/inbox/{conversation_id}")
    assert "Saved reply" not in page.text  # none saved: no menu
    tickets = "Tickets go on sale Friday at 10:00: https://example.org/t"
    with runtime.db.write_engine.begin() as conn:
        replies = {"tickets": tickets, "Hours & days": "Open <9 to 5>."}
        update_config(conn, community_id(runtime), saved_replies=replies)
    page = await client.get(f"/inbox/{conversation_id}")
    assert_no_inline_script(page.text)
    assert_labelled(page.text)
    html = Html(page.text)
    assert html.text("saved-reply").startswith("Choose one Hours & days tickets")  # by name, case ignored
    assert 'data-text="Open &lt;9 to 5&gt;."' in page.text and 'data-fill="#reply-body"' in page.text
    assert re.search(rf'<form method="get" action="/inbox/{conversation_id}"[^>]*>', page.text)
    assert html.text("reply-body") == ""
    # Without JavaScript, "Use" asks for the page again with ?saved=<name>: the box is filled, nothing is sent.
    filled = await client.get(f"/inbox/{conversation_id}", params={"saved": "tickets"})
    assert filled.status_code == 200
    html = Html(filled.text)
    assert html.text("reply-body") == tickets
    assert html.text("reply-count") == f"1 segment · GSM-7 · {len(tickets)}/160"
    assert re.search(r'<option value="tickets" data-text="[^"]*" selected>', filled.text)
    assert queued(runtime) == []
    fragment = await client.get(
        f"/inbox/{conversation_id}", params={"saved": "Hours & days"}, headers={"HX-Request": "true"}
    )
    assert "<html" not in fragment.text and "Open &lt;9 to 5&gt;.</textarea>" in fragment.text
    for unknown in ("nope", "TICKETS", "x" * 500):
        ignored = await client.get(f"/inbox/{conversation_id}", params={"saved": unknown})
        assert ignored.status_code == 200 and Html(ignored.text).text("reply-body") == "", unknown
        assert " selected>" not in ignored.text.split('id="saved-reply"', 1)[1].split("</select>", 1)[0]


async def test_a_reply_needs_the_csrf_token_and_is_queued_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    phone = "+393471234567"
    conversation_id = seeded(runtime, phone=phone, at=schema.utcnow() - timedelta(minutes=5), unread=1)
    csrf = await sign_in_as(client, runtime)
    page = Html((await client.get(f"/inbox/{conversation_id}")).text)
    key = page.hidden()["key"]
    form = {"body": "Il 12 dicembre!", "key": key}
    for forged in ({}, {"csrf_token": "nope"}):
        refused = await client.post(f"/inbox/{conversation_id}/reply", data={**form, **forged})
        assert refused.status_code == 403
    assert queued(runtime) == []
    sent = await client.post(f"/inbox/{conversation_id}/reply", data={**form, "csrf_token": csrf})
    assert (sent.status_code, sent.headers["location"]) == (303, f"/inbox/{conversation_id}?sent=1")
    again = await client.post(f"/inbox/{conversation_id}/reply", data={**form, "csrf_token": csrf})
    assert again.status_code == 303  # the same form twice (a double click): one text
    assert queued(runtime) == [("reply", phone, "Il 12 dicembre!")]
    shown = await client.get(sent.headers["location"])
    assert "Your reply is queued" in shown.text and "Reply by Ada" in shown.text
    # From htmx: the header carries the token, and the answer is the conversation's live part.
    fresh = Html(shown.text).hidden()["key"]
    swapped = await client.post(
        f"/inbox/{conversation_id}/reply",
        data={"body": "A presto", "key": fresh},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf},
    )
    assert swapped.status_code == 200 and "<html" not in swapped.text and "Your reply is queued" in swapped.text
    assert Html(swapped.text).hidden()["key"] != fresh  # a new form for the next reply
    assert [body for _, _, body in queued(runtime)] == ["Il 12 dicembre!", "A presto"]
    reused = await client.post(
        f"/inbox/{conversation_id}/reply", data={"body": "Something else", "key": fresh, "csrf_token": csrf}
    )
    assert reused.status_code == 409 and "already used" in reused.text and "Something else" in reused.text
    empty = await client.post(f"/inbox/{conversation_id}/reply", data={"body": "  ", "csrf_token": csrf})
    assert empty.status_code == 422 and "the reply is empty" in Html(empty.text).text("reply-error")


async def test_replying_to_someone_who_opted_out_is_refused_visibly(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    conversation_id = seeded(runtime, phone="+12025550143", state="unsubscribed", bodies=("STOP",))
    csrf = await sign_in_as(client, runtime)
    page = await client.get(f"/inbox/{conversation_id}")
    assert "replies are refused" in page.text
    for headers in ({}, {"HX-Request": "true"}):
        refused = await client.post(
            f"/inbox/{conversation_id}/reply", data={"body": "please come back", "csrf_token": csrf}, headers=headers
        )
        assert refused.status_code == 422
        error = Html(refused.text).text("reply-error")
        assert "+12025550143 opted out" in error and "not queued" in error
        assert "please come back" in refused.text  # what was typed is kept
    assert queued(runtime) == []


async def test_assign_done_and_notes(client: httpx.AsyncClient, runtime: Runtime) -> None:
    conversation_id = seeded(runtime, unread=1)
    csrf = await sign_in_as(client, runtime)
    bob = make_user(runtime, "bob@example.org", UserRole.agent)
    url = f"/inbox/{conversation_id}"
    assert (await client.post(f"{url}/assign", data={"user": str(bob.id)})).status_code == 403
    assigned = await client.post(f"{url}/assign", data={"user": str(bob.id), "csrf_token": csrf})
    assert (assigned.status_code, assigned.headers["location"]) == (303, url)
    assert f'<option value="{bob.id}" selected>Bob</option>' in (await client.get(url)).text
    assert rows((await client.get("/inbox?unassigned=1")).text) == []
    nobody = await client.post(f"{url}/assign", data={"user": "", "csrf_token": csrf}, headers={"HX-Request": "true"})
    assert nobody.status_code == 200 and "Assignment saved" in nobody.text
    unknown = await client.post(f"{url}/assign", data={"user": "99999", "csrf_token": csrf})
    assert unknown.status_code == 422 and "that teammate does not exist" in unknown.text
    junk = await client.post(f"{url}/assign", data={"user": "x", "csrf_token": csrf})
    assert junk.status_code == 422

    done = await client.post(f"{url}/done", data={"done": "1", "csrf_token": csrf})
    assert done.status_code == 303
    assert rows((await client.get("/inbox")).text) == [] and rows((await client.get("/inbox?view=done")).text) == [
        str(conversation_id)
    ]
    assert "Not done: back to the inbox" in (await client.get(url)).text
    back = await client.post(f"{url}/done", data={"done": "0", "csrf_token": csrf}, headers={"HX-Request": "true"})
    assert "Back in the inbox" in back.text and rows((await client.get("/inbox")).text) == [str(conversation_id)]

    noted = await client.post(f"{url}/notes", data={"body": "Called her: all good", "csrf_token": csrf})
    assert (noted.status_code, noted.headers["location"]) == (303, f"{url}?noted=1")
    page = await client.get(noted.headers["location"])
    assert "Note by Ada" in page.text and "Called her: all good" in page.text and "Note added." in page.text
    empty = await client.post(f"{url}/notes", data={"body": " ", "csrf_token": csrf})
    assert empty.status_code == 422 and "the note is empty" in Html(empty.text).text("note-error")
    for action in ("reply", "assign", "done", "notes"):
        missing = await client.post(f"/inbox/{conversation_id + 999}/{action}", data={"body": "x", "csrf_token": csrf})
        assert missing.status_code == 404, action


# -- the segment counter ---------------------------------------------------------------------------


async def test_the_counter_endpoint_answers_like_count_segments(client: httpx.AsyncClient, runtime: Runtime) -> None:
    csrf = await sign_in_as(client, runtime)
    conversation_id = seeded(runtime)

    async def count(body: str, **extra: str) -> str:
        answer = await client.post("/inbox/count", data={"body": body, **extra}, headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 200, answer.text
        return answer.text

    assert await count("Hello world!") == "1 segment · GSM-7 · 12/160"
    assert await count("a" * 161) == "2 segments · GSM-7 · 161/306"
    assert await count("Ciao 😀") == "1 segment · UCS-2 · 7/70"
    assert await count("È" * 71) == "2 segments · UCS-2 · 71/134"
    assert await count("it\u2019s", conversation=str(conversation_id)) == "1 segment · UCS-2 · 4/70"
    with runtime.db.write_engine.begin() as conn:
        conn.execute(sa.update(schema.senders).values(smart_encoding=True))
    assert await count("it\u2019s", conversation=str(conversation_id)) == "1 segment · GSM-7 · 4/160"
    assert (await client.post("/inbox/count", data={"body": "hi"})).status_code == 403


def _samples() -> list[str]:
    italy, family = "\U0001f1ee\U0001f1f9", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
    fixed = [
        "",
        "Hello world!",
        "a" * 160,
        "a" * 161,
        "a" * 307,
        "€" * 80,
        "€" * 81,
        "a" * 152 + "€" + "a" * 152,
        "a" * 152 + "\r\n" + "a" * 10,
        "a" * 159 + "\r\n",
        "perché più così",
        "È vero",
        "😀" * 35,
        "😀" * 36,
        italy * 18,
        "a" * 66 + italy + "b",
        "a" * 60 + family,
        "नमस्ते दोस्तों, कल मिलते हैं! " * 4,
        "it\u2019s \u201cquoted\u201d \u2014 ok\u2026" * 5,
    ]
    pieces = ["a", "b", " ", "€", "[", "\r\n", "\n", "é", "È", "\u2019", "😀", italy, family, "न", "मस्", "ते", "ñ", "Ω"]
    rng = random.Random(7)
    generated = ["".join(rng.choices(pieces, k=rng.randint(1, 220))) for _ in range(400)]
    return fixed + generated


@pytest.mark.skipif(NODE is None, reason="comparing the browser's counter needs Node.js")
def test_the_browser_counter_says_what_the_server_says(tmp_path: Path) -> None:
    script = Path(str(files("openline.web").joinpath("static/dashboard/dashboard.js")))
    samples = _samples()
    runner = tmp_path / "count.js"
    runner.write_text(
        "const {countLabel} = require(process.argv[2]);\n"
        "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "const labels = input.samples.map(t => [countLabel(t, null), countLabel(t, input.map)]);\n"
        "process.stdout.write(JSON.stringify(labels));\n",
        encoding="utf-8",
    )
    assert NODE is not None
    result = subprocess.run(
        [NODE, str(runner), str(script)],
        input=json.dumps({"samples": samples, "map": SMART_ENCODING}),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    browser = json.loads(result.stdout)
    for text, (plain, smart) in zip(samples, browser, strict=True):
        assert plain == count_label(text.strip()), text
        assert smart == count_label(text.strip(), smart=True), text


# -- the live list ---------------------------------------------------------------------------------


def events(body: str) -> list[tuple[str, str]]:
    found = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            assert fields["id"] == fields["data"]
            found.append((fields["event"], fields["data"]))
    return found


async def test_the_event_stream_says_when_a_newer_conversation_arrives(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(pages, "STREAM_SECONDS", 1.5)
    phone = "+393471234567"
    conversation_id = seeded(runtime, phone=phone, at=schema.utcnow() - timedelta(hours=1))
    await sign_in_as(client, runtime)
    page = Html((await client.get("/inbox")).text)
    since = page.by_id["conversations"]["attrs"]["data-since"]
    assert page.by_id["conversations"]["attrs"]["data-events"] == "/inbox/events?view=inbox"

    async def a_text_arrives() -> None:
        await asyncio.sleep(0.3)
        await send(runtime, phone, "Ci sarò!")
        await process(runtime)

    async with asyncio.timeout(10):
        answer, _ = await asyncio.gather(client.get(f"/inbox/events?view=inbox&since={since}"), a_text_arrives())
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.startswith("retry: ")
    with runtime.db.read_engine.connect() as conn:
        moved = conn.execute(
            sa.select(schema.conversations.c.last_message_at).where(schema.conversations.c.id == conversation_id)
        ).scalar_one()
    assert events(answer.text) == [("newer", Cursor(moved, conversation_id).encode())]

    # Nothing newer than what the browser last heard (Last-Event-ID beats the page's since): no event.
    async with asyncio.timeout(10):
        quiet = await client.get(
            f"/inbox/events?since={since}", headers={"Last-Event-ID": Cursor(moved, conversation_id).encode()}
        )
    assert events(quiet.text) == []
    # Other views do not hear about it: the new text is in the inbox, not among pending people.
    async with asyncio.timeout(10):
        pending = await client.get("/inbox/events?view=pending&since=")
    assert events(pending.text) == []


def test_the_event_stream_ends_when_the_browser_goes_away(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "POLL_SECONDS", 0.05)
    make_user(runtime, "ada@example.org")
    token, _ = session_token(runtime, "ada@example.org")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, own_runtime=False), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        before = EVENT_STREAMS._value.get()
        with httpx.stream(
            "GET", f"http://127.0.0.1:{port}/inbox/events", cookies={COOKIE: token}, headers={"Host": HOST}, timeout=5
        ) as response:
            assert response.status_code == 200
            chunks = response.iter_text()  # kept: dropping the iterator would close the response
            assert next(chunks).startswith("retry: ")
            time.sleep(0.3)  # a few polls
            assert EVENT_STREAMS._value.get() == before + 1
        deadline = time.monotonic() + 5
        while EVENT_STREAMS._value.get() != before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert EVENT_STREAMS._value.get() == before, "the stream outlived its browser"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
