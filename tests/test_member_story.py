"""A newcomer's whole story with their own data: text in, join in Italian, get the card, ask for
their data with PROFILE, download it, erase it, and stay unanswered until they opt in again."""

from __future__ import annotations

import re

import httpx
import sqlalchemy as sa
import vobject

from openline.db import schema
from openline.runtime import Runtime

from .test_engine import IT, member, process, replies, send
from .test_join import Html

ITALIAN_BROWSER = {"Accept-Language": "it-IT,it;q=0.9"}


def path_of(text: str, kind: str) -> str:
    found = re.search(rf"https://sms\.example\.org(/{kind}/\S+)", text)
    assert found, text
    return found.group(1)


async def test_a_newcomer_joins_in_italian_then_takes_and_erases_their_data(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await send(runtime, IT, "Ciao! Ti seguo da sempre")
    await process(runtime)
    assert replies(runtime, IT)[0].startswith("Ciao, sono My community. Questo è un messaggio automatico")
    await send(runtime, IT, "Sì")
    await process(runtime)
    join = path_of(replies(runtime, IT)[-1], "join")

    # The form, in Italian; one mistake first, then right.
    form = await client.get(join, headers=ITALIAN_BROWSER)
    assert form.status_code == 200 and 'lang="it"' in form.text
    typed = {"first_name": "Giulia", "city": "Milano", "birthday": "31/02/1990", "language": "it"}
    wrong = await client.post(join, data={**Html(form.text).hidden(), **typed}, headers=ITALIAN_BROWSER)
    assert wrong.status_code == 422 and 'value="Giulia"' in wrong.text and 'value="Milano"' in wrong.text
    typed["birthday"] = "1990-05-31"
    sent = await client.post(join, data={**Html(wrong.text).hidden(), **typed}, headers=ITALIAN_BROWSER)
    assert sent.status_code == 303
    thanks = await client.get(sent.headers["location"], headers=ITALIAN_BROWSER)
    assert thanks.status_code == 200 and "Grazie" in thanks.text
    giulia = member(runtime, IT)
    assert (giulia["state"], giulia["first_name"], giulia["city"], giulia["time_zone"]) == (
        "subscribed",
        "Giulia",
        "Milano",
        "Europe/Rome",
    )

    # The confirmation carries the contact card, which is a valid vCard naming the programme.
    confirmation = replies(runtime, IT)[-1]
    card = path_of(confirmation, "card")
    with runtime.db.read_engine.connect() as conn:
        media = conn.execute(
            sa.select(schema.messages.c.media).where(schema.messages.c.body == confirmation)
        ).scalar_one()
    assert media == [{"url": f"https://sms.example.org{card}", "content_type": None}]
    vcard = vobject.readOne((await client.get(card)).text)
    assert vcard.fn.value == "My community" and vcard.tel.value

    # PROFILE: a private link to see, download and erase.
    await send(runtime, IT, "profilo")
    await process(runtime)
    profile = path_of(replies(runtime, IT)[-1], "profile")
    data = (await client.get(f"{profile}/data.json")).json()
    assert data["first_name"] == "Giulia" and data["phone"] == IT and data["city"] == "Milano"
    assert [event["new_state"] for event in data["consent"]][-1] == "subscribed"
    confirm = await client.get(f"{profile}/erase", headers=ITALIAN_BROWSER)
    erased = await client.post(f"{profile}/erase", data=Html(confirm.text).hidden(), headers=ITALIAN_BROWSER)
    assert erased.status_code == 200 and "cancellati" in erased.text
    with runtime.db.read_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.members)).scalar_one() == 0
        assert not conn.execute(sa.select(schema.messages.c.id).where(schema.messages.c.phone == IT)).all()

    # Erased: a later text is not answered; START begins again from the autotext (in English: their
    # language was erased too).
    await send(runtime, IT, "ci sei?")
    await process(runtime)
    assert replies(runtime, IT) == []
    await send(runtime, IT, "START")
    await process(runtime)
    assert len(replies(runtime, IT)) == 1 and replies(runtime, IT)[0].startswith("Hey, it's My community")
