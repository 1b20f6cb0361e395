"""The FastAPI application: routes only parse, call the domain, and render."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from openline._version import __version__
from openline.runtime import Runtime
from openline.spool import replay_until_stopped
from openline.web import api, api_members, card, dashboard, health, join, profile, shortlinks, simulator
from openline.web.api_broadcasts import router as broadcasts_router
from openline.web.api_segments import router as segments_router
from openline.webhooks import ROUTES as WEBHOOK_ROUTES

__all__ = ["create_app"]

Background = Callable[[Runtime, asyncio.Event], Coroutine[Any, Any, None]]


def create_app(runtime: Runtime, *, background: Background | None = None, own_runtime: bool = True) -> FastAPI:
    """An app over an open runtime. ``background`` runs beside the web server (``openline serve``).

    With ``own_runtime`` the app closes the runtime when it shuts down.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything loaded at start lives as long as the process: keeping it out of the garbage
        # collector's generations makes the full collections during a flood short.
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(replay_until_stopped(runtime.spool, runtime.ingest.receive_spooled, stop))]
        if background is not None:
            tasks.append(asyncio.create_task(background(runtime, stop)))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            if own_runtime:
                await asyncio.to_thread(runtime.close)

    app = FastAPI(
        title="openline",
        version=__version__,
        description="One phone number thousands of people can text.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(health.router)
    app.router.routes.extend(WEBHOOK_ROUTES)
    app.include_router(api.router)
    app.include_router(segments_router)
    app.include_router(api_members.router)
    app.include_router(broadcasts_router)
    app.include_router(join.router)
    app.include_router(profile.router)
    app.include_router(card.router)
    app.include_router(shortlinks.router)
    app.include_router(dashboard.router)
    dashboard.install(app)
    if runtime.settings.simulator:
        app.include_router(simulator.router)
    return app
