"""The member's own profile page: see, change, download and erase their data."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import sqlalchemy as sa

from openline.communities import get_community
from openline.db import schema
from openline.engine.config import FormField
from openline.erasure import is_suppressed
from openline.forms import add_form_field
from openline.links import sign_profile_link
from openline.runtime import Runtime

from .test_join import GIULIA, Html, add_member, join_link, member, rows, send_form


def profile_link(runtime: Runtime, member_id: int, *, age: timedelta = timedelta(minutes=1)) -> str:
    return sign_profile_link(runtime.key_for("member-profile"), member_id, schema.utcnow() - age)


async def joined_member(client: httpx.AsyncClient, runtime: Runtime) -> int:
    """Giulia, who sent the sign-up form (with a custom answer) and has a tag."""
    with runtime.db.write_engine.begin() as conn:
        add_form_field(conn, get_community(conn).id, FormField(name="team", type="text", labels={"it": "Squadra"}))
    member_id = add_member(runtime)
    response = await send_form(client, join_link(runtime, member_id), {**GIULIA, "team": "Inter"})
    assert response.status_code == 303
    with runtime.db.write_engine.begin() as conn:
        conn.execute(sa.insert(schema.member_tags).values(member_id=member_id, tag="milan-show"))
    return member_id


async def test_the_page_shows_everything_kept(client: httpx.AsyncClient, runtime: Runtime) -> None:
    member_id = await joined_member(client, runtime)
    token = profile_link(runtime, member_id)
    response = await client.get(f"/profile/{token}")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store" and response.headers["referrer-policy"] == "no-referrer"
    page = Html(response.text)
    text = page.all_text
    assert '<html lang="it"' in response.text and "I tuoi dati presso My community" in text
    for shown in ("+39 347 123 4567", "iscritto", "Giulia", "Milano", "1990-05-31", "Italiano", "Squadra", "Inter"):
        assert shown in text, shown
    assert "Italy (IT)" in text and "Europe/Rome" in text and "milan-show" in text
    assert "iscritto → iscritto" in text and "modulo di iscrizione" in text  # the consent history
    assert page.field_names() == ["first_name", "city", "birthday", "language", "team", "country"]
    assert page.value("first_name") == "Giulia" and page.value("team") == "Inter"
    assert f'href="/profile/{token}/data.json"' in response.text
    assert f'href="/profile/{token}/erase?lang=it"' in response.text


async def test_a_member_changes_their_details(client: httpx.AsyncClient, runtime: Runtime) -> None:
    member_id = await joined_member(client, runtime)
    token = profile_link(runtime, member_id)
    hidden = Html((await client.get(f"/profile/{token}")).text).hidden()
    changes = {**GIULIA, "city": "Boise", "country": "US", "birthday": "1990-13-01", "team": "", "language": "en"}
    response = await client.post(f"/profile/{token}", data={**hidden, **changes})
    assert response.status_code == 422
    page = Html(response.text)
    assert page.value("city") == "Boise" and page.value("birthday") == "1990-13-01"
    assert "f-birthday-error" in page.by_id and member(runtime, member_id).city == "Milano"

    response = await client.post(f"/profile/{token}", data={**page.hidden(), **changes, "birthday": "1991-01-02"})
    assert response.status_code == 303 and response.headers["location"] == f"/profile/{token}?saved=1&lang=en"
    saved = member(runtime, member_id)
    assert (saved.city, saved.country, str(saved.birthday), saved.language) == ("Boise", "US", "1991-01-02", "en")
    assert saved.custom == {}  # the optional answer was cleared
    assert (saved.time_zone, saved.time_zones) == ("America/Boise", ["America/Boise"])
    assert len(rows(runtime, schema.consent_events)) == 1  # a profile change is not a consent change
    shown = await client.get(response.headers["location"])
    assert "Your changes are saved." in shown.text and '<html lang="en"' in shown.text

    # The join link sent before is used up by the profile change too.
    assert (await client.get(f"/join/{join_link(runtime, member_id)}")).status_code == 410
    # A post not from the page saves nothing.
    forged = await client.post(f"/profile/{token}", data={**GIULIA, "nonce": "x", "first_name": "Mallory"})
    assert forged.status_code == 409 and member(runtime, member_id).first_name == "Giulia"


async def test_a_member_downloads_everything(client: httpx.AsyncClient, runtime: Runtime) -> None:
    member_id = await joined_member(client, runtime)
    response = await client.get(f"/profile/{profile_link(runtime, member_id)}/data.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert 'filename="default-my-data.json"' in response.headers["content-disposition"]
    record = json.loads(response.text)
    assert record["first_name"] == "Giulia" and record["custom"] == {"team": "Inter"}
    assert record["tags"] == ["milan-show"]
    assert record["consent"][0]["source"] == "form" and record["consent"][0]["evidence"]["ip"] == "127.0.0.1"
    assert "grazie" in record["messages"][0]["body"]


async def test_a_member_erases_everything(client: httpx.AsyncClient, runtime: Runtime) -> None:
    member_id = await joined_member(client, runtime)
    token = profile_link(runtime, member_id)
    confirm = await client.get(f"/profile/{token}/erase?lang=it")
    assert confirm.status_code == 200 and "Cancellare tutto?" in confirm.text
    page = Html(confirm.text)
    # Without the confirmation page's nonce nothing happens.
    assert (await client.post(f"/profile/{token}/erase", data={"nonce": "x"})).status_code == 409
    assert member(runtime, member_id) is not None

    response = await client.post(f"/profile/{token}/erase", data=page.hidden())
    assert response.status_code == 200
    text = Html(response.text).all_text
    assert "I tuoi dati sono stati cancellati" in text and "START a +1 202-555-0100" in text
    assert "Nome" in text and "Città" in text  # what was erased, in words
    assert member(runtime, member_id) is None
    assert rows(runtime, schema.consent_events) == [] and rows(runtime, schema.member_tags) == []
    [text_row] = rows(runtime, schema.messages)
    assert text_row.phone == "erased" and text_row.body == "" and text_row.state == "cancelled"
    with runtime.db.read_engine.connect() as conn:
        community_id = get_community(conn).id
        assert is_suppressed(conn, community_id, runtime.key_for("suppression"), "+393471234567")
    gone = await client.get(f"/profile/{token}")
    assert gone.status_code == 404 and "Nothing here" in gone.text


async def test_profile_links_expire_and_are_their_own(client: httpx.AsyncClient, runtime: Runtime) -> None:
    member_id = add_member(runtime, language="es")
    expired = await client.get(f"/profile/{profile_link(runtime, member_id, age=timedelta(hours=25))}")
    assert expired.status_code == 410
    assert "24 horas" in expired.text and "escribe PERFIL a +1 202-555-0100" in expired.text
    assert (
        await client.get(f"/profile/{profile_link(runtime, member_id, age=timedelta(hours=25))}/data.json")
    ).status_code == 410
    assert (await client.get(f"/profile/{join_link(runtime, member_id)}")).status_code == 404
    assert (await client.get("/profile/1.2.3/data.json")).status_code == 404
    assert (await client.post(f"/profile/{join_link(runtime, member_id)}/erase", data={})).status_code == 404
    assert member(runtime, member_id) is not None
