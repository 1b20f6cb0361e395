"""The owner's dashboard: sign-in and setup, the inbox, and (behind roles) the rest.

`create_app` includes :data:`router` and installs :func:`install` (the sign-in redirect and the static
files).
"""

from __future__ import annotations

from importlib.resources import files
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from openline.web.dashboard import analytics, auth, broadcasts, inbox, members, settings_pages, team
from openline.web.dashboard.deps import NeedsSignIn

__all__ = ["install", "router"]

router = APIRouter(include_in_schema=False)  # pages, not API: kept out of the OpenAPI schema
router.include_router(auth.router)
router.include_router(inbox.router)
router.include_router(team.router)
router.include_router(members.router)
router.include_router(broadcasts.router)
router.include_router(analytics.router)
router.include_router(settings_pages.router)


def install(app: FastAPI) -> None:
    """Static files under /dashboard/static, and a browser without a session sent to sign in."""
    static = files("openline.web").joinpath("static/dashboard")
    app.mount("/dashboard/static", StaticFiles(directory=str(static)), name="dashboard-static")

    @app.exception_handler(NeedsSignIn)
    async def _sign_in_first(request: Request, exc: NeedsSignIn) -> Response:
        if exc.setup:
            return RedirectResponse("/setup", status_code=303)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
