"""Setting up the first owner, signing in and out, and changing one's own password.

/setup is open only while the installation has no owner. /login and /setup have no session yet, so
their forms carry a token of their own against cross-site posts (see :func:`form_token`). Sign-in
goes through :func:`openline.accounts.sign_in`, which limits failures per e-mail address and per
client address. The client address is the one the web server reports (``request.client.host``);
this module never reads X-Forwarded-For itself, since anyone can send it. uvicorn takes the header
into account only on connections from addresses it trusts (127.0.0.1 and ::1 unless
FORWARDED_ALLOW_IPS says otherwise), so behind a reverse proxy elsewhere operators must name the
proxy there, or every client shares the proxy's address and its limit.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from openline.accounts import (
    SESSION_LIFETIME,
    AccountError,
    Session,
    TooManyAttempts,
    create_owner,
    has_owner,
    set_password,
    sign_in,
    sign_out,
)
from openline.communities import get_community
from openline.links import InvalidLink, sign_form_nonce, verify_form_nonce
from openline.runtime import Runtime
from openline.web.dashboard.deps import COOKIE, CurrentSession, check_csrf, render, runtime_of

__all__ = [
    "FORM_COOKIE",
    "FORM_TOKEN_AGE",
    "client_address",
    "form_token",
    "form_token_ok",
    "posted",
    "read",
    "router",
    "safe_next",
    "sentence",
    "set_session_cookie",
    "write",
]

router = APIRouter()

T = TypeVar("T")

# A random value per browser that the sign-in and setup tokens are bound to (see form_token).
FORM_COOKIE = "openline_form"
FORM_TOKEN_AGE = timedelta(hours=1)
_FORM_COOKIE_SHAPE = re.compile(r"[A-Za-z0-9_-]{32,64}")
_STALE_FORM = "This form was open too long or came from another site. Please try again."


# -- shared with the other dashboard pages -------------------------------------------------------


async def write(runtime: Runtime, work: Callable[[sa.Connection], T]) -> T:
    """Run ``work`` in its own write transaction, in a thread. Not through the group-commit writer:
    accounts work hashes passwords (Argon2, tens of milliseconds), which would stall every inbound
    text queued behind it. On SQLite ``BEGIN IMMEDIATE`` still makes this the only writer."""

    def run() -> T:
        with runtime.db.write_engine.begin() as conn:
            return work(conn)

    return await asyncio.to_thread(run)


async def read(runtime: Runtime, work: Callable[[sa.Connection], T]) -> T:
    def run() -> T:
        with runtime.db.read_engine.connect() as conn:
            return work(conn)

    return await asyncio.to_thread(run)


async def posted(request: Request) -> dict[str, str]:
    """The form's text fields (a field sent twice: the last value)."""
    return {key: value for key, value in (await request.form()).multi_items() if isinstance(value, str)}


def client_address(request: Request) -> str:
    # As the server reports it; X-Forwarded-For is the server's business (see the module's docstring).
    return request.client.host if request.client else "unknown"


def sentence(exc: Exception) -> str:
    """A domain message ("a password needs at least 10 characters") as a sentence for a page."""
    message = str(exc)
    return message[:1].upper() + message[1:] + "."


def _secure(request: Request) -> bool:
    public_url = runtime_of(request).settings.public_url or ""
    return request.url.scheme == "https" or public_url.startswith("https:")


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only, so a crafted link cannot use the sign-in
    page to send someone elsewhere ("//host" and "/\\host" are other hosts to browsers)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(c == "\\" or ord(c) < 32 or ord(c) == 127 for c in target)
        or urlsplit(target).netloc
        or len(target) > 2000
    ):
        return "/inbox"
    return target


# -- forms without a session: a signed token bound to a cookie --------------------------------
#
# A signed token alone (HMAC of a nonce and the time) would prove the form was drawn by this server,
# but an attacker's server can draw one too and have a victim's browser post it: a cross-site post to
# /login signs the victim in to the attacker's account (login CSRF). So the token is also bound to a
# random value in an HttpOnly, SameSite=Lax cookie, which another site can neither read nor set, and
# which browsers do not even send with a cross-site POST. The token expires after an hour.


def _form_binding(request: Request) -> str:
    """The browser's form cookie value (a new one when it has none)."""
    current = request.cookies.get(FORM_COOKIE, "")
    return current if _FORM_COOKIE_SHAPE.fullmatch(current) else secrets.token_urlsafe(32)


def form_token(request: Request, purpose: str, binding: str) -> str:
    runtime = runtime_of(request)
    return sign_form_nonce(runtime.key_for(purpose), 0, binding, datetime.now(UTC))


def form_token_ok(request: Request, purpose: str, token: str) -> bool:
    binding = request.cookies.get(FORM_COOKIE, "")
    if not _FORM_COOKIE_SHAPE.fullmatch(binding):
        return False
    key = runtime_of(request).key_for(purpose)
    try:
        verify_form_nonce(key, token, 0, binding, datetime.now(UTC), FORM_TOKEN_AGE)
    except InvalidLink:  # forged, for another browser or page, or expired
        return False
    return True


def _form_page(request: Request, template: str, purpose: str, status_code: int = 200, **context: object) -> Response:
    """A page with a sessionless form: its token, and the cookie the token is bound to."""
    binding = _form_binding(request)
    response = render(
        request, template, status_code=status_code, form_token=form_token(request, purpose, binding), **context
    )
    # Set again each time, even when unchanged: the cookie must outlive the token just drawn.
    response.set_cookie(
        FORM_COOKIE,
        binding,
        max_age=int(FORM_TOKEN_AGE.total_seconds()) + 60,
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )
    return response


# -- pages ---------------------------------------------------------------------------------------


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/inbox", status_code=303)


@router.get("/setup")
async def setup_page(request: Request) -> Response:
    if await read(runtime_of(request), has_owner):
        return RedirectResponse("/login", status_code=303)
    return _setup_form(request)


def _setup_form(
    request: Request, status_code: int = 200, values: dict[str, str] | None = None, errors: dict[str, str] | None = None
) -> Response:
    values = values or {}
    return _form_page(
        request,
        "dashboard/setup.html",
        "dashboard-setup",
        status_code,
        name=values.get("name", ""),
        email=values.get("email", ""),
        errors=errors or {},
    )


@router.post("/setup")
async def setup(request: Request) -> Response:
    runtime = runtime_of(request)
    # Checked before anything else: once there is an owner this page never creates anything.
    if await read(runtime, has_owner):
        return RedirectResponse("/login", status_code=303)
    form = await posted(request)
    kept = {"name": form.get("name", ""), "email": form.get("email", "")}
    if not form_token_ok(request, "dashboard-setup", form.get("csrf_token", "")):
        return _setup_form(request, 403, kept, {"form": _STALE_FORM})
    password = form.get("password", "")
    if password != form.get("again", ""):
        return _setup_form(request, 400, kept, {"again": "The two passwords are not the same."})

    def create(conn: sa.Connection) -> str | None:
        try:
            owner = create_owner(conn, get_community(conn).id, kept["email"], password, kept["name"])
        except AccountError:
            if has_owner(conn):  # another setup won meanwhile
                return None
            raise
        token, _ = sign_in(conn, owner.email, password, client_address(request), datetime.now(UTC))
        return token

    try:
        token = await write(runtime, create)
    except AccountError as exc:
        field = "password" if "password" in str(exc) else "email"
        return _setup_form(request, 400, kept, {field: sentence(exc)})
    if token is None:
        return RedirectResponse("/login", status_code=303)
    response = RedirectResponse("/inbox", status_code=303)
    set_session_cookie(response, request, token)
    return response


@router.get("/login")
async def login_page(request: Request, next_path: Annotated[str, Query(alias="next")] = "/inbox") -> Response:
    if not await read(runtime_of(request), has_owner):
        return RedirectResponse("/setup", status_code=303)
    return _login_form(request, safe_next(next_path))


def _login_form(request: Request, next_path: str, status_code: int = 200, email: str = "", error: str = "") -> Response:
    return _form_page(
        request, "dashboard/login.html", "dashboard-login", status_code, email=email, error=error, next=next_path
    )


@router.post("/login")
async def login(request: Request) -> Response:
    runtime = runtime_of(request)
    form = await posted(request)
    email, next_path = form.get("email", "").strip(), safe_next(form.get("next"))
    if not form_token_ok(request, "dashboard-login", form.get("csrf_token", "")):
        return _login_form(request, next_path, 403, email, _STALE_FORM)
    password, client, now = form.get("password", ""), client_address(request), datetime.now(UTC)

    def attempt(conn: sa.Connection) -> tuple[str, Session] | AccountError:
        try:
            return sign_in(conn, email, password, client, now)
        except TooManyAttempts:
            raise
        except AccountError as exc:
            return exc  # returned, not raised: the failure sign_in recorded must be committed

    try:
        outcome = await write(runtime, attempt)
    except TooManyAttempts as exc:
        response = _login_form(request, next_path, 429, email, sentence(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(outcome, AccountError):
        return _login_form(request, next_path, 401, email, "Wrong e-mail address or password.")
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, request, outcome[0])
    return response


@router.post("/logout")
async def logout(request: Request, session: Annotated[Session, Depends(check_csrf)]) -> Response:
    token = request.cookies.get(COOKIE, "")
    await write(runtime_of(request), lambda conn: sign_out(conn, token))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", secure=_secure(request), httponly=True, samesite="lax")
    return response


@router.get("/account")
async def account_page(request: Request, session: CurrentSession, changed: bool = False) -> HTMLResponse:
    return _account_form(request, notice="Your password is changed; every other session has ended." if changed else "")


def _account_form(
    request: Request, status_code: int = 200, errors: dict[str, str] | None = None, notice: str = ""
) -> HTMLResponse:
    return render(
        request,
        "dashboard/account.html",
        status_code=status_code,
        section="account",
        errors=errors or {},
        notice=notice,
    )


@router.post("/account")
async def change_password(request: Request, session: Annotated[Session, Depends(check_csrf)]) -> Response:
    """A new password ends every session of the user (accounts.set_password), this one included; the
    browser that changed it gets a fresh session at once rather than being sent to sign in again."""
    form = await posted(request)
    current, password = form.get("current", ""), form.get("password", "")
    if password != form.get("again", ""):
        return _account_form(request, 400, {"again": "The two new passwords are not the same."})
    user, client, now = session.user, client_address(request), datetime.now(UTC)

    def change(conn: sa.Connection) -> str | None:
        # The current password is checked by signing in with it, so guesses from a stolen session
        # count against the same sign-in limits as guesses on /login.
        try:
            sign_in(conn, user.email, current, client, now)
        except TooManyAttempts:
            raise
        except AccountError:
            return None  # committed: the failure counts
        set_password(conn, user, password, by=user)  # a weak password raises: all of this is undone
        token, _ = sign_in(conn, user.email, password, client, now)
        return token

    try:
        token = await write(runtime_of(request), change)
    except TooManyAttempts as exc:
        refused = _account_form(request, 429, {"current": sentence(exc)})
        refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    except AccountError as exc:
        return _account_form(request, 400, {"password": sentence(exc)})
    if token is None:
        return _account_form(request, 400, {"current": "That is not your current password."})
    response = RedirectResponse("/account?changed=1", status_code=303)
    set_session_cookie(response, request, token)
    return response
