"""The community's contact card: vCard 3.0 and 4.0, and the /card/<slug>.vcf route."""

from __future__ import annotations

import httpx
import pytest
import vobject

from openline.communities import get_community
from openline.engine.config import update_config
from openline.runtime import Runtime
from openline.senders import add_sender
from openline.web.card import vcard

NUMBERS = ["+12025550100", "+393471234567", "12345"]


def test_a_3_0_card_parses_back_with_its_name_and_numbers() -> None:
    text = vcard("Ashton; the band, live", NUMBERS, slug="ashton", version=3)
    card = vobject.readOne(text)
    assert card.version.value == "3.0"
    assert card.fn.value == "Ashton; the band, live"
    assert card.org.value == ["Ashton; the band, live"]
    assert [t.value for t in card.tel_list] == NUMBERS
    assert card.tel_list[0].params["TYPE"] == ["CELL", "MSG"]
    assert card.uid.value == vobject.readOne(vcard("Other name", [], slug="ashton")).uid.value  # stable per community
    assert text.startswith("BEGIN:VCARD\r\nVERSION:3.0\r\n") and text.endswith("END:VCARD\r\n")


def _unfold(text: str) -> list[str]:
    return text.replace("\r\n ", "").split("\r\n")[:-1]


def test_a_4_0_card_follows_rfc_6350() -> None:
    name = "Ashton, Live; Tour\\2026 — ग्रीष्मकालीन दौरा " * 3  # long, with characters to escape and Devanagari
    text = vcard(name, NUMBERS, slug="ashton", version=4)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    physical = text.split("\r\n")[:-1]
    assert all(len(line.encode()) <= 75 for line in physical)  # folded at 75 octets
    text.encode().decode("utf-8")  # never folded inside a character
    lines = _unfold(text)
    assert lines[:3] == ["BEGIN:VCARD", "VERSION:4.0", "KIND:org"] and lines[-1] == "END:VCARD"
    escaped = name.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
    assert f"FN:{escaped}" in lines
    assert 'TEL;VALUE=uri;TYPE="cell,text":tel:+12025550100' in lines
    assert "TEL;VALUE=text;TYPE=text:12345" in lines  # a short code is not a global tel: URI
    assert any(line.startswith("UID:urn:uuid:") for line in lines)
    # A generic parser reads it back whole.
    parsed = vobject.readOne(text)
    assert parsed.fn.value == name


@pytest.mark.usefixtures("runtime")
async def test_the_route_serves_both_versions_with_the_communitys_numbers(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    with runtime.db.write_engine.begin() as conn:
        community = get_community(conn)
        update_config(conn, community.id, programme="Ashton")
        add_sender(conn, community.id, "12345", provider="twilio", mps=1.0)
        add_sender(conn, community.id, "ASHTON", provider="vonage", mps=1.0)  # alphanumeric: no number to save
    response = await client.get("/card/default.vcf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/vcard; charset=utf-8"
    assert 'filename="default.vcf"' in response.headers["content-disposition"]
    card = vobject.readOne(response.text)
    assert card.fn.value == "Ashton"
    # The sandbox number reaches nobody: once there is a real sender it is left out.
    assert [t.value for t in card.tel_list] == ["12345"]

    four = await client.get("/card/default.vcf", params={"version": 4})
    assert four.status_code == 200 and "VERSION:4.0\r\n" in four.text and "FN:Ashton\r\n" in four.text

    assert (await client.get("/card/default.vcf", params={"version": 5})).status_code == 422
    assert (await client.get("/card/nobody.vcf")).status_code == 404
