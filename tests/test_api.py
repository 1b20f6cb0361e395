from __future__ import annotations

import httpx

from openline.communities import get_community
from openline.providers.base import InboundSms
from openline.runtime import Runtime
from openline.senders import SANDBOX_NUMBER
from openline.tokens import create_token, revoke_token


def make_token(runtime: Runtime, name: str = "ci") -> str:
    with runtime.db.write_engine.begin() as conn:
        return create_token(conn, get_community(conn).id, name)


async def test_every_api_route_needs_a_token(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    api_routes = [(m.upper(), p) for p, ops in spec["paths"].items() if p.startswith("/api/v1/") for m in ops]
    assert api_routes
    for method, path in api_routes:
        answer = await client.request(method, path)
        assert answer.status_code == 401, (method, path)
        assert answer.headers["www-authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.request(method, path, headers=wrong)).status_code == 401, (method, path)


async def test_a_token_opens_the_api_until_revoked(client: httpx.AsyncClient, runtime: Runtime) -> None:
    token = make_token(runtime)
    auth = {"Authorization": f"Bearer {token}"}
    answer = await client.get("/api/v1/community", headers=auth)
    assert answer.status_code == 200
    assert answer.json()["slug"] == "default"
    senders = (await client.get("/api/v1/senders", headers=auth)).json()
    assert [(s["address"], s["provider"]) for s in senders] == [(SANDBOX_NUMBER, "sandbox")]
    with runtime.db.write_engine.begin() as conn:
        assert revoke_token(conn, get_community(conn).id, "ci")
    answer = await client.get("/api/v1/community", headers=auth)
    assert answer.status_code == 401
    assert answer.json()["detail"] == "unknown or revoked token"


async def test_messages_are_listed_and_filtered(client: httpx.AsyncClient, runtime: Runtime) -> None:
    for i, phone in enumerate(["+393471234567", "+919876543210", "+393471234567"]):
        await runtime.ingest.receive(InboundSms("sandbox", f"id-{i}", phone, SANDBOX_NUMBER, f"hello {i}"))
    auth = {"Authorization": f"Bearer {make_token(runtime)}"}
    everything = (await client.get("/api/v1/messages", headers=auth)).json()
    assert [m["body"] for m in everything] == ["hello 0", "hello 1", "hello 2"]
    italian = (await client.get("/api/v1/messages", params={"phone": "+39 347 123 4567"}, headers=auth)).json()
    assert [m["body"] for m in italian] == ["hello 0", "hello 2"]
    newer = (await client.get("/api/v1/messages", params={"after_id": everything[0]["id"]}, headers=auth)).json()
    assert len(newer) == 2
    bad = await client.get("/api/v1/messages", params={"phone": "12"}, headers=auth)
    assert bad.status_code == 422
    assert "not a" in bad.json()["detail"]


async def test_healthz_and_metrics(client: httpx.AsyncClient) -> None:
    health = (await client.get("/healthz")).json()
    assert health["status"] == "ok"
    assert health["database"] == "reachable"
    assert health["version"]
    metrics = await client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "openline_writer_batch_size_bucket" in metrics.text


async def test_healthz_reports_an_unreachable_database(client: httpx.AsyncClient, runtime: Runtime) -> None:
    runtime.db.read_engine.dispose()
    original = runtime.db.reachable
    runtime.db.reachable = lambda: False  # type: ignore[method-assign]
    try:
        answer = await client.get("/healthz")
    finally:
        runtime.db.reachable = original  # type: ignore[method-assign]
    assert answer.status_code == 503
    assert answer.json()["database"] == "unreachable"
