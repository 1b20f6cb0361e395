"""The phone simulator: text a sandbox sender from the browser, see the replies it records.

Its texts are encoded and signed exactly as the sandbox provider would send them and go through the
same webhook handler, so the simulator exercises the real request path.
"""

from __future__ import annotations

import asyncio
import uuid
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from openline.db import schema
from openline.messages import MessageView, recent_messages
from openline.phone import InvalidAddress, to_e164
from openline.providers.base import InboundSms, WebhookRequest
from openline.providers.sandbox import SIGNATURE_HEADER, SandboxWebhook, encode_inbound
from openline.runtime import Runtime
from openline.senders import Sender
from openline.webhooks import accept

__all__ = ["router"]

router = APIRouter(prefix="/simulator", tags=["simulator"])
_PAGE = files("openline.web").joinpath("static/simulator.html")


class SimulatedText(BaseModel):
    from_number: str = Field(alias="from", description="The simulated phone's number")
    to: str = Field(description="A sandbox sender's number")
    body: str
    message_id: str = Field(
        default_factory=lambda: f"sim-{uuid.uuid4()}",
        max_length=128,
        description="Send the same id again to simulate a provider retrying a webhook",
    )


def _sandbox_senders(runtime: Runtime) -> list[Sender]:
    runtime.senders.reload()
    return [s for s in runtime.senders.all() if s.provider == "sandbox"]


@router.get("", response_class=HTMLResponse, summary="The phone simulator page")
async def page() -> HTMLResponse:
    return HTMLResponse(_PAGE.read_text(encoding="utf-8"))


@router.get("/senders", summary="Sandbox numbers the simulator can text")
async def senders(request: Request) -> list[Sender]:
    return await asyncio.to_thread(_sandbox_senders, request.app.state.runtime)


@router.post("/send", summary="Text a sandbox sender from a simulated phone")
async def send(request: Request, text: SimulatedText) -> Response:
    runtime: Runtime = request.app.state.runtime
    adapter = runtime.webhooks["sandbox"]
    assert isinstance(adapter, SandboxWebhook)
    body = encode_inbound(InboundSms("sandbox", text.message_id, text.from_number, text.to, text.body))
    headers = {SIGNATURE_HEADER: adapter.sign(body)} if runtime.settings.sandbox_verify_signatures else {}
    url = (runtime.settings.public_url or str(request.base_url).rstrip("/")) + "/webhooks/sandbox"
    return await accept(runtime, adapter, WebhookRequest("POST", url, headers, body, "", schema.utcnow()))


@router.get("/thread", summary="What a simulated phone and a sandbox sender said to each other")
async def thread(
    request: Request,
    phone: Annotated[str, Query(description="The simulated phone's number")],
    to: Annotated[str, Query(description="The sandbox sender's number")],
    after_id: Annotated[int, Query(ge=0)] = 0,
) -> list[MessageView]:
    runtime: Runtime = request.app.state.runtime
    try:
        phone = to_e164(phone)
    except InvalidAddress as exc:
        raise HTTPException(422, str(exc)) from None
    sender = runtime.senders.cached(to)
    if sender is None or sender.provider != "sandbox":
        raise HTTPException(404, f"{to} is not a sandbox sender")

    def load() -> list[MessageView]:
        with runtime.db.read_engine.connect() as conn:
            return recent_messages(
                conn, sender.community_id, phone=phone, sender_id=sender.id, after_id=after_id, limit=200
            )

    return await asyncio.to_thread(load)
