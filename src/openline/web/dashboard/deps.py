"""What every dashboard page shares: the signed-in session, CSRF checks, roles, and rendering.

Pages are server-rendered Jinja2 (autoescaped); htmx (served from /dashboard/static, never a CDN) makes
parts of them live. A page needs a session cookie; without one a browser is sent to /login (or to
/setup while the installation has no owner). Every POST carries the session's CSRF token, as the
form field ``csrf_token`` or, from htmx, the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from openline.accounts import Session, has_owner, session_for
from openline.runtime import Runtime
from openline.states import UserRole

__all__ = [
    "COOKIE",
    "DASHBOARD_HEADERS",
    "CurrentSession",
    "NeedsSignIn",
    "check_csrf",
    "current_session",
    "render",
    "require",
    "runtime_of",
]

COOKIE = "openline_session"

environment = Environment(
    loader=PackageLoader("openline.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Personal data on every page: never cached, never framed; scripts only from this server.
DASHBOARD_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


class NeedsSignIn(Exception):
    """No live session: the app answers with a redirect to /login (or /setup before the first owner)."""

    def __init__(self, setup: bool) -> None:
        super().__init__("sign in first")
        self.setup = setup


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def current_session(request: Request) -> Session:
    runtime = runtime_of(request)
    token = request.cookies.get(COOKIE)

    def look_up() -> tuple[Session | None, bool]:
        with runtime.db.write_engine.begin() as conn:
            found = session_for(conn, token, datetime.now(UTC))
            return found, found is None and not has_owner(conn)

    session, setup = await asyncio.to_thread(look_up)
    if session is None:
        raise NeedsSignIn(setup)
    request.state.session = session
    return session


CurrentSession = Annotated[Session, Depends(current_session)]


def require(role: UserRole) -> Any:
    """A dependency: the signed-in user must have ``role`` or above (403 otherwise)."""

    async def allowed(session: CurrentSession) -> Session:
        if not session.user.may(role):
            raise HTTPException(403, f"this page is for the {role.value} role and above")
        return session

    return Depends(allowed)


async def check_csrf(request: Request, session: CurrentSession) -> Session:
    """For every POST: the form's ``csrf_token`` (or the ``X-CSRF-Token`` header) must be the session's."""
    given = request.headers.get("x-csrf-token")
    if given is None:
        form = await request.form()
        value = form.get("csrf_token")
        given = value if isinstance(value, str) else None
    if given is None or not hmac.compare_digest(given, session.csrf_token):
        raise HTTPException(403, "the form is out of date (CSRF check failed); reload the page and try again")
    return session


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A dashboard page; the template sees ``session`` (None on /login and /setup) and ``request``."""
    session = getattr(request.state, "session", None)
    html = environment.get_template(template).render(request=request, session=session, **context)
    return HTMLResponse(html, status_code=status_code, headers=dict(DASHBOARD_HEADERS))
