"""The engine's part in members' own data: PROFILE links, join dates, where a number is, erased numbers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from openline.communities import get_community
from openline.db import schema
from openline.erasure import erase_member, is_suppressed
from openline.links import verify_member_link
from openline.outbox import OptedOut, queue_text
from openline.runtime import Runtime

from .test_engine import IT, US, member, process, replies, send


async def test_profile_answers_with_a_private_link_in_the_members_language(runtime: Runtime) -> None:
    await send(runtime, IT, "ciao")
    await send(runtime, IT, "sì")
    await send(runtime, IT, "Profilo")
    await process(runtime)
    answer = replies(runtime, IT)[-1]
    assert answer.startswith("My community: vedi, modifica, scarica o cancella i tuoi dati"), answer
    found = re.search(r"https://sms\.example\.org/profile/(\S+)", answer)
    assert found, answer
    member_id = verify_member_link(runtime.key_for("member-profile"), found.group(1), datetime.now(UTC))
    assert member_id == member(runtime, IT)["id"]
    # The join link's key does not open a profile, nor the other way round.
    assert "/join/" not in answer


async def test_help_mentions_profile(runtime: Runtime) -> None:
    await send(runtime, US, "hi")
    await send(runtime, US, "HELP")
    await process(runtime)
    assert "Reply PROFILE for your data" in replies(runtime, US)[-1]


async def test_joined_at_is_the_first_subscription_only(runtime: Runtime) -> None:
    await send(runtime, US, "hi")
    await process(runtime)
    assert member(runtime, US)["joined_at"] is None
    await send(runtime, US, "YES")
    await process(runtime)
    joined = member(runtime, US)["joined_at"]
    assert joined is not None
    await send(runtime, US, "STOP")
    await send(runtime, US, "START")
    await process(runtime)
    assert member(runtime, US)["state"] == "subscribed" and member(runtime, US)["joined_at"] == joined


async def test_a_new_member_gets_country_and_time_zones_from_the_number(runtime: Runtime) -> None:
    await send(runtime, IT, "ciao")
    await send(runtime, US, "hi")
    await process(runtime)
    italian, american = member(runtime, IT), member(runtime, US)
    assert (italian["country"], italian["time_zone"], italian["time_zones"]) == ("IT", "Europe/Rome", ["Europe/Rome"])
    assert american["country"] == "US" and "America/New_York" in american["time_zones"]
    assert (italian["region"], american["region"]) == (None, "US-DC")  # +1 202: Washington D.C.


async def test_an_erased_number_is_not_answered_until_it_opts_in_again(runtime: Runtime) -> None:
    await send(runtime, US, "hi")
    await send(runtime, US, "YES")
    await process(runtime)
    key = runtime.key_for("suppression")
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        erase_member(conn, community_id, member(runtime, US)["id"], key=key, now=datetime.now(UTC), reason="test")
    assert replies(runtime, US) == []
    await send(runtime, US, "hello again?")
    await process(runtime)
    assert replies(runtime, US) == []
    with pytest.raises(OptedOut, match="erased their data"), runtime.db.write_engine.begin() as conn:
        queue_text(conn, community_id, US, "we miss you", suppression_key=key)
    with runtime.db.read_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.members)).scalar_one() == 0
        assert is_suppressed(conn, community_id, key, US)
        # What they texted is not kept either: no number, no words.
        m = schema.messages.c
        assert conn.execute(sa.select(m.id).where(m.phone == US)).all() == []
        assert conn.execute(sa.select(m.id).where(m.body == "hello again?")).all() == []
    await send(runtime, US, "START")
    await process(runtime)
    assert member(runtime, US)["state"] == "pending"  # consent comes after the disclosure, as for anyone new
    assert replies(runtime, US)[-1].startswith("Hey, it's My community")
    with runtime.db.read_engine.connect() as conn:
        assert not is_suppressed(conn, community_id, key, US)
