"""The dashboard's /members pages on SQLite and PostgreSQL: the keyset-paged list, the filter and its
live count, saved segments, one member's page and JSON export, and the roles that may see them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from openline.accounts import add_user, create_owner, list_users, sign_in
from openline.communities import get_community
from openline.db import schema
from openline.runtime import Runtime
from openline.states import ConsentSource, MemberState, UserRole
from openline.web.dashboard.deps import COOKIE

from .test_join import Html

PASSWORD = "correct horse battery"
HOST = "sms.example.org"


@dataclass(frozen=True)
class Signed:
    """A browser signed in to the dashboard: its client (holding the cookie) and its CSRF token."""

    client: httpx.AsyncClient
    csrf: str

    async def post(self, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)

    async def htmx(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        """A post as htmx sends it: the token in a header, not in the form."""
        headers = {"HX-Request": "true", "X-CSRF-Token": self.csrf}
        return await self.client.post(path, data=data or {}, headers=headers)


def sign_in_as(client: httpx.AsyncClient, runtime: Runtime, role: UserRole = UserRole.owner) -> Signed:
    """Make a user with ``role`` (the owner first, when needed) and act as them in ``client``."""
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        owner = next((u for u in list_users(conn, community_id) if u.role is UserRole.owner), None)
        if owner is None:
            owner = create_owner(conn, community_id, "ada@example.org", PASSWORD, "Ada")
        user = owner
        if role is not UserRole.owner:
            user = add_user(conn, community_id, f"{role.value}@example.org", PASSWORD, role, role.value, by=owner)
        token, session = sign_in(conn, user.email, PASSWORD, "192.0.2.1", datetime.now(UTC))
    client.cookies.set(COOKIE, token, domain=HOST)
    return Signed(client, session.csrf_token)


def add_members(runtime: Runtime, people: list[dict[str, Any]]) -> list[int]:
    """Members straight in the table, in order (so ids grow with the list); their ids."""
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        rows = [{"community_id": community_id, "time_zones": [], "custom": {}, **person} for person in people]
        columns = {name for row in rows for name in row}  # one executemany: every row names every column
        rows = [dict.fromkeys(columns) | row for row in rows]
        ids = conn.execute(sa.insert(schema.members).returning(schema.members.c.id, sort_by_parameter_order=True), rows)
        return [int(i) for i in ids.scalars()]


def audit_actions(runtime: Runtime) -> list[tuple[str, str | None]]:
    with runtime.db.read_engine.connect() as conn:
        a = schema.audit_log.c
        rows = conn.execute(sa.select(a.action, a.target).where(a.action != "user.sign_in").order_by(a.id))
        return [(row.action, row.target) for row in rows if row.action != "user.add"]


def assert_accessible(page: Html) -> None:
    """Every visible input and select has a label; every invalid one points at its error."""
    for field in page.inputs:
        if field.get("type") in ("hidden", None) and "id" not in field:
            continue
        if field.get("type") != "hidden":
            assert field["id"] in page.labels, field
            if field.get("aria-invalid") == "true":
                described = field["aria-describedby"].split()
                assert any(page.by_id[i]["attrs"].get("class") == "error" for i in described if i in page.by_id)


def member_links(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<a href="/members/(\d+)">', html)]


def people(n: int) -> list[dict[str, Any]]:
    joined = datetime(2026, 11, 1, 12, tzinfo=UTC)
    return [
        {
            "phone": f"+3934700{i:05d}",
            "state": MemberState.subscribed if i % 4 else MemberState.pending,
            "first_name": f"Person{i}",
            "city": "Milano" if i % 2 else "Roma",
            "country": "IT" if i % 3 else "US",
            "language": "it",
            "joined_at": joined + timedelta(hours=i) if i % 4 else None,
        }
        for i in range(n)
    ]


async def test_the_list_pages_newest_first_and_filters_with_a_live_count(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ids = add_members(runtime, people(120))
    owner = sign_in_as(client, runtime)

    first = await client.get("/members")
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    page = Html(first.text)
    assert_accessible(page)
    assert page.text("filter-count") == "120 members"
    shown = member_links(first.text)
    assert shown == ids[::-1][:50]  # newest first
    assert 'hx-post="/members/count"' in first.text and "delay:300ms" in first.text
    assert f"before={ids[70]}" in first.text

    second = await client.get("/members", params={"before": ids[70]})
    assert member_links(second.text) == ids[::-1][50:100]
    last = await client.get("/members", params={"before": ids[20]})
    assert member_links(last.text) == ids[::-1][100:]
    assert 'rel="next"' not in last.text

    # A filter in the text form narrows the list and the count; paging keeps it.
    italians = [i for n, i in enumerate(ids) if n % 3 and n % 2]
    narrowed = await client.get("/members", params={"filter": "country = IT and city = Milano"})
    assert Html(narrowed.text).text("filter-count") == f"{len(italians)} members"
    assert member_links(narrowed.text) == italians[::-1]
    assert Html(narrowed.text).value("filter") == "country = IT and city = Milano"
    row = Html(narrowed.text).all_text
    assert "+393470000119 · Person119 subscribed · Milano · language it · joined 2026-11-06" in row

    wrong = await client.get("/members", params={"filter": "country = IT and contry = US"})
    shown_error = Html(wrong.text)
    assert "Column 18" in shown_error.text("filter-error") and "country" in shown_error.text("filter-error")
    assert "filter-error" in next(i for i in shown_error.inputs if i.get("name") == "filter")["aria-describedby"]
    assert_accessible(shown_error)

    # The live count: a fragment, always 200, with the error and its column when the filter is wrong.
    counted = await owner.htmx("/members/count", {"filter": "state = pending"})
    assert counted.status_code == 200 and counted.text.strip() == "30 members"
    assert (await owner.htmx("/members/count", {"filter": ""})).text.strip() == "120 members"
    assert (await owner.htmx("/members/count", {"filter": "tag nobody-has-it"})).text.strip() == "0 members"
    bad = await owner.htmx("/members/count", {"filter": "city = Milano and"})
    assert bad.status_code == 200 and 'class="error"' in bad.text and "Column 18" in bad.text
    forged = await client.post("/members/count", data={"filter": "everyone"}, headers={"HX-Request": "true"})
    assert forged.status_code == 403


async def test_a_filter_is_saved_as_a_segment_with_a_live_count(client: httpx.AsyncClient, runtime: Runtime) -> None:
    add_members(runtime, people(12))
    owner = sign_in_as(client, runtime)

    saved = await owner.post("/members/segments", {"filter": "city = Milano", "segment_name": "Milan fans"})
    assert saved.status_code == 303
    page = await client.get(saved.headers["location"])
    assert "Saved the segment “Milan fans”." in Html(page.text).all_text
    assert 'hx-get="/members/segment-count?name=Milan+fans"' in page.text
    assert 'href="/members?filter=city+%3D+Milano"' in page.text  # the link that fills the filter
    count = await client.get("/members/segment-count", params={"name": "Milan fans"})
    assert count.text.strip() == "6 members"

    # Saving again under the same name replaces it; a bad name or filter keeps what was typed.
    replaced = {"filter": "city = Roma and state = subscribed", "segment_name": "Milan fans"}
    assert (await owner.post("/members/segments", replaced)).status_code == 303
    assert (await client.get("/members/segment-count", params={"name": "Milan fans"})).text.strip() == "3 members"
    unnamed = await owner.post("/members/segments", {"filter": "city = Roma", "segment_name": "  "})
    assert unnamed.status_code == 400
    shown = Html(unnamed.text)
    assert "needs a name" in shown.text("segment_name-error") and shown.value("filter") == "city = Roma"
    assert_accessible(shown)
    broken = await owner.post("/members/segments", {"filter": "city =", "segment_name": "x"})
    assert broken.status_code == 400 and "Column" in Html(broken.text).text("filter-error")
    # A "saved" notice for a segment that does not exist is not shown (the address is anyone's to write).
    assert "Saved the segment" not in (await client.get("/members", params={"saved": "Call +1 555"})).text

    assert audit_actions(runtime) == [("segment.save", "Milan fans"), ("segment.save", "Milan fans")]
    with runtime.db.read_engine.connect() as conn:
        stored = conn.execute(sa.select(schema.segments.c.filter)).scalar_one()
    assert stored == {
        "and": [
            {"field": "city", "op": "=", "value": "Roma"},
            {"field": "state", "op": "=", "value": "subscribed"},
        ]
    }


async def test_a_members_page_and_export(client: httpx.AsyncClient, runtime: Runtime) -> None:
    (member_id,) = add_members(
        runtime,
        [
            {
                "phone": "+393471234567",
                "state": MemberState.subscribed,
                "first_name": "Łukasz",
                "last_name": "Nowak",
                "city": "Milano",
                "country": "IT",
                "language": "it",
                "time_zones": ["Europe/Rome"],
                "custom": {"tier": "gold"},
                "joined_at": datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
            }
        ],
    )
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        conn.execute(sa.insert(schema.member_tags), [{"member_id": member_id, "tag": t} for t in ("vip", "milan")])
        conn.execute(
            sa.insert(schema.consent_events).values(
                community_id=community_id,
                member_id=member_id,
                previous_state=MemberState.pending,
                new_state=MemberState.subscribed,
                source=ConsentSource.sms,
                evidence={"text": "YES"},
                occurred_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
            )
        )
        conversation_id = conn.execute(
            sa.insert(schema.conversations)
            .values(community_id=community_id, member_id=member_id)
            .returning(schema.conversations.c.id)
        ).scalar_one()
        other = conn.execute(
            sa.insert(schema.communities)
            .values(slug="other", name="Other", settings={})
            .returning(schema.communities.c.id)
        ).scalar_one()
        stranger = conn.execute(
            sa.insert(schema.members)
            .values(community_id=other, phone="+12125550199", state=MemberState.subscribed, time_zones=[], custom={})
            .returning(schema.members.c.id)
        ).scalar_one()
    sign_in_as(client, runtime)

    response = await client.get(f"/members/{member_id}")
    assert response.status_code == 200
    text = Html(response.text).all_text
    for shown in ("+393471234567", "subscribed", "Łukasz", "Nowak", "Milano", "IT", "Europe/Rome", "tier gold"):
        assert shown in text, shown
    assert "milan vip" in text and "pending → subscribed · by sms" in text and "2026-11-02 09:30 UTC" in text
    assert f'href="/inbox/{conversation_id}"' in response.text
    assert f'href="/members/{member_id}/export.json"' in response.text

    export = await client.get(f"/members/{member_id}/export.json")
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/json")
    assert export.headers["content-disposition"] == f'attachment; filename="member-{member_id}.json"'
    assert export.headers["cache-control"] == "no-store"
    record = json.loads(export.text)
    assert record["phone"] == "+393471234567" and record["first_name"] == "Łukasz"
    assert record["tags"] == ["milan", "vip"]
    assert record["consent"][0]["evidence"] == {"text": "YES"} and record["custom"] == {"tier": "gold"}
    assert audit_actions(runtime) == [("member.export", f"member {member_id}")]

    # Another community's member, or nobody: not found, and nothing exported.
    for path in (f"/members/{stranger}", f"/members/{stranger}/export.json", "/members/999999"):
        assert (await client.get(path)).status_code == 404, path
    assert len(audit_actions(runtime)) == 1


@pytest.mark.parametrize("role", [UserRole.agent, None])
async def test_agents_and_strangers_cannot_see_members(
    client: httpx.AsyncClient, runtime: Runtime, role: UserRole | None
) -> None:
    (member_id,) = add_members(runtime, people(1))
    if role is None:
        sign_in_as(client, runtime)  # an owner exists, so a stranger is sent to /login
        client.cookies.clear()
    else:
        sign_in_as(client, runtime, role)
    pages = ("/members", f"/members/{member_id}", f"/members/{member_id}/export.json", "/members/segment-count?name=x")
    for path in pages:
        response = await client.get(path)
        if role is None:
            assert (response.status_code, response.headers["location"][:6]) == (303, "/login"), path
        else:
            assert response.status_code == 403, path
    posted = await client.post("/members/count", data={"filter": "everyone"})
    assert posted.status_code == (303 if role is None else 403)
