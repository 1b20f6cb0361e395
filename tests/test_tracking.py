"""Tracked links: finding URLs in a text, signed click codes, rewriting, and the /l/<code> route."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from openline.communities import get_community
from openline.db import Database, schema
from openline.encoding import count_segments
from openline.runtime import Runtime
from openline.states import BroadcastState, MemberState
from openline.tracking import (
    CODE_ALPHABET,
    LINK_KEY_PURPOSE,
    InvalidCode,
    LinkRewriter,
    find_urls,
    link_code,
    read_link_code,
    record_click,
)
from tests.conftest import count

KEY = bytes(range(32))
BASE = "https://sms.example.org"
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def _urls(text: str) -> list[str]:
    found = find_urls(text)
    assert all(text[start:end] == url for start, end, url in found)
    return [url for _, _, url in found]


# -- finding URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        (
            "Tickets are on sale: https://example.org/tickets?show=42. See you there!",
            ["https://example.org/tickets?show=42"],
        ),
        ("Vote now at http://vote.example.com, it closes at 9!", ["http://vote.example.com"]),
        ("Really? https://example.org/faq?", ["https://example.org/faq"]),
        ("Two: https://a.example/x; https://b.example/y: done", ["https://a.example/x", "https://b.example/y"]),
        ('He said "https://example.org/quote" twice', ["https://example.org/quote"]),
        ("(details at https://example.org/details)", ["https://example.org/details"]),
        (
            "Read https://en.wikipedia.org/wiki/Bach_(disambiguation).",
            ["https://en.wikipedia.org/wiki/Bach_(disambiguation)"],
        ),
        ("[https://example.org/a]", ["https://example.org/a"]),
        ("Shop https://example.org/shop#summer-sale!!!", ["https://example.org/shop#summer-sale"]),
        ("HTTPS://EXAMPLE.ORG/Shout", ["HTTPS://EXAMPLE.ORG/Shout"]),
        ("Tonight 🎸 https://example.org/live🔥🔥 don't miss it", ["https://example.org/live"]),
        ("Flag https://example.org/it🇮🇹", ["https://example.org/it"]),
        ("Heart https://example.org/love❤️ ok", ["https://example.org/love"]),
        ("Link:https://example.org/tight", ["https://example.org/tight"]),
        ("a line\nhttps://example.org/next\nanother", ["https://example.org/next"]),
        # Italian: guillemets, an accented path, an apostrophe after the URL.
        (
            "Ciao Giulia! Iscriviti qui: https://esempio.it/iscrizione, ti aspettiamo! «https://esempio.it/città»",
            ["https://esempio.it/iscrizione", "https://esempio.it/città"],
        ),
        ("Il programma è su https://esempio.it/programma… a presto", ["https://esempio.it/programma"]),
        ("Vedi 'https://esempio.it/faq' per l'orario", ["https://esempio.it/faq"]),
        # Hindi: the danda ends a sentence, Devanagari in the path is part of the URL.
        ("पंजीकरण करें: https://example.in/register। धन्यवाद", ["https://example.in/register"]),
        ("कार्यक्रम देखें https://example.in/कार्यक्रम और आइए 🙏", ["https://example.in/कार्यक्रम"]),
        ("टिकट https://example.in/t?id=7॥", ["https://example.in/t?id=7"]),
        # Not URLs: no scheme, another scheme, a scheme glued to a word, no host.
        ("Visit www.example.org or example.org", []),
        ("ftp://example.org/file and mailto:a@example.org", []),
        ("xhttps://example.org", []),
        ("Just https:// and https://. here", []),
    ],
)
def test_urls_are_found_without_the_sentences_punctuation(text: str, urls: list[str]) -> None:
    assert _urls(text) == urls


def test_positions_are_those_in_the_text() -> None:
    text = "🎉 Ciao! https://esempio.it/a e https://esempio.it/b."
    assert find_urls(text) == [(8, 28, "https://esempio.it/a"), (31, 51, "https://esempio.it/b")]


# -- codes --------------------------------------------------------------------------------------------

ids = st.integers(min_value=0, max_value=2**63 - 1)


def test_a_code_is_short_url_safe_and_round_trips() -> None:
    code = link_code(KEY, 5_000, 1_000_000)
    assert len(code) <= 18
    assert set(code) <= set(CODE_ALPHABET) | {"-"}
    assert read_link_code(KEY, code) == (5_000, 1_000_000)
    assert len(link_code(KEY, 1, 1)) == 12
    assert len(link_code(KEY, 2**63 - 1, 2**63 - 1)) == 32


@given(ids, ids)
def test_codes_round_trip(link_id: int, member_id: int) -> None:
    assert read_link_code(KEY, link_code(KEY, link_id, member_id)) == (link_id, member_id)


@given(ids, ids, st.data())
def test_any_single_character_change_is_rejected(link_id: int, member_id: int, data: st.DataObject) -> None:
    code = link_code(KEY, link_id, member_id)
    position = data.draw(st.integers(min_value=0, max_value=len(code) - 1))
    replacement = data.draw(
        st.one_of(st.sampled_from(CODE_ALPHABET + "-_.~%"), st.characters()).filter(lambda c: c != code[position])
    )
    with pytest.raises(InvalidCode):
        read_link_code(KEY, code[:position] + replacement + code[position + 1 :])


@given(ids, ids)
def test_a_code_from_another_key_is_rejected(link_id: int, member_id: int) -> None:
    with pytest.raises(InvalidCode):
        read_link_code(b"another key", link_code(KEY, link_id, member_id))


@pytest.mark.parametrize("code", ["", "-", "abc", "1-1", "1-" + "0" * 9, "01-1" + "0" * 9, "x" * 200, "1-1-1abcdefghi"])
def test_garbage_is_rejected(code: str) -> None:
    with pytest.raises(InvalidCode):
        read_link_code(KEY, code)


def test_leading_zeros_are_not_another_spelling() -> None:
    code = link_code(KEY, 7, 9)
    with pytest.raises(InvalidCode):
        read_link_code(KEY, "0" + code)


# -- rewriting -----------------------------------------------------------------------------------------


def _community(runtime: Runtime) -> int:
    with runtime.db.read_engine.connect() as conn:
        return get_community(conn).id


def _broadcast(runtime: Runtime, name: str = "spring") -> int:
    with runtime.db.write_engine.begin() as conn:
        return int(
            conn.execute(
                sa.insert(schema.broadcasts)
                .values(
                    community_id=_community(runtime),
                    name=name,
                    message={"variants": []},
                    segment={},
                    state=BroadcastState.draft,
                    tally={},
                )
                .returning(schema.broadcasts.c.id)
            ).scalar_one()
        )


def _member(runtime: Runtime, phone: str) -> int:
    with runtime.db.write_engine.begin() as conn:
        return int(
            conn.execute(
                sa.insert(schema.members)
                .values(
                    community_id=_community(runtime),
                    phone=phone,
                    state=MemberState.subscribed,
                    time_zones=[],
                    custom={},
                )
                .returning(schema.members.c.id)
            ).scalar_one()
        )


def _link_rows(db: Database) -> list[tuple[int, int, str]]:
    bl = schema.broadcast_links.c
    with db.read_engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(bl.id, bl.broadcast_id, bl.url).order_by(bl.id))]


def _code_of(tracked: str) -> str:
    assert tracked.startswith(f"{BASE}/l/")
    return tracked.removeprefix(f"{BASE}/l/")


def test_the_same_url_for_two_members_is_one_link_with_two_codes(runtime: Runtime) -> None:
    broadcast_id = _broadcast(runtime)
    rewriter = LinkRewriter(broadcast_id, BASE + "/", KEY)  # a trailing slash is dropped
    text = "Tickets: https://example.org/tickets?show=42. Map: https://example.org/map 🎉"
    with runtime.db.write_engine.begin() as conn:
        first = rewriter.rewrite(conn, text, 101)
        second = rewriter.rewrite(conn, text, 102)
    urls_first, urls_second = _urls(first), _urls(second)
    assert first == f"Tickets: {urls_first[0]}. Map: {urls_first[1]} 🎉"
    assert urls_first != urls_second
    rows = _link_rows(runtime.db)
    assert [(b, url) for _, b, url in rows] == [
        (broadcast_id, "https://example.org/tickets?show=42"),
        (broadcast_id, "https://example.org/map"),
    ]
    codes = [read_link_code(KEY, _code_of(url)) for url in urls_first + urls_second]
    assert codes == [(rows[0][0], 101), (rows[1][0], 101), (rows[0][0], 102), (rows[1][0], 102)]
    # The caller counts segments on the exact text that is sent.
    assert count_segments(first).segments == count_segments(second).segments

    # A new rewriter (another batch, another process) finds the rows instead of adding more.
    with runtime.db.write_engine.begin() as conn:
        again = LinkRewriter(broadcast_id, BASE, KEY).rewrite(conn, text, 101)
    assert again == first
    assert len(_link_rows(runtime.db)) == 2


def test_texts_without_links_and_the_installations_own_links_are_left_alone(runtime: Runtime) -> None:
    broadcast_id = _broadcast(runtime)
    rewriter = LinkRewriter(broadcast_id, BASE, KEY)
    with runtime.db.write_engine.begin() as conn:
        assert rewriter.rewrite(conn, "No links, just www.example.org", 1) == "No links, just www.example.org"
        own = f"Your card: {BASE}/card/default.vcf"
        assert rewriter.rewrite(conn, own, 1) == own
    assert _link_rows(runtime.db) == []


def test_the_same_url_in_two_broadcasts_is_two_links(runtime: Runtime) -> None:
    one, two = _broadcast(runtime, "one"), _broadcast(runtime, "two")
    with runtime.db.write_engine.begin() as conn:
        LinkRewriter(one, BASE, KEY).rewrite(conn, "https://example.org/x", 1)
        LinkRewriter(two, BASE, KEY).rewrite(conn, "https://example.org/x", 1)
    assert [b for _, b, _ in _link_rows(runtime.db)] == [one, two]


def test_two_processes_creating_the_same_link_get_the_same_row(runtime: Runtime) -> None:
    broadcast_id = _broadcast(runtime)
    text = "Tonight: https://example.org/live"
    inserted = threading.Event()
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with runtime.db.write_engine.begin() as conn:
                results["first"] = LinkRewriter(broadcast_id, BASE, KEY).rewrite(conn, text, 1)
                inserted.set()
                time.sleep(0.3)  # still uncommitted while the other one looks for the row and inserts
        except BaseException as exc:
            errors.append(exc)
            inserted.set()

    def second() -> None:
        try:
            inserted.wait(10)
            with runtime.db.write_engine.begin() as conn:
                results["second"] = LinkRewriter(broadcast_id, BASE, KEY).rewrite(conn, text, 2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    rows = _link_rows(runtime.db)
    assert len(rows) == 1
    assert read_link_code(KEY, _code_of(_urls(results["first"])[0])) == (rows[0][0], 1)
    assert read_link_code(KEY, _code_of(_urls(results["second"])[0])) == (rows[0][0], 2)


# -- recording clicks ----------------------------------------------------------------------------------


def _tracked(runtime: Runtime, member_id: int, url: str = "https://example.org/tickets?show=42") -> str:
    broadcast_id = _broadcast(runtime)
    rewriter = LinkRewriter(broadcast_id, runtime.base_url, runtime.key_for(LINK_KEY_PURPOSE))
    with runtime.db.write_engine.begin() as conn:
        text = rewriter.rewrite(conn, f"Tickets: {url} !", member_id)
    return _urls(text)[0].removeprefix(runtime.base_url)


def _clicks(db: Database) -> list[tuple[int, int, int | None, str, datetime]]:
    c = schema.link_clicks.c
    with db.read_engine.connect() as conn:
        query = sa.select(c.community_id, c.member_id, c.broadcast_id, c.url, c.clicked_at).order_by(c.id)
        return [tuple(row) for row in conn.execute(query)]


def test_record_click_stores_the_click_and_returns_the_url(runtime: Runtime) -> None:
    member_id = _member(runtime, "+12025550101")
    path = _tracked(runtime, member_id)
    key = runtime.key_for(LINK_KEY_PURPOSE)
    with runtime.db.write_engine.begin() as conn:
        assert record_click(conn, key, path.removeprefix("/l/"), NOW) == "https://example.org/tickets?show=42"
    (broadcast_id,) = {b for _, b, _ in _link_rows(runtime.db)}
    assert _clicks(runtime.db) == [
        (_community(runtime), member_id, broadcast_id, "https://example.org/tickets?show=42", NOW)
    ]
    with runtime.db.write_engine.begin() as conn, pytest.raises(InvalidCode):
        record_click(conn, b"another key", path.removeprefix("/l/"), NOW)


# -- the route -------------------------------------------------------------------------------------


async def test_a_click_redirects_and_is_recorded(runtime: Runtime, client: httpx.AsyncClient) -> None:
    member_id = _member(runtime, "+12025550101")
    path = _tracked(runtime, member_id)
    response = await client.get(path)
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.org/tickets?show=42"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    clicks = _clicks(runtime.db)
    assert [(m, url) for _, m, _, url, _ in clicks] == [(member_id, "https://example.org/tickets?show=42")]
    await client.get(path)  # every click counts; stats count distinct members themselves
    assert count(runtime.db, schema.link_clicks) == 2


async def test_an_accented_url_is_redirected_percent_encoded(runtime: Runtime, client: httpx.AsyncClient) -> None:
    path = _tracked(runtime, _member(runtime, "+393471234567"), "https://esempio.it/città?q=sì")
    response = await client.get(path)
    assert response.status_code == 302
    assert response.headers["location"] == "https://esempio.it/citt%C3%A0?q=s%C3%AC"


async def test_head_and_preview_fetchers_are_redirected_without_a_click(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    path = _tracked(runtime, _member(runtime, "+12025550101"))
    head = await client.head(path)
    assert head.status_code == 302 and head.headers["location"] == "https://example.org/tickets?show=42"
    for agent in (
        "facebookexternalhit/1.1 Facebot Twitterbot/1.0",  # iMessage's previews
        "WhatsApp/2.23.20.0 A",
        "TelegramBot (like TwitterBot)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    ):
        response = await client.get(path, headers={"User-Agent": agent})
        assert response.status_code == 302, agent
        assert response.headers["location"] == "https://example.org/tickets?show=42"
    assert count(runtime.db, schema.link_clicks) == 0


@pytest.mark.parametrize("accept", ["en-GB,en;q=0.8", "it-IT,it;q=0.9"])
async def test_a_forged_code_is_a_friendly_404(runtime: Runtime, client: httpx.AsyncClient, accept: str) -> None:
    path = _tracked(runtime, _member(runtime, "+12025550101"))
    code = path.removeprefix("/l/")
    forged = code[:-1] + ("A" if code[-1] != "A" else "B")
    for bad in (forged, link_code(b"not our key", 1, 1), "nonsense", "%00", "1-1" + "0" * 9):
        response = await client.get(f"/l/{bad}", headers={"Accept-Language": accept})
        assert response.status_code == 404, bad
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
        assert ("not valid" if accept.startswith("en") else "non è valido") in response.text
    assert count(runtime.db, schema.link_clicks) == 0


async def test_a_genuine_code_for_an_unknown_link_is_a_404(runtime: Runtime, client: httpx.AsyncClient) -> None:
    code = link_code(runtime.key_for(LINK_KEY_PURPOSE), 999_999, _member(runtime, "+12025550101"))
    for method in ("GET", "HEAD"):
        response = await client.request(method, f"/l/{code}")
        assert response.status_code == 404
        assert "location" not in response.headers
    assert count(runtime.db, schema.link_clicks) == 0


async def test_an_erased_member_is_still_redirected_but_not_recorded(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    member_id = _member(runtime, "+12025550101")
    path = _tracked(runtime, member_id)
    with runtime.db.write_engine.begin() as conn:
        conn.execute(sa.delete(schema.members).where(schema.members.c.id == member_id))
    response = await client.get(path)
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.org/tickets?show=42"
    assert count(runtime.db, schema.link_clicks) == 0


async def test_a_click_the_database_cannot_take_still_redirects(
    runtime: Runtime, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _member(runtime, "+12025550101"), _member(runtime, "+12025550102")  # so the member's id is not the link's
    member_id = _member(runtime, "+12025550103")
    path = _tracked(runtime, member_id, "https://example.org/private?email=giulia@example.org")

    async def unavailable(*_: object, **__: object) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(runtime.writer, "run", unavailable)
    response = await client.get(path)
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.org/private?email=giulia@example.org"
    assert count(runtime.db, schema.link_clicks) == 0
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "was not recorded" in logged
    assert "giulia" not in logged and "email=" not in logged and str(member_id) not in logged
