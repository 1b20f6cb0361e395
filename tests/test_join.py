"""The sign-up form at /join/<token>: languages, accessibility, validation, consent evidence, the
confirmation text with the contact card, single-use and expiring links, progressive profiling."""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.broadcasts import create_broadcast, get_broadcast, start
from openline.communities import get_community
from openline.db import schema
from openline.engine.config import FormField, load_config
from openline.engine.texts import SystemText, render
from openline.forms import DEFAULT_DISCLOSURE, DEFAULT_LABELS, add_form_field, remove_form_field, set_disclosure
from openline.links import (
    ExpiredLink,
    InvalidLink,
    read_member_link,
    sign_form_nonce,
    sign_member_link,
    sign_profile_link,
    verify_form_nonce,
    verify_member_link,
    verify_profile_link,
)
from openline.runtime import Runtime
from openline.senders import add_sender
from openline.states import BroadcastState, MemberState
from openline.tracking import find_urls
from openline.web.i18n import CATALOGUE, LANGUAGE_NAMES, Translator, parse_accept_language
from openline.worker import run_broadcasts

ITALIAN = "+393471234567"
_VOID = {"input", "meta", "br", "link", "img", "hr"}


class Html(HTMLParser):
    """The parts of a page the tests look at: elements by id, labels by target, inputs, text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, Any]] = {}
        self.labels: dict[str, dict[str, Any]] = {}
        self.inputs: list[dict[str, str]] = []
        self.root: dict[str, Any] = {"tag": "", "attrs": {}, "text": ""}
        self._stack: list[dict[str, Any]] = [self.root]
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        element = {"tag": tag, "attrs": values, "text": ""}
        if "id" in values:
            self.by_id[values["id"]] = element
        if tag == "label" and "for" in values:
            self.labels[values["for"]] = element
        if tag in ("input", "select"):
            self.inputs.append(values)
        if tag not in _VOID:
            self._stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        while len(self._stack) > 1:
            if self._stack.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._stack:
            element["text"] += data

    def text(self, element_id: str) -> str:
        return " ".join(self.by_id[element_id]["text"].split())

    @property
    def all_text(self) -> str:
        return " ".join(self.root["text"].split())

    def hidden(self) -> dict[str, str]:
        return {i["name"]: i.get("value", "") for i in self.inputs if i.get("type") == "hidden"}

    def field_names(self) -> list[str]:
        return [i["name"] for i in self.inputs if i.get("type") != "hidden"]

    def value(self, name: str) -> str:
        return next(i.get("value", "") for i in self.inputs if i.get("name") == name)


def add_member(runtime: Runtime, phone: str = ITALIAN, **values: Any) -> int:
    """A member as the engine leaves them after YES: subscribed, the number's country, a language."""
    row = {"state": MemberState.subscribed, "language": "it", "country": "IT", **values}
    with runtime.db.write_engine.begin() as conn:
        community = get_community(conn)
        return int(
            conn.execute(
                sa.insert(schema.members)
                .values(community_id=community.id, phone=phone, time_zones=[], custom={}, **row)
                .returning(schema.members.c.id)
            ).scalar_one()
        )


def join_link(runtime: Runtime, member_id: int, *, age: timedelta = timedelta(minutes=10)) -> str:
    """A join link sent ``age`` ago."""
    return sign_member_link(runtime.key_for("member-link"), member_id, schema.utcnow() - age)


def member(runtime: Runtime, member_id: int) -> Any:
    with runtime.db.read_engine.connect() as conn:
        return conn.execute(sa.select(schema.members).where(schema.members.c.id == member_id)).one_or_none()


def rows(runtime: Runtime, table: sa.Table, *where: sa.ColumnElement[bool]) -> list[Any]:
    with runtime.db.read_engine.connect() as conn:
        return list(conn.execute(sa.select(table).where(*where).order_by(*table.primary_key.columns)).all())


async def send_form(
    client: httpx.AsyncClient, token: str, values: dict[str, str], headers: dict[str, str] | None = None
) -> httpx.Response:
    """Open the form as a person would, then send it with ``values`` typed in."""
    page = await client.get(f"/join/{token}", headers=headers)
    assert page.status_code == 200, page.text
    return await client.post(f"/join/{token}", data={**Html(page.text).hidden(), **values}, headers=headers)


GIULIA = {"first_name": "Giulia", "city": "Milano", "birthday": "1990-05-31", "language": "it"}


# -- languages and accessibility ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "heading", "button"),
    [
        ("en", "Tell My community about you", "Send"),
        ("it", "Racconta qualcosa di te a My community", "Invia"),
        ("es", "Cuéntale a My community sobre ti", "Enviar"),
        ("hi", "My community को अपने बारे में बताएँ", "भेजें"),
    ],
)
async def test_the_form_is_drawn_in_the_members_language(
    client: httpx.AsyncClient, runtime: Runtime, language: str, heading: str, button: str
) -> None:
    token = join_link(runtime, add_member(runtime, language=language))
    response = await client.get(f"/join/{token}")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "<script" not in response.text and "http://" not in response.text.replace("http://www.w3", "")
    assert f'<html lang="{language}" dir="ltr">' in response.text
    assert '"Noto Sans Devanagari"' in response.text
    page = Html(response.text)
    assert heading in page.all_text and button in page.all_text
    assert page.field_names() == ["first_name", "city", "birthday", "language"]
    for name in page.field_names():
        # Every field has a label tied to it, in the page's language.
        assert page.labels[f"f-{name}"]["text"].startswith(DEFAULT_LABELS[language][name])
    assert page.by_id["f-first_name"]["attrs"].get("required") == ""
    assert page.by_id["f-birthday"]["attrs"]["type"] == "date"
    assert page.by_id["f-first_name"]["attrs"]["autocomplete"] == "given-name"
    assert page.text("disclosure") == DEFAULT_DISCLOSURE[language].format(programme="My community")
    # The language switcher links the same page in the community's other languages.
    for other in ("en", "es", "it", "hi"):
        if other != language:
            assert f'href="/join/{token}?lang={other}"' in response.text


async def test_the_language_is_the_members_else_the_browsers_else_the_communitys(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    token = join_link(runtime, add_member(runtime, language=None))
    assert '<html lang="en"' in (await client.get(f"/join/{token}")).text  # the community's default
    spanish = await client.get(f"/join/{token}", headers={"Accept-Language": "fr-FR,es;q=0.8,en;q=0.5"})
    assert '<html lang="es"' in spanish.text
    switched = await client.get(f"/join/{token}?lang=hi", headers={"Accept-Language": "es"})
    assert '<html lang="hi"' in switched.text
    # A language the community does not use falls through.
    assert '<html lang="en"' in (await client.get(f"/join/{token}?lang=de")).text
    # The member's own language wins over the browser's.
    token = join_link(runtime, add_member(runtime, "+12025550143", language="it", country="US"))
    assert '<html lang="it"' in (await client.get(f"/join/{token}", headers={"Accept-Language": "en"})).text


async def test_mistakes_are_shown_next_to_their_fields_and_nothing_typed_is_lost(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    member_id = add_member(runtime)
    token = join_link(runtime, member_id)
    response = await send_form(client, token, {"first_name": "", "city": "Milano", "birthday": "2999-01-01"})
    assert response.status_code == 422
    page = Html(response.text)
    assert page.value("city") == "Milano" and page.value("birthday") == "2999-01-01"
    assert page.text("f-first_name-error") == "Errore: Compila questo campo."
    assert page.text("f-birthday-error") == "Errore: Questa data è nel futuro."
    for name in ("first_name", "birthday"):
        attrs = page.by_id[f"f-{name}"]["attrs"]
        assert f"f-{name}-error" in attrs["aria-describedby"].split()
        assert attrs["aria-invalid"] == "true"
    assert "aria-invalid" not in page.by_id["f-city"]["attrs"]
    # A summary at the top links each mistake to its field.
    assert 'href="#f-first_name"' in response.text and 'href="#f-birthday"' in response.text
    assert "<title>Errore:" in response.text
    assert member(runtime, member_id).form_submitted_at is None
    assert rows(runtime, schema.consent_events) == []

    response = await client.post(f"/join/{token}", data={**page.hidden(), **GIULIA})
    assert response.status_code == 303


# -- a successful submission ---------------------------------------------------------------------------


async def test_a_submission_saves_the_member_records_consent_and_sends_the_card(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    member_id = add_member(runtime, "+12085551234", language=None, country="US")
    with runtime.db.write_engine.begin() as conn:
        add_form_field(conn, get_community(conn).id, FormField(name="postcode"))
        add_form_field(conn, get_community(conn).id, FormField(name="team", type="choice", choices=["Inter", "Milan"]))
    token = join_link(runtime, member_id)
    link = read_member_link(runtime.key_for("member-link"), token)
    headers = {"User-Agent": "Mozilla/5.0 (Linux; Android 14) Test", "Accept-Language": "es"}
    page = Html((await client.get(f"/join/{token}", headers=headers)).text)
    shown = page.text("disclosure")
    values = {**GIULIA, "language": "es", "postcode": "10001", "team": "Inter", "country": "ignored: not asked"}
    response = await client.post(f"/join/{token}", data={**page.hidden(), **values}, headers=headers)
    assert response.status_code == 303
    assert response.headers["location"] == f"/join/{token}/thanks?lang=es"

    saved = member(runtime, member_id)
    assert (saved.first_name, saved.city, saved.postcode, saved.language) == ("Giulia", "Milano", "10001", "es")
    assert str(saved.birthday) == "1990-05-31" and saved.custom == {"team": "Inter"}
    assert saved.country == "US"  # the form did not ask it
    assert saved.region == "US-NY"  # the ZIP code's state, not the Idaho number's
    # The ZIP code settles what the Idaho number could not.
    assert (saved.time_zone, saved.time_zones) == ("America/New_York", ["America/New_York"])
    assert saved.form_submitted_at is not None and saved.state == MemberState.subscribed

    [event] = rows(runtime, schema.consent_events, schema.consent_events.c.member_id == member_id)
    assert (event.source, event.previous_state, event.new_state) == ("form", "subscribed", "subscribed")
    evidence = event.evidence
    assert evidence["disclosure"] == shown == DEFAULT_DISCLOSURE["es"].format(programme="My community")
    assert evidence["ip"] == "127.0.0.1"
    assert evidence["user_agent"] == "Mozilla/5.0 (Linux; Android 14) Test"
    assert evidence["fields"] == ["birthday", "city", "first_name", "language", "postcode", "team"]
    assert evidence["link_expires_at"] == link.expires_at.isoformat()
    assert evidence["language"] == "es" and evidence["submitted_at"] and evidence["form_rendered_at"]

    [text] = rows(runtime, schema.messages, schema.messages.c.member_id == member_id)
    card = "https://sms.example.org/card/default.vcf"
    assert (text.direction, text.kind, text.state) == ("outbound", "system", "queued")
    assert text.media == [{"url": card, "content_type": None}]  # the sandbox sends MMS
    assert text.body.startswith("My community: gracias") and card in text.body

    thanks = await client.get(response.headers["location"])
    assert thanks.status_code == 200
    assert "¡Gracias!" in thanks.text and 'href="/card/default.vcf"' in thanks.text and "+1 202-555-0100" in thanks.text


async def test_a_pending_member_is_subscribed_by_the_form(client: httpx.AsyncClient, runtime: Runtime) -> None:
    member_id = add_member(runtime, state=MemberState.pending)
    assert (await send_form(client, join_link(runtime, member_id), GIULIA)).status_code == 303
    saved = member(runtime, member_id)
    assert saved.state == MemberState.subscribed and saved.joined_at is not None
    [event] = rows(runtime, schema.consent_events)
    assert (event.previous_state, event.new_state, event.source) == ("pending", "subscribed", "form")


def last_wrote_to(runtime: Runtime, member_id: int, address: str, provider: str) -> None:
    """A sender of ``provider`` the member last wrote to: the confirmation goes out from it."""
    with runtime.db.write_engine.begin() as conn:
        community = get_community(conn)
        sender = add_sender(conn, community.id, address, provider=provider, mps=1.0)
        conn.execute(
            sa.insert(schema.conversations).values(
                community_id=community.id, member_id=member_id, sender_id=sender.id, unread=0, archived=False
            )
        )


async def test_without_mms_the_card_is_a_link_in_the_text(client: httpx.AsyncClient, runtime: Runtime) -> None:
    member_id = add_member(runtime)
    last_wrote_to(runtime, member_id, "+14155550111", "vonage")
    assert (await send_form(client, join_link(runtime, member_id), GIULIA)).status_code == 303
    [text] = rows(runtime, schema.messages)
    assert text.media is None and text.provider == "vonage"
    assert "https://sms.example.org/card/default.vcf" in text.body and text.body.startswith("My community: grazie")


@pytest.mark.parametrize(("phone", "as_media"), [("+16505550123", True), ("+393471234567", False)])
async def test_the_card_goes_as_mms_only_where_carriers_carry_it(
    client: httpx.AsyncClient, runtime: Runtime, phone: str, as_media: bool
) -> None:
    member_id = add_member(runtime, phone=phone)
    last_wrote_to(runtime, member_id, "+14155550112", "twilio")
    assert (await send_form(client, join_link(runtime, member_id), GIULIA)).status_code == 303
    [text] = rows(runtime, schema.messages)
    card = "https://sms.example.org/card/default.vcf"
    # Carriers carry no MMS to Italy; the text with the card's link always arrives.
    assert text.provider == "twilio" and card in text.body
    assert text.media == ([{"url": card, "content_type": None}] if as_media else None)


async def test_an_owners_disclosure_is_the_one_shown_and_recorded(client: httpx.AsyncClient, runtime: Runtime) -> None:
    with runtime.db.write_engine.begin() as conn:
        set_disclosure(conn, get_community(conn).id, "it", "Messaggi da {programme}, circa 4 al mese. STOP per uscire.")
    member_id = add_member(runtime)
    assert (await send_form(client, join_link(runtime, member_id), GIULIA)).status_code == 303
    [event] = rows(runtime, schema.consent_events)
    assert event.evidence["disclosure"] == "Messaggi da My community, circa 4 al mese. STOP per uscire."


async def test_a_disclosure_changed_while_the_page_was_open_is_shown_again(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    member_id = add_member(runtime)
    token = join_link(runtime, member_id)
    hidden = Html((await client.get(f"/join/{token}")).text).hidden()
    with runtime.db.write_engine.begin() as conn:
        set_disclosure(conn, get_community(conn).id, "it", "Nuovo testo di {programme}.")
    response = await client.post(f"/join/{token}", data={**hidden, **GIULIA})
    assert response.status_code == 409
    page = Html(response.text)
    assert page.text("disclosure") == "Nuovo testo di My community." and page.value("city") == "Milano"
    assert rows(runtime, schema.consent_events) == []
    assert (await client.post(f"/join/{token}", data={**page.hidden(), **GIULIA})).status_code == 303
    assert rows(runtime, schema.consent_events)[0].evidence["disclosure"] == "Nuovo testo di My community."


@pytest.mark.parametrize("nonce", ["", "forged", "1.1.x.y"])
async def test_a_post_not_from_a_drawn_form_saves_nothing(
    client: httpx.AsyncClient, runtime: Runtime, nonce: str
) -> None:
    member_id = add_member(runtime)
    token = join_link(runtime, member_id)
    hidden = Html((await client.get(f"/join/{token}")).text).hidden()
    response = await client.post(f"/join/{token}", data={**hidden, "nonce": nonce, **GIULIA})
    assert response.status_code == 409
    assert Html(response.text).value("first_name") == "Giulia"
    assert member(runtime, member_id).form_submitted_at is None
    # A form drawn for another member's link does not pass either.
    other = join_link(runtime, add_member(runtime, "+393471234568"))
    hidden_other = Html((await client.get(f"/join/{other}")).text).hidden()
    assert (await client.post(f"/join/{token}", data={**hidden_other, **GIULIA})).status_code == 409


# -- links: single use, expiry, opted out --------------------------------------------------------------


async def test_a_used_link_says_how_to_get_a_new_one(client: httpx.AsyncClient, runtime: Runtime) -> None:
    member_id = add_member(runtime)
    token = join_link(runtime, member_id)
    page = Html((await client.get(f"/join/{token}")).text)
    assert (await client.post(f"/join/{token}", data={**page.hidden(), **GIULIA})).status_code == 303
    # The same form sent again (a double click) answers the same and records nothing more.
    again = await client.post(f"/join/{token}", data={**page.hidden(), **GIULIA})
    assert again.status_code == 303 and again.headers["location"].startswith(f"/join/{token}/thanks")
    assert len(rows(runtime, schema.consent_events)) == 1 and len(rows(runtime, schema.messages)) == 1

    used = await client.get(f"/join/{token}")
    assert used.status_code == 410
    assert "Questo link è già stato usato" in used.text and "scrivi PROFILO a +1 202-555-0100" in used.text
    changed = await client.post(f"/join/{token}", data={**page.hidden(), **GIULIA, "first_name": "Other"})
    assert changed.status_code == 410 and member(runtime, member_id).first_name == "Giulia"


async def test_a_link_used_within_its_first_second_is_used(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """Issue times are known to the second (rounded up): a form sent at once must still use the link up."""
    member_id = add_member(runtime)
    token = join_link(runtime, member_id, age=timedelta(0))
    assert (await send_form(client, token, GIULIA)).status_code == 303
    assert (await client.get(f"/join/{token}/thanks")).status_code == 200
    assert (await client.get(f"/join/{token}")).status_code == 410
    # A new link sent a moment later is a fresh one.
    later = sign_member_link(runtime.key_for("member-link"), member_id, schema.utcnow() + timedelta(seconds=1))
    assert (await client.get(f"/join/{later}")).status_code == 200


async def test_an_expired_link_says_how_to_get_a_new_one(client: httpx.AsyncClient, runtime: Runtime) -> None:
    subscribed = join_link(runtime, add_member(runtime, language="en"), age=timedelta(days=31))
    response = await client.get(f"/join/{subscribed}")
    assert response.status_code == 410
    assert "This link has expired" in response.text and "text PROFILE to +1 202-555-0100" in response.text
    pending = add_member(runtime, "+393471234568", state=MemberState.pending, language="es")
    response = await client.get(f"/join/{join_link(runtime, pending, age=timedelta(days=31))}")
    assert response.status_code == 410 and "Escribe SI a +1 202-555-0100" in response.text
    assert (await client.post(f"/join/{subscribed}", data=GIULIA)).status_code == 410


async def test_links_that_name_nobody(client: httpx.AsyncClient, runtime: Runtime) -> None:
    token = join_link(runtime, add_member(runtime))
    for bad in ("nonsense", token[:-2], token.replace(".", "0.", 1), join_link(runtime, 999)):
        response = await client.get(f"/join/{bad}", headers={"Accept-Language": "it"})
        assert response.status_code == 404 and "Link non trovato" in response.text
        assert (await client.post(f"/join/{bad}", data=GIULIA)).status_code == 404
    profile_token = sign_profile_link(runtime.key_for("member-profile"), 1, schema.utcnow())
    assert (await client.get(f"/join/{profile_token}")).status_code == 404  # another purpose's key


async def test_an_opted_out_member_is_told_to_text_start(client: httpx.AsyncClient, runtime: Runtime) -> None:
    member_id = add_member(runtime, state=MemberState.unsubscribed, language="en")
    token = join_link(runtime, member_id)
    response = await client.get(f"/join/{token}")
    assert response.status_code == 403 and "text START to +1 202-555-0100" in response.text
    assert (await client.post(f"/join/{token}", data=GIULIA)).status_code == 403
    assert member(runtime, member_id).first_name is None and rows(runtime, schema.messages) == []
    blocked = join_link(runtime, add_member(runtime, "+393471234568", state=MemberState.blocked))
    assert (await client.get(f"/join/{blocked}")).status_code == 404


async def test_the_thanks_page_needs_a_sent_form(client: httpx.AsyncClient, runtime: Runtime) -> None:
    token = join_link(runtime, add_member(runtime))
    response = await client.get(f"/join/{token}/thanks")
    assert response.status_code == 303 and response.headers["location"] == f"/join/{token}"


# -- progressive profiling -------------------------------------------------------------------------------


async def test_a_returning_member_is_asked_only_what_is_new(client: httpx.AsyncClient, runtime: Runtime) -> None:
    member_id = add_member(runtime)
    assert (await send_form(client, join_link(runtime, member_id), {**GIULIA, "city": ""})).status_code == 303
    with runtime.db.write_engine.begin() as conn:
        add_form_field(conn, get_community(conn).id, FormField(name="email", required=True))
    # A new link (the member texted again since): only what is missing or new.
    fresh = sign_member_link(runtime.key_for("member-link"), member_id, schema.utcnow())
    page = Html((await client.get(f"/join/{fresh}")).text)
    assert page.field_names() == ["city", "email"]
    assert "non ti chiediamo di nuovo" in page.all_text
    response = await client.post(f"/join/{fresh}", data={**page.hidden(), "email": "giulia@example.it"})
    assert response.status_code == 303
    saved = member(runtime, member_id)
    assert (saved.first_name, saved.email, saved.city) == ("Giulia", "giulia@example.it", None)
    assert [e.evidence["fields"] for e in rows(runtime, schema.consent_events)] == [
        ["birthday", "first_name", "language"],
        ["email"],
    ]
    # Nothing left to ask: the page says so (and how to change what was told).
    with runtime.db.write_engine.begin() as conn:
        conn.execute(sa.update(schema.members).values(city="Milano"))
    last = sign_member_link(runtime.key_for("member-link"), member_id, schema.utcnow() + timedelta(seconds=1))
    page = Html((await client.get(f"/join/{last}")).text)
    assert page.field_names() == [] and "Abbiamo già i tuoi dati" in page.all_text


# -- never a server error -----------------------------------------------------------------------------

# Any text a browser can send (lone surrogates cannot be encoded), and some that broke forms elsewhere.
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=130) | st.sampled_from(
    ["Gi\x00ulia", "line\nbreak", "\u202eevil", "😀" * 60, "' OR 1=1 --", "<script>alert(1)</script>", "\t"]
)


def _mostly(*valid: str) -> st.SearchStrategy[str]:
    """Answers that are usually valid (so whole forms get saved) and sometimes anything at all."""
    return st.one_of(*[st.sampled_from(valid)] * 4, _TEXT)


_FIELD_VALUES = {
    "last_name": _TEXT,
    "city": _mostly("Milano", "New York", "Boise", "") | _TEXT,
    "postcode": _mostly("20121", "00184", "", "SW1A 1AA"),
    "country": _mostly("IT", "Italia", "", "US"),
    "birthday": _mostly("1990-05-31", "", "2999-01-01") | st.dates().map(str),
    "email": _mostly("giulia@example.it", "") | st.emails(),
    "language": _mostly("it", "en", "", "xx"),
    "shirt": _mostly("S", "M", ""),
    "tickets": _mostly("2", "2,5", "") | st.integers().map(str) | st.floats().map(str),
    "first_show": _mostly("2026-12-01", "") | st.dates().map(str),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.fixed_dictionaries({"first_name": st.one_of(_TEXT, st.just("Giulia"))}, optional=_FIELD_VALUES),
    extra=st.dictionaries(_TEXT.filter(bool), _TEXT, max_size=3),
    lang=st.sampled_from([None] * 6 + ["it", "", "zz"]),
    mangle_nonce=st.sampled_from([False] * 6 + [True]),
)
async def test_random_answers_never_break_the_form(
    client: httpx.AsyncClient,
    runtime: Runtime,
    values: dict[str, str],
    extra: dict[str, str],
    lang: str | None,
    mangle_nonce: bool,
) -> None:
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        if len(load_config(conn, community_id).form.fields) == 4:
            for new in (
                FormField(name="last_name"),
                FormField(name="postcode"),
                FormField(name="country"),
                FormField(name="email"),
                FormField(name="shirt", type="choice", choices=["S", "M"]),
                FormField(name="tickets", type="number"),
                FormField(name="first_show", type="date"),
            ):
                add_form_field(conn, community_id, new)
        member_id = conn.execute(sa.select(schema.members.c.id).where(schema.members.c.phone == ITALIAN)).scalar()
        if member_id is None:
            member_id = conn.execute(
                sa.insert(schema.members)
                .values(community_id=community_id, phone=ITALIAN, state="pending", time_zones=[], custom={})
                .returning(schema.members.c.id)
            ).scalar_one()
        # Each example starts from a member who has told nothing yet.
        conn.execute(
            sa.update(schema.members)
            .where(schema.members.c.id == member_id)
            .values(**dict.fromkeys(("first_name", "last_name", "city", "postcode", "email", "birthday")), custom={})
            .values(form_submitted_at=None, language=None, country="IT")
        )
    token = join_link(runtime, member_id)
    hidden = Html((await client.get(f"/join/{token}")).text).hidden()
    if mangle_nonce:
        hidden["nonce"] = hidden["nonce"][::-1]
    if lang is not None:
        hidden["lang"] = lang
    response = await client.post(f"/join/{token}", data={**extra, **hidden, **values})
    assert response.status_code in (303, 409, 422), response.text
    if response.status_code == 303:
        assert member(runtime, member_id).form_submitted_at is not None


# -- the signed links themselves ------------------------------------------------------------------------


def test_profile_and_join_links_are_separate_and_expire() -> None:
    now = schema.utcnow()
    profile = sign_profile_link(b"profile key", 7, now)
    assert verify_profile_link(b"profile key", profile, now + timedelta(hours=23)) == 7
    with pytest.raises(ExpiredLink):
        verify_profile_link(b"profile key", profile, now + timedelta(hours=25))
    with pytest.raises(InvalidLink):  # a join link (another key) opens no profile
        verify_profile_link(b"profile key", sign_member_link(b"join key", 7, now), now)
    # The expiry is rounded up: the issue time read back is never before the real one.
    link = read_member_link(b"join key", sign_member_link(b"join key", 7, now))
    assert link.expires_at - timedelta(days=30) >= now and link.member_id == 7
    assert verify_member_link(b"join key", sign_member_link(b"join key", 7, now), now) == 7


def test_form_nonces_are_bound_to_member_page_and_age() -> None:
    now = schema.utcnow()
    nonce = sign_form_nonce(b"k", 7, "join|token", now)
    assert verify_form_nonce(b"k", nonce, 7, "join|token", now, timedelta(hours=1)).timestamp() == int(now.timestamp())
    for member_id, bound, key in ((8, "join|token", b"k"), (7, "join|other", b"k"), (7, "join|token", b"x")):
        with pytest.raises(InvalidLink):
            verify_form_nonce(key, nonce, member_id, bound, now, timedelta(hours=1))
    with pytest.raises(ExpiredLink):
        verify_form_nonce(b"k", nonce, 7, "join|token", now + timedelta(hours=2), timedelta(hours=1))
    assert re.fullmatch(r"7\.\d+\.[\w-]+\.[\w-]+", nonce)


def test_every_page_string_and_confirmation_exists_in_every_language() -> None:
    for language, strings in CATALOGUE.items():
        assert set(strings) == set(CATALOGUE["en"]), language
        assert language in LANGUAGE_NAMES
        text = render(SystemText.form_confirmation, language, {"programme": "Ashton", "link": "https://x/c.vcf"})
        assert text.startswith("Ashton:") and "https://x/c.vcf" in text and ("STOP" in text or "BAJA" in text)
    assert parse_accept_language("it-IT,it;q=0.9,en;q=0.8,*;q=0.1") == ["it", "it", "en"]
    assert parse_accept_language("en;q=0, es;q=0.5, hi") == ["hi", "es"]
    assert parse_accept_language("garbage;q=x") == []
    assert Translator("ar").direction == "rtl" and Translator("hi").direction == "ltr"


# -- asking members already subscribed: a broadcast's {{ form_link }} --------------------------------------


async def send_broadcast(runtime: Runtime, body: str) -> dict[int, str]:
    """Fan out a broadcast with ``body`` to every member through the worker's own loop; each text by member."""
    with runtime.db.write_engine.begin() as conn:
        message = {"variants": [{"body": body}]}
        draft = create_broadcast(conn, get_community(conn).id, "tell-us", message, segment={"and": []})
        broadcast = start(conn, draft, schema.utcnow())
    stop = asyncio.Event()
    worker = asyncio.create_task(run_broadcasts(runtime, stop))
    try:
        for _ in range(200):
            with runtime.db.read_engine.connect() as conn:
                if get_broadcast(conn, broadcast.id).state != BroadcastState.fanning_out:
                    break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await worker
    written = rows(runtime, schema.messages, schema.messages.c.broadcast_id == broadcast.id)
    return {row.member_id: row.body for row in written}


async def test_a_broadcasts_form_link_asks_each_member_only_what_they_have_not_told(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    told = {"first_name": "Giulia", "city": "Milano", "birthday": date(1990, 5, 31)}
    giulia = add_member(runtime, **told, form_submitted_at=schema.utcnow() - timedelta(days=3))
    marco = add_member(runtime, "+393471234568", first_name="Marco")
    with runtime.db.write_engine.begin() as conn:  # the owner adds a field...
        add_form_field(conn, get_community(conn).id, FormField(name="favourite_song", type="text"))
    # ...and asks everyone for it in one text.
    texts = await send_broadcast(runtime, "La tua canzone preferita? {{ form_link }}")
    links = {member_id: find_urls(body)[0][2] for member_id, body in texts.items()}
    assert set(links) == {giulia, marco} and len(set(links.values())) == 2
    paths = {member_id: link.removeprefix(runtime.base_url) for member_id, link in links.items()}
    for member_id, path in paths.items():
        assert path.startswith("/join/")
        assert read_member_link(runtime.key_for("member-link"), path.removeprefix("/join/")).member_id == member_id
    pages = {member_id: Html((await client.get(path)).text) for member_id, path in paths.items()}
    assert pages[giulia].field_names() == ["favourite_song"]
    # Marco joined by text: the form's fields he has not told, and the language openline guessed.
    assert pages[marco].field_names() == ["city", "birthday", "language", "favourite_song"]
    response = await client.post(paths[giulia], data={**pages[giulia].hidden(), "favourite_song": "Azzurro"})
    assert response.status_code == 303
    saved = member(runtime, giulia)
    assert (saved.custom, saved.first_name, saved.city) == ({"favourite_song": "Azzurro"}, "Giulia", "Milano")
    assert [e.evidence["fields"] for e in rows(runtime, schema.consent_events)] == [["favourite_song"]]


async def test_a_member_who_has_told_everything_is_told_so(client: httpx.AsyncClient, runtime: Runtime) -> None:
    told = {"first_name": "Giulia", "city": "Milano", "birthday": date(1990, 5, 31)}
    member_id = add_member(runtime, **told, form_submitted_at=schema.utcnow() - timedelta(days=3))
    token = join_link(runtime, member_id, age=timedelta(0))
    for query, said in [
        ("", ["Tutto a posto", "Abbiamo già i tuoi dati", "scrivi PROFILO a"]),  # in the member's language
        ("?lang=en", ["You're all set", "nothing more to tell My community", "text PROFILE to"]),
    ]:
        response = await client.get(f"/join/{token}{query}")
        page = Html(response.text)
        assert response.status_code == 200 and page.field_names() == [] and "nonce" not in page.hidden()
        assert all(words in page.all_text for words in said), page.all_text
    # A form drawn before the last field was told elsewhere has nothing left to send: nothing is recorded.
    response = await client.post(f"/join/{token}", data={"first_name": "Giulietta"})
    assert response.status_code == 200 and "Tutto a posto" in response.text
    assert rows(runtime, schema.consent_events) == [] and member(runtime, member_id).first_name == "Giulia"
    # A pending member still needs the form to consent, even with nothing left to tell.
    with runtime.db.write_engine.begin() as conn:
        remove_form_field(conn, get_community(conn).id, "language")
    pending = add_member(runtime, "+393471234568", state=MemberState.pending, **told)
    page = Html((await client.get(f"/join/{join_link(runtime, pending)}")).text)
    assert page.field_names() == [] and "nonce" in page.hidden() and "Invia il modulo per confermare" in page.all_text
