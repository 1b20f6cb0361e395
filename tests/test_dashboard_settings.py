"""/settings on SQLite and PostgreSQL: roles, CSRF, each section saving and refusing with the message next
to its field, the audit log, and provider secrets that never reach the page."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from openline.communities import get_community
from openline.db import schema
from openline.engine.config import load_config, set_text, update_config
from openline.engine.texts import SystemText
from openline.providers import outbound_providers
from openline.runtime import Runtime
from openline.senders import list_senders
from openline.settings import Settings
from openline.states import UserRole
from openline.web.dashboard.settings_pages import PROVIDER_SETTINGS, providers

from .test_dashboard_auth import assert_accessible_form, assert_dashboard_headers, make_user, session_token, use
from .test_join import Html

# Values that must never appear on a page (the non-secret ones neither: the page says "set", nothing more).
SECRETS = {
    "twilio_account_sid": "AC0123456789abcdef0123456789abcdef",
    "twilio_auth_token": "twilio-token-do-not-show-4242",
    "vonage_signature_secret": "vonage-signature-do-not-show",
    "plivo_auth_token": "plivo-token-do-not-show-9999",
    "smpp_password": "smpp-password-do-not-show",
}


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The shared runtime's settings, with some providers configured from the environment's settings."""
    secret = {name: SecretStr(value) for name, value in SECRETS.items() if name != "twilio_account_sid"}
    return Settings(
        database_url=database_url,
        public_url="https://sms.example.org",
        twilio_account_sid=SECRETS["twilio_account_sid"],
        **secret,  # type: ignore[arg-type]
    )


@pytest.fixture
def owner(client: httpx.AsyncClient, runtime: Runtime) -> str:
    """Signed in as the owner; the session's CSRF token."""
    make_user(runtime, "ada@example.org")
    token, csrf = session_token(runtime, "ada@example.org")
    use(client, token)
    return csrf


def audit_actions(runtime: Runtime) -> list[tuple[str, str]]:
    a = schema.audit_log.c
    with runtime.db.read_engine.connect() as conn:
        rows = conn.execute(sa.select(a.action, a.target).where(a.action != "user.sign_in").order_by(a.id))
        return [(row.action, row.target or "") for row in rows if row.action != "user.add"]


def config(runtime: Runtime) -> Any:
    with runtime.db.read_engine.connect() as conn:
        return load_config(conn, get_community(conn).id)


async def refused(client: httpx.AsyncClient, path: str, data: dict[str, str], field: str) -> str:
    """Post a form that must be refused; the message shown next to ``field``."""
    response = await client.post(path, data=data)
    assert response.status_code == 400, response.text
    assert_unique_ids(response.text)
    page = Html(response.text)
    assert_accessible_form(page)
    field_input = next((i for i in page.inputs if i.get("id") == field), None)
    if field_input is not None:  # inputs and selects say which message describes them
        assert f"{field}-error" in field_input["aria-describedby"].split()
        assert field_input.get("aria-invalid") == "true"
    return page.text(f"{field}-error")


def table_rows(html: str) -> list[list[str]]:
    """Every table row of a page, as the text of its cells."""
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)
    ]


def assert_unique_ids(html: str) -> None:
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


async def saved(client: httpx.AsyncClient, path: str, data: dict[str, str], section: str) -> Html:
    response = await client.post(path, data=data)
    assert (response.status_code, response.headers["location"]) == (303, f"/settings?saved={section}#{section}"), (
        response.text
    )
    page = await client.get(response.headers["location"])
    assert page.status_code == 200
    assert_unique_ids(page.text)
    return Html(page.text)


async def test_only_the_owner_and_admins(client: httpx.AsyncClient, runtime: Runtime) -> None:
    assert (await client.get("/settings")).headers["location"] == "/setup"
    make_user(runtime, "ada@example.org")
    make_user(runtime, "bo@example.org", UserRole.agent)
    make_user(runtime, "cy@example.org", UserRole.admin)
    use(client, None)
    assert (await client.get("/settings")).headers["location"] == "/login?next=%2Fsettings"
    agent, agent_csrf = session_token(runtime, "bo@example.org")
    use(client, agent)
    assert (await client.get("/settings")).status_code == 403
    for path in ("/settings/senders", "/settings/texts", "/settings/keywords", "/settings/broadcasts"):
        assert (await client.post(path, data={"csrf_token": agent_csrf, "word": "JOIN", "tag": "x"})).status_code == 403
    admin, _ = session_token(runtime, "cy@example.org")
    use(client, admin)
    page = await client.get("/settings")
    assert page.status_code == 200
    assert_dashboard_headers(page)
    assert_accessible_form(Html(page.text))
    assert 'href="/settings" aria-current="page"' in page.text
    headings = ("senders-heading", "providers-heading", "texts-heading", "keywords-heading", "form-heading")
    for heading in (*headings, "replies-heading"):
        assert heading in Html(page.text).by_id
    assert audit_actions(runtime) == []


async def test_posts_need_the_csrf_token(client: httpx.AsyncClient, runtime: Runtime, owner: str) -> None:
    posts = {
        "/settings/senders": {"address": "+14155550123", "provider": "sandbox", "mps": "1"},
        "/settings/texts": {"language": "en", "name": "help", "template": "Help: {contact}"},
        "/settings/texts/reset": {"language": "en", "name": "help"},
        "/settings/keywords": {"word": "JOIN", "tag": "fans"},
        "/settings/keywords/remove": {"remove": "JOIN"},
        "/settings/broadcasts": {"disclosure": "#ad", "currency": "USD"},
        "/settings/form-fields": {"name": "email"},
        "/settings/form-fields/remove": {"remove": "city"},
        "/settings/replies": {"name": "tickets", "text": "Friday at 10:00"},
        "/settings/replies/remove": {"remove": "tickets"},
    }
    for path, data in posts.items():
        for token in (None, "not the token"):
            forged = data if token is None else {**data, "csrf_token": token}
            assert (await client.post(path, data=forged)).status_code == 403, path
    assert audit_actions(runtime) == []
    assert len(config(runtime).keywords) == 0 and len(config(runtime).form.fields) == 4
    assert config(runtime).saved_replies == {}


async def test_provider_secrets_never_reach_the_page(client: httpx.AsyncClient, runtime: Runtime, owner: str) -> None:
    page = await client.get("/settings")
    for value in SECRETS.values():
        assert value not in page.text
    text = Html(page.text).all_text
    assert "OPENLINE_TWILIO_AUTH_TOKEN: set" in text and "OPENLINE_TELNYX_API_KEY: not set" in text
    assert "twilio: sends, receives" in text and "vonage: does not send, receives" in text
    assert "plivo: does not send, receives" in text and "sandbox: sends, receives" in text
    # Only the providers that can send are offered for a new sender.
    offered = [o for o in page.text.split('id="senders-provider"')[1].split("</select>")[0].split('value="')[1:]]
    assert [o.split('"')[0] for o in offered] == ["sandbox", "twilio"]
    # Refused and echoed forms show no secret either.
    bad = await client.post("/settings/senders", data={"csrf_token": owner, "address": "x", "provider": "vonage"})
    assert bad.status_code == 400 and all(value not in bad.text for value in SECRETS.values())


async def test_the_page_agrees_with_the_providers_openline_sends_through() -> None:
    everything = Settings(
        twilio_account_sid="AC1",
        twilio_auth_token=SecretStr("t"),
        vonage_api_key="k",
        vonage_api_secret=SecretStr("s"),
        telnyx_api_key=SecretStr("k"),
        plivo_auth_id="i",
        plivo_auth_token=SecretStr("t"),
        smpp_host="smsc.example.org",
        smpp_system_id="me",
    )

    async def ignore(_: object) -> None:
        return None

    async with httpx.AsyncClient() as http:
        for configured in (Settings(), everything):
            real = set(outbound_providers(configured, http, on_status=ignore))
            assert {p.name for p in providers(configured, {}) if p.sends} == real
    assert set(PROVIDER_SETTINGS) | {"sandbox"} == {p.name for p in providers(Settings(), {})}


async def test_senders(client: httpx.AsyncClient, runtime: Runtime, owner: str) -> None:
    new = {"csrf_token": owner, "address": "+1 415 555 0123", "provider": "twilio", "mps": "2.5", "daily_cap": "1000"}
    assert "not configured" in await refused(
        client, "/settings/senders", {**new, "provider": "vonage"}, "senders-provider"
    )
    assert "not a sender address" in await refused(
        client, "/settings/senders", {**new, "address": "not a number!"}, "senders-address"
    )
    assert "more than 0" in await refused(client, "/settings/senders", {**new, "mps": "0"}, "senders-mps")
    message = await refused(client, "/settings/senders", {**new, "daily_cap": "lots"}, "senders-daily_cap")
    assert "whole number" in message
    kept = Html((await client.post("/settings/senders", data={**new, "mps": "x"})).text)
    assert kept.value("address") == "+1 415 555 0123" and kept.value("daily_cap") == "1000"

    page = await saved(client, "/settings/senders", new, "senders")
    page_text = (await client.get("/settings")).text
    assert "Sender added." in page.all_text
    assert ["+14155550123", "twilio", "long code", "2.5", "1000", "off"] in table_rows(page_text)
    assert "already a sender" in await refused(client, "/settings/senders", new, "senders-address")
    with runtime.db.read_engine.connect() as conn:
        assert [(s.provider, s.mps, s.daily_cap) for s in list_senders(conn)][-1] == ("twilio", 2.5, 1000)
    assert runtime.senders.cached("+14155550123") is not None
    assert audit_actions(runtime) == [("sender.add", "+14155550123")]


async def test_texts(client: httpx.AsyncClient, runtime: Runtime, owner: str) -> None:
    text = {
        "csrf_token": owner,
        "language": "it",
        "name": "autotext",
        "template": "Ciao da {programme}! STOP per uscire.",
    }
    message = await refused(client, "/settings/texts", {**text, "template": "Ciao {nome}"}, "texts-template")
    assert "Unknown placeholder {nome}" in message
    assert (
        "write the text"
        in (await refused(client, "/settings/texts", {**text, "template": " "}, "texts-template")).lower()
    )
    assert "languages" in await refused(client, "/settings/texts", {**text, "language": "fr"}, "texts-language")
    kept = await client.post("/settings/texts", data={**text, "template": "Ciao {nome}"})
    assert "Ciao {nome}</textarea>" in kept.text

    page = await saved(client, "/settings/texts", text, "texts")
    assert "Text saved." in page.all_text
    assert "Ciao da {programme}! STOP per uscire. (yours)" not in page.all_text  # the source comes first
    assert "Autotext: the first answer to a new number (yours) Ciao da {programme}! STOP per uscire." in page.all_text
    assert config(runtime).texts == {"it": {"autotext": "Ciao da {programme}! STOP per uscire."}}
    # The English one is still openline's own.
    assert "Autotext: the first answer to a new number (openline's own) Hey, it's {programme}." in page.all_text

    await saved(client, "/settings/texts/reset", {"csrf_token": owner, "language": "it", "name": "autotext"}, "texts")
    assert config(runtime).texts == {}
    # A sender's own texts win over these; the page says which senders have some.
    with runtime.db.write_engine.begin() as conn:
        set_text(conn, get_community(conn).id, "en", SystemText.help, "Help: {contact}", sender="+12025550100")
    page = Html((await client.get("/settings")).text)
    assert "Some senders have texts of their own, which they send instead of these: +12025550100." in page.all_text
    assert audit_actions(runtime) == [("text.set", "autotext (it)"), ("text.reset", "autotext (it)")]


async def test_keywords(client: httpx.AsyncClient, runtime: Runtime, owner: str) -> None:
    keyword = {"csrf_token": owner, "word": "join", "tag": "fans", "reply": "Welcome, fan!"}
    assert "opt-out word" in await refused(client, "/settings/keywords", {**keyword, "word": "STOP"}, "keywords-word")
    assert "one word" in await refused(client, "/settings/keywords", {**keyword, "word": "two words"}, "keywords-word")
    assert "at least 1 character" in await refused(client, "/settings/keywords", {**keyword, "tag": ""}, "keywords-tag")

    page = await saved(client, "/settings/keywords", keyword, "keywords")
    assert "JOIN → tag fans Answer: Welcome, fan!" in page.all_text
    assert config(runtime).keywords["JOIN"].reply == "Welcome, fan!"
    remove = {"csrf_token": owner, "remove": "JOIN"}
    page = await saved(client, "/settings/keywords/remove", remove, "keywords")
    assert "No keywords yet." in page.all_text and config(runtime).keywords == {}
    assert "no keyword 'JOIN'" in await refused(client, "/settings/keywords/remove", remove, "keywords-list")
    assert audit_actions(runtime) == [("keyword.add", "JOIN"), ("keyword.remove", "JOIN")]


async def test_broadcast_rules(client: httpx.AsyncClient, runtime: Runtime, owner: str) -> None:
    page = Html((await client.get("/settings")).text)
    assert page.value("disclosure") == "#ad" and page.value("currency") == "USD"
    assert [n for n in page.field_names() if n.startswith("footer-")] == [
        "footer-en",
        "footer-es",
        "footer-it",
        "footer-hi",
        "footer-*",
    ]
    rules = {
        "csrf_token": owner,
        "windows": "mon-fri 10:00-20:00\r\n\r\nsat,sun 11:00-18:00\r\n",
        "frequency_cap": "3",
        "disclosure": "[sponsored]",
        "footer-en": "Reply STOP to opt out",
        "footer-it": "",
        "footer-*": "STOP to opt out",
        "currency": "eur",
        "prices": "US 0.0079\nIT=0.05\n* 0.1",
    }
    windows = await refused(
        client, "/settings/broadcasts", {**rules, "windows": "mon-fri 10:00-25:00"}, "broadcasts-windows"
    )
    assert "'25:00' is not a time of day" in windows
    message = await refused(client, "/settings/broadcasts", {**rules, "prices": "US abc"}, "broadcasts-prices")
    assert message == "US: Input should be a valid number, unable to parse string as a number."
    message = await refused(client, "/settings/broadcasts", {**rules, "prices": "US 500"}, "broadcasts-prices")
    assert "between 0 and 100" in message
    message = await refused(client, "/settings/broadcasts", {**rules, "prices": "USA 1"}, "broadcasts-prices")
    assert "two-letter country code" in message
    message = await refused(
        client, "/settings/broadcasts", {**rules, "frequency_cap": "101"}, "broadcasts-frequency_cap"
    )
    assert "less than or equal to 100" in message
    for cap in ("0", "three"):
        assert "Input should be" in await refused(
            client, "/settings/broadcasts", {**rules, "frequency_cap": cap}, "broadcasts-frequency_cap"
        )
    # Everything wrong is told at once, a price line that cannot be read included.
    several = {**rules, "windows": "mon-fri 10:00-25:00", "currency": "euro", "prices": "US\n* 0.1"}
    assert "Line 1: write a country code and a price" in await refused(
        client, "/settings/broadcasts", several, "broadcasts-prices"
    )
    page = Html((await client.post("/settings/broadcasts", data=several)).text)
    assert "'25:00' is not a time of day" in page.text("broadcasts-windows-error")
    summary = re.findall(
        r'<a href="#(broadcasts-[a-z_]+)-error">', (await client.post("/settings/broadcasts", data=several)).text
    )
    assert summary == ["broadcasts-windows", "broadcasts-currency", "broadcasts-prices"]
    assert "at most 3 characters" in page.text("broadcasts-currency-error")
    kept = Html((await client.post("/settings/broadcasts", data={**rules, "prices": "US 500"})).text)
    assert kept.value("disclosure") == "[sponsored]" and kept.value("footer-en") == "Reply STOP to opt out"
    assert config(runtime).broadcasts.disclosure == "#ad"  # nothing was saved

    page = await saved(client, "/settings/broadcasts", rules, "broadcasts")
    assert "Broadcast rules saved." in page.all_text
    saved_rules = config(runtime).broadcasts
    assert saved_rules.windows == ["mon-fri 10:00-20:00", "sat,sun 11:00-18:00"]
    assert (saved_rules.frequency_cap, saved_rules.disclosure, saved_rules.currency) == (3, "[sponsored]", "EUR")
    assert saved_rules.footer == {"en": "Reply STOP to opt out", "*": "STOP to opt out"}
    assert saved_rules.prices == {"US": 0.0079, "IT": 0.05, "*": 0.1}
    assert page.value("frequency_cap") == "3" and page.value("footer-*") == "STOP to opt out"
    assert "US 0.0079\nIT 0.05\n* 0.1</textarea>" in (await client.get("/settings")).text
    assert audit_actions(runtime) == [("broadcasts.rules", "broadcast rules")]


async def test_sign_up_form_fields(client: httpx.AsyncClient, runtime: Runtime, owner: str) -> None:
    team = {
        "csrf_token": owner,
        "name": "team",
        "type": "choice",
        "choices": "red, blue",
        "label": "Team",
        "required": "on",
    }
    assert "cannot be a field name" in await refused(
        client, "/settings/form-fields", {**team, "name": "Bad Name"}, "form-name"
    )
    assert "needs a type" in await refused(client, "/settings/form-fields", {**team, "type": ""}, "form-name")
    assert "choices" in await refused(client, "/settings/form-fields", {**team, "choices": ""}, "form-choices")

    page = await saved(client, "/settings/form-fields", team, "form")
    assert "Team team · choice (custom) · required Choices: red, blue" in page.all_text
    fields = config(runtime).form.fields
    assert (fields[-1].name, fields[-1].required, fields[-1].labels) == ("team", True, {"en": "Team"})
    # A built-in field: its type comes with it, whatever the menu said.
    await saved(client, "/settings/form-fields", {"csrf_token": owner, "name": "email", "type": "number"}, "form")
    assert config(runtime).form.fields[-1].name == "email"

    remove = {"csrf_token": owner, "remove": "team"}
    page = await saved(client, "/settings/form-fields/remove", remove, "form")
    assert "team" not in [f.name for f in config(runtime).form.fields]
    assert "no field 'team'" in await refused(client, "/settings/form-fields/remove", remove, "form-list")
    assert audit_actions(runtime) == [
        ("form.field_add", "team"),
        ("form.field_add", "email"),
        ("form.field_remove", "team"),
    ]


async def test_saved_replies(client: httpx.AsyncClient, runtime: Runtime, owner: str) -> None:
    reply = {
        "csrf_token": owner,
        "name": "tickets",
        "text": "Tickets go on sale Friday at 10:00: https://example.org/t",
    }
    assert "1 to 40 characters" in await refused(
        client, "/settings/replies", {**reply, "name": "x" * 41}, "replies-name"
    )
    assert "1 to 40 characters" in await refused(client, "/settings/replies", {**reply, "name": "a\tb"}, "replies-name")
    assert "1 to 1600 characters" in await refused(
        client, "/settings/replies", {**reply, "text": "y" * 1601}, "replies-text"
    )
    both = await client.post("/settings/replies", data={**reply, "name": "", "text": " "})
    assert both.status_code == 400 and {"replies-name-error", "replies-text-error"} <= set(Html(both.text).by_id)
    kept = await client.post("/settings/replies", data={**reply, "name": "z" * 41})  # what was typed is kept
    assert "Tickets go on sale Friday" in Html(kept.text).text("replies-text") and config(runtime).saved_replies == {}

    page = await saved(client, "/settings/replies", reply, "replies")
    assert "Saved replies saved." in page.all_text and "Tickets go on sale Friday" in page.all_text
    await saved(client, "/settings/replies", {**reply, "text": "Sold out, sorry!"}, "replies")
    await saved(client, "/settings/replies", {**reply, "name": "Hours", "text": "Open 9 to 5."}, "replies")
    assert config(runtime).saved_replies == {"tickets": "Sold out, sorry!", "Hours": "Open 9 to 5."}

    remove = {"csrf_token": owner, "remove": "tickets"}
    await saved(client, "/settings/replies/remove", remove, "replies")
    assert config(runtime).saved_replies == {"Hours": "Open 9 to 5."}
    assert "no saved reply 'tickets'" in await refused(client, "/settings/replies/remove", remove, "replies-list")
    page = await saved(client, "/settings/replies/remove", {**remove, "remove": "Hours"}, "replies")
    assert "No saved replies yet." in page.all_text

    # At most 100: the 101st is refused next to the name.
    with runtime.db.write_engine.begin() as conn:
        update_config(conn, get_community(conn).id, saved_replies={f"r{i}": "text" for i in range(100)})
    assert "At most 100 saved replies" in await refused(client, "/settings/replies", reply, "replies-name")
    assert audit_actions(runtime) == [
        ("saved_reply.add", "tickets"),
        ("saved_reply.replace", "tickets"),
        ("saved_reply.add", "Hours"),
        ("saved_reply.remove", "tickets"),
        ("saved_reply.remove", "Hours"),
    ]
