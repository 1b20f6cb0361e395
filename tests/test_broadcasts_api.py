"""`openline broadcast ...` and /api/v1/broadcasts, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from openline.db import Database
from openline.runtime import Runtime

from .test_api import make_token
from .test_broadcasts import add_people
from .test_cli import invoke

ROME = [
    {"phone": "+393471230001", "state": "subscribed", "first_name": "Giulia", "country": "IT", "language": "it",
     "time_zone": "Europe/Rome"},
    {"phone": "+393471230002", "state": "subscribed", "country": "IT", "time_zone": "Europe/Rome"},
    {"phone": "+393471230003", "state": "pending", "country": "IT", "time_zone": "Europe/Rome"},
]  # fmt: skip
BODY = 'Ciao {{ first_name | default("amico") }}! https://example.org/x'


async def test_broadcasts_through_the_api(client: httpx.AsyncClient, runtime: Runtime) -> None:
    add_people(runtime.db, ROME)
    auth = {"Authorization": f"Bearer {make_token(runtime)}"}
    wrong = {"name": "x", "message": {"variants": [{"body": "Ciao {{ nome }}"}]}, "segment": "country = IT"}
    answer = await client.post("/api/v1/broadcasts", json=wrong, headers=auth)
    assert answer.status_code == 422
    assert "line 1, column 9: unknown variable 'nome'" in answer.json()["detail"]
    answer = await client.post(
        "/api/v1/broadcasts",
        json={"name": "show", "message": {"variants": [{"body": BODY}]}, "segment": "country = it"},
        headers=auth,
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["state"], created["segment"]) == ("draft", "country = IT")

    estimate = (await client.get(f"/api/v1/broadcasts/{created['id']}/estimate", headers=auth)).json()
    assert (estimate["recipients"], estimate["skipped"]) == (2, {"never confirmed (pending)": 1})
    assert estimate["summary"][0].startswith("2 recipients, 2 segments")
    preview = (await client.get("/api/v1/broadcasts/show/preview?member=%2B393471230001", headers=auth)).json()
    assert preview[0]["body"].startswith("Ciao Giulia! https://sms.example.org/l/")
    assert preview[0]["segments"] == 1

    sent = await client.post("/api/v1/broadcasts/show/send", headers=auth)
    assert sent.json()["state"] == "fanning_out"
    assert (await client.post("/api/v1/broadcasts/show/send", headers=auth)).status_code == 409
    assert (await client.post("/api/v1/broadcasts/show/pause", headers=auth)).json()["state"] == "paused"
    assert (await client.post("/api/v1/broadcasts/show/resume", headers=auth)).json()["state"] == "fanning_out"
    stats = (await client.get("/api/v1/broadcasts/show/stats", headers=auth)).json()
    assert stats["state"] == "fanning_out" and stats["clicks"] == {"total": 0, "unique": 0}
    story = (await client.get("/api/v1/broadcasts/show/why?phone=%2B393471230003", headers=auth)).json()
    assert story["why"] == "fan-out has not reached them yet; as of now: skipped: never confirmed (pending)"
    assert (await client.post("/api/v1/broadcasts/show/cancel", headers=auth)).json()["state"] == "cancelled"
    assert [b["name"] for b in (await client.get("/api/v1/broadcasts", headers=auth)).json()] == ["show"]
    assert (await client.get("/api/v1/broadcasts/nope", headers=auth)).status_code == 404


def test_broadcasts_from_the_command_line(database_url: str, db: Database) -> None:
    env = {"OPENLINE_DATABASE_URL": database_url, "OPENLINE_PUBLIC_URL": "https://sms.example.org"}
    assert invoke("broadcast", "list", env=env)[0] == 0  # creates the default community
    add_people(db, ROME)

    code, output = invoke(
        "broadcast", "create", "bad", "--body", "Hi {{ first_name", "--filter", "country = IT", env=env
    )
    assert code == 1 and "the text: line 1, column" in output
    code, output = invoke(
        "broadcast", "create", "show", "--body", BODY, "--filter", "country = IT",
        "--translation", "en=Hi {{ first_name | default('friend') }}", env=env,
    )  # fmt: skip
    assert code == 0, output
    assert output.startswith("draft show (id 1), to send as soon as it is started")

    assert invoke("broadcast", "price", "IT", "0.05", "--currency", "eur", env=env) == (0, "IT 0.05 EUR per segment\n")
    code, output = invoke("broadcast", "estimate", "show", env=env)
    assert code == 0 and output.startswith("2 recipients, 2 segments, ≈ 0.10 EUR\n"), output
    assert "1 skipped: never confirmed (pending)" in output
    code, output = invoke("broadcast", "preview", "show", "--member", "+39 347 123 0002", env=env)
    assert code == 0 and "Ciao amico! https://sms.example.org/l/" in output

    assert invoke("broadcast", "windows", "mon-fri 10:00-20:00", "sat,sun 10:00-18:00", env=env)[0] == 0
    assert invoke("broadcast", "windows", env=env) == (0, "mon-fri 10:00-20:00; sat,sun 10:00-18:00\n")
    code, output = invoke("broadcast", "windows", "mon 25:00-26:00", env=env)
    assert code == 1 and "'25:00' is not a time of day" in output
    assert invoke("broadcast", "windows", "--clear", env=env)[1] == "no owner windows: only the legal hours apply\n"
    assert invoke("broadcast", "cap", "2", env=env) == (0, "frequency cap: 2 per member per 24 h\n")
    assert invoke("broadcast", "cap", "off", env=env) == (0, "frequency cap: none per member per 24 h\n")
    assert invoke("broadcast", "cap", "lots", env=env)[0] == 1
    assert invoke("broadcast", "disclosure", "Sponsored:", env=env)[0] == 0
    assert invoke("broadcast", "footer", "Reply STOP to opt out", env=env) == (0, "*: Reply STOP to opt out\n")
    assert invoke("broadcast", "footer", "--clear", env=env) == (0, "no footer\n")

    code, output = invoke("broadcast", "send", "show", "--yes", "--no-wait", env=env)
    assert code == 0 and "show is fanning_out" in output, output
    code, output = invoke("broadcast", "why", "show", "+393471230003", env=env)
    assert (code, output) == (0, "fan-out has not reached them yet; as of now: skipped: never confirmed (pending)\n")
    assert invoke("broadcast", "pause", "show", env=env) == (0, "show is paused\n")
    assert invoke("broadcast", "pause", "show", env=env)[0] == 1
    assert invoke("broadcast", "resume", "show", env=env) == (0, "show is fanning_out again\n")
    code, output = invoke("broadcast", "stats", "show", env=env)
    assert code == 0 and "show (fanning_out): 0 recipients" in output
    assert invoke("broadcast", "cancel", "show", env=env) == (0, "show is cancelled; 0 texts will not be sent\n")
    code, output = invoke("broadcast", "list", env=env)
    assert code == 0 and "cancelled" in output
