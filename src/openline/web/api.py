"""The JSON API under /api/v1: every route needs ``Authorization: Bearer <token>``."""

from __future__ import annotations

import asyncio
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from openline.communities import Community
from openline.db import schema
from openline.messages import MessageView, recent_messages
from openline.outbox import MessageResource, OptedOut, ReusedIdempotencyKey, get_message, queue_text
from openline.phone import InvalidAddress, to_e164
from openline.runtime import Runtime
from openline.senders import Sender, list_senders
from openline.tokens import authenticate

__all__ = ["router"]

_bearer = HTTPBearer(auto_error=False, description="A token from `openline tokens create --name NAME`.")


def _community_for(runtime: Runtime, token: str) -> Community | None:
    with runtime.db.read_engine.connect() as conn:
        found = authenticate(conn, token)
        if found is None:
            return None
        row = conn.execute(
            sa.select(schema.communities.c.slug, schema.communities.c.name).where(
                schema.communities.c.id == found.community_id
            )
        ).one()
        return Community(found.community_id, row.slug, row.name)


async def community(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Community:
    """The community the request's token belongs to; 401 without a live token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"})
    found = await asyncio.to_thread(_community_for, request.app.state.runtime, credentials.credentials)
    if found is None:
        raise HTTPException(401, "unknown or revoked token", {"WWW-Authenticate": "Bearer"})
    return found


CurrentCommunity = Annotated[Community, Depends(community)]
router = APIRouter(prefix="/api/v1", tags=["api"])


class CommunityOut(BaseModel):
    id: int
    slug: str
    name: str


@router.get("/community", summary="The community this token belongs to")
async def get_community(current: CurrentCommunity) -> CommunityOut:
    return CommunityOut(id=current.id, slug=current.slug, name=current.name)


@router.get("/senders", summary="The numbers this community answers on")
async def get_senders(request: Request, current: CurrentCommunity) -> list[Sender]:
    runtime: Runtime = request.app.state.runtime

    def load() -> list[Sender]:
        with runtime.db.read_engine.connect() as conn:
            return list_senders(conn, current.id)

    return await asyncio.to_thread(load)


@router.get("/messages", summary="Recent texts, oldest first; filter by phone number")
async def get_messages(
    request: Request,
    current: CurrentCommunity,
    phone: Annotated[str | None, Query(description="E.164 number, e.g. +393471234567")] = None,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[MessageView]:
    runtime: Runtime = request.app.state.runtime
    if phone is not None:
        try:
            phone = to_e164(phone)
        except InvalidAddress as exc:
            raise HTTPException(422, str(exc)) from None

    def load() -> list[MessageView]:
        with runtime.db.read_engine.connect() as conn:
            return recent_messages(conn, current.id, phone=phone, after_id=after_id, limit=limit)

    return await asyncio.to_thread(load)


class SendText(BaseModel):
    to: str = Field(description="The recipient, E.164 or any format with a country code")
    body: str = Field("", description="The text (up to 1600 characters)")
    sender: str | None = Field(None, description="A sender's address; default: the one the member last wrote to")
    media_urls: list[str] = Field(default_factory=list, description="MMS media, up to 10 http(s) URLs")


@router.post(
    "/messages",
    summary="Send one transactional text",
    status_code=201,
    responses={200: {"description": "Already sent with this Idempotency-Key"}, 409: {}, 422: {}},
)
async def post_message(
    request: Request,
    current: CurrentCommunity,
    text: SendText,
    idempotency_key: Annotated[str | None, Header(max_length=200, description="The same key never sends twice")] = None,
) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime

    def store(conn: sa.Connection) -> tuple[MessageResource, bool]:
        return queue_text(
            conn,
            current.id,
            text.to,
            text.body,
            suppression_key=runtime.key_for("suppression"),
            sender=text.sender,
            media_urls=tuple(text.media_urls),
            idempotency_key=idempotency_key,
        )

    try:
        resource, created = await runtime.writer.run(store)
    except ReusedIdempotencyKey as exc:
        raise HTTPException(409, str(exc)) from None
    except (OptedOut, InvalidAddress, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    except sa.exc.IntegrityError:  # the same key raced in twice: the first one won
        raise HTTPException(409, "a request with this Idempotency-Key is being processed") from None
    return JSONResponse(jsonable_encoder(resource), status_code=201 if created else 200)


@router.get("/messages/{message_id}", summary="One text: its status, encoding, segments and why it failed")
async def get_one_message(request: Request, current: CurrentCommunity, message_id: int) -> MessageResource:
    runtime: Runtime = request.app.state.runtime

    def load() -> MessageResource | None:
        with runtime.db.read_engine.connect() as conn:
            return get_message(conn, current.id, message_id)

    found = await asyncio.to_thread(load)
    if found is None:
        raise HTTPException(404, f"no message {message_id}")
    return found
