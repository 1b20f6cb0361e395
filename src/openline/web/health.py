"""Liveness and metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from openline._version import __version__
from openline.runtime import Runtime

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Is the service up and its database reachable?")
async def healthz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    reachable = await asyncio.to_thread(runtime.db.reachable)
    return JSONResponse(
        {
            "status": "ok" if reachable else "degraded",
            "database": "reachable" if reachable else "unreachable",
            "version": __version__,
        },
        status_code=200 if reachable else 503,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
