"""`openline segments ...` and /api/v1/segments, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from openline.communities import get_community
from openline.db import Database, schema
from openline.runtime import Runtime

from .test_api import make_token
from .test_cli import invoke


def add_members(db: Database, *countries: str | None) -> None:
    with db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        conn.execute(
            sa.insert(schema.members),
            [
                {"community_id": community_id, "phone": f"+3934700000{i:02d}", "state": "subscribed", "country": c}
                for i, c in enumerate(countries)
            ],
        )


def test_segments_from_the_command_line(database_url: str, db: Database) -> None:
    env = {"OPENLINE_DATABASE_URL": database_url}
    assert invoke("segments", "list", env=env)[0] == 0  # creates the default community
    add_members(db, "IT", "IT", "US", None)

    assert invoke("segments", "count", "country = it", env=env) == (0, "2 members: country = IT\n")
    code, output = invoke("segments", "count", '{"field": "country", "op": "is not set"}', env=env)
    assert (code, output) == (0, "1 member: country is not set\n")
    code, output = invoke("segments", "count", "everyone", "--community", "nope", env=env)
    assert code == 1 and "no community 'nope'" in output

    code, output = invoke("segments", "count", "country = ", env=env)
    assert code == 1
    assert output.splitlines() == [
        "error: column 11: expected a value after '=' (a word, a number, a date or \"quoted text\"), found the end "
        "of the filter",
        "  country = ",
        "            ^",
    ]
    code, output = invoke("segments", "count", "city = '[bold]x[/bold]' and contry = IT", env=env)
    assert code == 1 and "column 29: unknown field 'contry'; did you mean country?" in output
    assert "city = '[bold]x[/bold]' and contry = IT" in output  # shown as written, not as markup

    assert invoke("segments", "save", "italians", "country = IT", env=env) == (
        0,
        "saved italians (2 members now): country = IT\n",
    )
    assert invoke("segments", "save", "nowhere", "country is not set or tag '[x]'", env=env)[0] == 0
    code, output = invoke("segments", "save", "italians", "country in (IT, US)", env=env)
    assert (code, output) == (0, "replaced italians (3 members now): country in (IT, US)\n")
    code, output = invoke("segments", "list", env=env)
    rows = [line.split("│") for line in output.splitlines() if "│" in line]
    assert "name" in output and "members" in output
    assert [[cell.strip() for cell in row[1:4]] for row in rows] == [
        ["italians", "3", "country in (IT, US)"],
        ["nowhere", "1", "country is not set or tag [x]"],  # markup in names and values is shown as is
    ]
    assert invoke("segments", "delete", "italians", env=env) == (0, "deleted italians\n")
    assert invoke("segments", "delete", "italians", env=env) == (1, "error: no segment named 'italians'\n")
    code, output = invoke("segments", "save", " ", "everyone", env=env)
    assert code == 1 and "a segment needs a name" in output


async def test_segments_in_the_api(client: httpx.AsyncClient, runtime: Runtime) -> None:
    add_members(runtime.db, "IT", "IT", "US", None)
    auth = {"Authorization": f"Bearer {make_token(runtime)}"}

    answer = await client.post("/api/v1/segments/count", json={"filter": "country = IT"}, headers=auth)
    assert (answer.status_code, answer.json()) == (200, {"count": 2})
    answer = await client.post(
        "/api/v1/segments/count", json={"filter": {"not": {"field": "country", "op": "=", "value": "IT"}}}, headers=auth
    )
    assert answer.json() == {"count": 2}
    answer = await client.get("/api/v1/segments/count", params={"filter": "country in (IT, US)"}, headers=auth)
    assert answer.json() == {"count": 3}
    answer = await client.post("/api/v1/segments/count", json={"filter": "country = "}, headers=auth)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("column 11: expected a value after '='")
    answer = await client.post(
        "/api/v1/segments/count", json={"filter": {"field": "age", "op": ">=", "value": "x"}}, headers=auth
    )
    assert answer.status_code == 422
    assert answer.json()["detail"] == "value: expected a whole number of years (got 'x')"

    answer = await client.put("/api/v1/segments/italians", json={"filter": "country = IT"}, headers=auth)
    assert answer.status_code == 201
    created = answer.json()
    assert created["name"] == "italians" and created["count"] == 2 and created["text"] == "country = IT"
    assert created["filter"] == {"field": "country", "op": "=", "value": "IT"}
    answer = await client.put(
        "/api/v1/segments/italians",
        json={"filter": {"field": "country", "op": "in", "value": ["IT", "US"]}},
        headers=auth,
    )
    assert (answer.status_code, answer.json()["count"]) == (200, 3)
    await client.put("/api/v1/segments/unknown", json={"filter": "country is not set"}, headers=auth)
    listed = (await client.get("/api/v1/segments", headers=auth)).json()
    assert [(s["name"], s["count"], s["text"]) for s in listed] == [
        ("italians", 3, "country in (IT, US)"),
        ("unknown", 1, "country is not set"),
    ]
    one = await client.get("/api/v1/segments/unknown", headers=auth)
    assert one.json()["count"] == 1
    assert (await client.get("/api/v1/segments/nope", headers=auth)).status_code == 404

    answer = await client.put("/api/v1/segments/count", json={"filter": "everyone"}, headers=auth)
    assert answer.status_code == 422 and "reserved" in answer.json()["detail"]
    answer = await client.put("/api/v1/segments/bad", json={"filter": "tag"}, headers=auth)
    assert answer.status_code == 422 and answer.json()["detail"].startswith("column 4: expected a tag")
    answer = await client.put("/api/v1/segments/%20", json={"filter": "everyone"}, headers=auth)
    assert answer.status_code == 422 and answer.json()["detail"] == "a segment needs a name"

    assert (await client.delete("/api/v1/segments/italians", headers=auth)).status_code == 204
    assert (await client.delete("/api/v1/segments/italians", headers=auth)).status_code == 404
    assert [s["name"] for s in (await client.get("/api/v1/segments", headers=auth)).json()] == ["unknown"]
