"""Webhook routes. The request path does only: verify the signature, parse, durable insert, answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from openline.db import WriterClosed, schema
from openline.ingest import UnknownSender
from openline.providers.base import IgnoredEvent, InboundWebhook, StatusWebhook, WebhookRejected, WebhookRequest
from openline.runtime import Runtime
from openline.senders import PROVIDERS
from openline.spool import Spooled

__all__ = ["ROUTES", "accept", "accept_status", "webhook_request"]

log = logging.getLogger(__name__)

IGNORED = Counter(
    "openline_webhooks_ignored", "Genuine webhooks with nothing to store (receipts, binary SMS).", ["provider"]
)
REJECTED = Counter(
    "openline_webhooks_rejected", "Webhook requests refused, by provider and reason.", ["provider", "reason"]
)


def webhook_request(runtime: Runtime, request: Request, body: bytes) -> WebhookRequest:
    """The request as the provider sent it; its URL as the provider knows it (OPENLINE_PUBLIC_URL)."""
    query = request.url.query
    base = runtime.settings.public_url or f"{request.url.scheme}://{request.url.netloc}"
    url = base + request.url.path + (f"?{query}" if query else "")
    return WebhookRequest(request.method, url, request.headers, body, query, schema.utcnow())


async def accept(runtime: Runtime, adapter: InboundWebhook, request: WebhookRequest) -> Response:
    """An inbound text: verify, parse, store durably, then (and only then) acknowledge."""
    return await _accept(runtime, adapter, request, adapter.parse, runtime.ingest.receive)


async def accept_status(runtime: Runtime, adapter: StatusWebhook, request: WebhookRequest) -> Response:
    """A delivery receipt: the same path, into ``message_receipts``."""
    return await _accept(runtime, adapter, request, adapter.parse_status, runtime.ingest.receive_status)


async def _accept(
    runtime: Runtime,
    adapter: InboundWebhook | StatusWebhook,
    request: WebhookRequest,
    parse: Callable[[WebhookRequest], Spooled],
    store: Callable[[Any], Awaitable[None]],
) -> Response:
    provider = adapter.name
    try:
        adapter.verify(request, request.received_at or schema.utcnow())
        sms = parse(request)
        await store(sms)
    except IgnoredEvent as exc:
        # Genuine, signed, and nothing to keep (a delivery receipt on the inbound URL, a binary SMS):
        # any refusal would only make the provider send it again.
        IGNORED.labels(provider).inc()
        log.info("%s webhook acknowledged, not stored: %s", provider, exc)
        body, media_type = adapter.acknowledge()
        return Response(body, status_code=200, media_type=media_type)
    except WebhookRejected as exc:
        REJECTED.labels(provider, type(exc).__name__).inc()
        log.warning("%s webhook refused (%s): %s", provider, exc.status_code, exc)
        return JSONResponse({"error": str(exc)}, status_code=exc.status_code)
    except UnknownSender as exc:
        REJECTED.labels(provider, "UnknownSender").inc()
        return JSONResponse({"error": str(exc)}, status_code=404)
    except (sa.exc.OperationalError, sa.exc.InterfaceError, WriterClosed) as exc:
        # The database is away: keep the text on local disk (fsynced) and acknowledge only then.
        try:
            await runtime.spool.put(sms)
        except OSError as spool_error:
            REJECTED.labels(provider, "Unavailable").inc()
            log.error(
                "%s webhook not stored (database unavailable: %s; spool: %s), asked to retry",
                provider,
                type(exc).__name__,
                spool_error,
            )
            return JSONResponse({"error": "not stored, try again"}, status_code=503, headers={"Retry-After": "1"})
        log.warning(
            "database unavailable (%s): %s webhook for %s spooled to disk",
            type(exc).__name__,
            provider,
            sms.provider_message_id,
        )
    body, media_type = adapter.acknowledge()
    return Response(body, status_code=200, media_type=media_type)


# Providers' webhooks are a few kilobytes (an MMS adds URLs, not media); anything far larger is not a
# provider's, and reading it whole would let one request exhaust memory.
MAX_BODY_BYTES = 1_000_000


async def _read_body(request: Request) -> bytes | None:
    """The body, or None once it grows past MAX_BODY_BYTES (announced or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def inbound(request: Request) -> Response:
    """``POST`` (or ``GET``, which Vonage can send) ``/webhooks/{provider}``."""
    provider: str = request.path_params["provider"]
    runtime: Runtime = request.app.state.runtime
    adapter = runtime.webhooks.get(provider)
    if adapter is None:
        reason = (
            f"{provider} is not configured here: set its credentials (see the README's configuration table)"
            if provider in PROVIDERS
            else f"unknown provider {provider!r}"
        )
        REJECTED.labels(provider if provider in PROVIDERS else "unknown", "NotConfigured").inc()
        log.warning("webhook for %s refused: %s", provider if provider in PROVIDERS else "an unknown provider", reason)
        return JSONResponse({"error": reason}, status_code=404)
    body = await _read_body(request)
    if body is None:
        REJECTED.labels(provider, "TooLarge").inc()
        log.warning("%s webhook refused: body larger than %d bytes", provider, MAX_BODY_BYTES)
        return JSONResponse({"error": f"the body is larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
    request_view = webhook_request(runtime, request, body)
    if request.url.path.endswith("/status"):
        if not hasattr(adapter, "parse_status"):
            return JSONResponse({"error": f"{provider} delivery receipts are not supported yet"}, status_code=404)
        return await accept_status(runtime, adapter, request_view)  # type: ignore[arg-type]
    return await accept(runtime, adapter, request_view)


# A plain Starlette route, not a FastAPI one: webhooks need no request models or dependencies, and
# FastAPI's per-request machinery cost as much as verifying the signature. Documented in the README.
ROUTES = [
    Route("/webhooks/{provider}", inbound, methods=["POST", "GET"]),
    Route("/webhooks/{provider}/status", inbound, methods=["POST", "GET"]),
]
