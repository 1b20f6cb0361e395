"""Dashboard sign-in on SQLite and PostgreSQL: setup of the first owner, sign-in and its limits, CSRF,
sign-out, roles on /team, password changes, headers and cookies; and `openline users`.

Argon2 makes every hash and sign-in cost tens of milliseconds, so accounts are made straight in the
database and each test signs in only as often as what it checks needs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from openline.accounts import User, add_user, create_owner, list_users, sign_in
from openline.cli import app
from openline.communities import get_community
from openline.db import Database, schema
from openline.runtime import Runtime
from openline.states import UserRole
from openline.web.dashboard.auth import FORM_COOKIE, safe_next
from openline.web.dashboard.deps import COOKIE

from .test_cli import runner
from .test_join import Html

PASSWORD = "correct horse battery"
HOST = "sms.example.org"


def make_user(runtime: Runtime, email: str, role: UserRole = UserRole.owner) -> User:
    with runtime.db.write_engine.begin() as conn:
        community_id = get_community(conn).id
        if role is UserRole.owner:
            return create_owner(conn, community_id, email, PASSWORD, "Ada")
        owner = next(user for user in list_users(conn, community_id) if user.role is UserRole.owner)
        return add_user(conn, community_id, email, PASSWORD, role, email.split("@")[0].title(), by=owner)


def session_token(runtime: Runtime, email: str) -> tuple[str, str]:
    """A signed-in session, as the cookie token and its CSRF token."""
    with runtime.db.write_engine.begin() as conn:
        token, session = sign_in(conn, email, PASSWORD, "192.0.2.1", datetime.now(UTC))
    return token, session.csrf_token


def use(client: httpx.AsyncClient, token: str | None) -> None:
    """Act as the browser holding ``token`` (None: no session)."""
    client.cookies.delete(COOKIE)
    if token is not None:
        client.cookies.set(COOKIE, token, domain=HOST)


def users(runtime: Runtime) -> list[tuple[str, str]]:
    with runtime.db.read_engine.connect() as conn:
        u = schema.users.c
        return [(row.email, row.role) for row in conn.execute(sa.select(u.email, u.role).order_by(u.id))]


def cookie_header(response: httpx.Response, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}="))


def assert_dashboard_headers(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def assert_accessible_form(page: Html) -> None:
    """Every visible input has a label; every error is tied to its input."""
    for field in page.inputs:
        if field.get("type") != "hidden":
            assert field["id"] in page.labels, field
            if field.get("aria-invalid") == "true":
                assert any(
                    page.by_id.get(i, {}).get("attrs", {}).get("class") == "error"
                    for i in field["aria-describedby"].split()
                )


async def form_token(client: httpx.AsyncClient, path: str) -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return Html(response.text).hidden()["csrf_token"]


async def test_a_fresh_install_is_sent_to_setup(client: httpx.AsyncClient) -> None:
    home = await client.get("/")
    assert (home.status_code, home.headers["location"]) == (303, "/inbox")
    for path in ("/inbox", "/inbox/1", "/team", "/account", "/login"):
        response = await client.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/setup"), path


async def test_setup_creates_the_owner_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    page = await client.get("/setup")
    assert page.status_code == 200 and '<html lang="en">' in page.text
    assert_dashboard_headers(page)
    assert_accessible_form(Html(page.text))
    form_cookie = cookie_header(page, FORM_COOKIE).lower()
    assert "httponly" in form_cookie and "samesite=lax" in form_cookie and "secure" in form_cookie
    token = Html(page.text).hidden()["csrf_token"]
    typed = {"csrf_token": token, "name": "Ada Lovelace", "email": "ada@example.org", "password": PASSWORD}

    mismatch = await client.post("/setup", data={**typed, "again": PASSWORD + "!"})
    assert mismatch.status_code == 400
    shown = Html(mismatch.text)
    assert "not the same" in shown.text("again-error") and shown.value("email") == "ada@example.org"
    assert shown.value("name") == "Ada Lovelace" and PASSWORD not in mismatch.text
    assert_accessible_form(shown)
    short = await client.post("/setup", data={**typed, "password": "short", "again": "short"})
    assert short.status_code == 400 and "at least 10 characters" in Html(short.text).text("password-error")
    bad = await client.post("/setup", data={**typed, "email": "ada", "again": PASSWORD})
    assert bad.status_code == 400 and "not an e-mail address" in Html(bad.text).text("email-error")
    for forged in ("", token[:-2] + "xx"):
        refused = await client.post("/setup", data={**typed, "csrf_token": forged, "again": PASSWORD})
        assert refused.status_code == 403 and "try again" in refused.text
    assert users(runtime) == []

    created = await client.post("/setup", data={**typed, "again": PASSWORD})
    assert (created.status_code, created.headers["location"]) == (303, "/inbox")
    session_cookie = cookie_header(created, COOKIE).lower()
    for flag in ("httponly", "samesite=lax", "secure", "path=/", "max-age=1209600"):
        assert flag in session_cookie, flag
    assert users(runtime) == [("ada@example.org", "owner")]
    assert (await client.get("/account")).status_code == 200  # the cookie opens pages

    # Once there is an owner, setup never creates anything, even with a token from before.
    again = await client.post("/setup", data={**typed, "email": "eve@example.org", "again": PASSWORD})
    assert (again.status_code, again.headers["location"]) == (303, "/login")
    assert (await client.get("/setup")).headers["location"] == "/login"
    assert users(runtime) == [("ada@example.org", "owner")]


def test_only_local_paths_are_followed_after_sign_in() -> None:
    for safe in ("/team", "/inbox?view=pending", "/a//b"):
        assert safe_next(safe) == safe
    for unsafe in ("", None, "//evil.example", "https://evil.example", "/\\evil.example", "evil", "/x\r\nSet-Cookie:"):
        assert safe_next(unsafe) == "/inbox", unsafe


async def test_sign_in(client: httpx.AsyncClient, runtime: Runtime) -> None:
    make_user(runtime, "ada@example.org")
    page = await client.get("/login", params={"next": "/team"})
    assert page.status_code == 200 and Html(page.text).hidden()["next"] == "/team"
    assert_dashboard_headers(page)
    assert_accessible_form(Html(page.text))
    token = Html(page.text).hidden()["csrf_token"]
    right = {"csrf_token": token, "email": "Ada@Example.org", "password": PASSWORD, "next": "/team"}

    for forged in ("", token[:-2] + "xx"):
        refused = await client.post("/login", data={**right, "csrf_token": forged})
        assert refused.status_code == 403 and COOKIE not in refused.headers.get("set-cookie", "")
    # A token drawn for another browser (another form cookie) does not count either.
    client.cookies.set(FORM_COOKIE, "x" * 43, domain=HOST)
    assert (await client.post("/login", data=right)).status_code == 403
    token = await form_token(client, "/login")
    right["csrf_token"] = token

    wrong = await client.post("/login", data={**right, "password": "wrong password!"})
    unknown = await client.post("/login", data={**right, "email": "nobody@example.org"})
    assert wrong.status_code == unknown.status_code == 401
    assert (
        Html(wrong.text).text("login-error")
        == Html(unknown.text).text("login-error")
        == ("Wrong e-mail address or password.")
    )
    assert Html(wrong.text).value("email") == "Ada@Example.org" and "wrong password!" not in wrong.text

    signed_in = await client.post("/login", data=right)
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/team")
    cookie = cookie_header(signed_in, COOKIE).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    assert (await client.get("/team")).status_code == 200
    use(client, None)
    elsewhere = await client.post("/login", data={**right, "next": "//evil.example"})
    assert (elsewhere.status_code, elsewhere.headers["location"]) == (303, "/inbox")


async def test_five_wrong_passwords_make_sign_in_wait(client: httpx.AsyncClient, runtime: Runtime) -> None:
    make_user(runtime, "ada@example.org")
    token = await form_token(client, "/login")
    attempt = {"csrf_token": token, "email": "ada@example.org", "password": "not the password"}
    for _ in range(5):
        assert (await client.post("/login", data=attempt)).status_code == 401
    for password in ("not the password", PASSWORD):
        waiting = await client.post("/login", data={**attempt, "password": password})
        assert waiting.status_code == 429
        assert 0 < int(waiting.headers["retry-after"]) <= 15 * 60 + 1
        assert "too many failed sign-ins" in Html(waiting.text).text("login-error").lower()
        assert COOKIE not in waiting.headers.get("set-cookie", "")


async def test_sign_out_ends_the_session(client: httpx.AsyncClient, runtime: Runtime) -> None:
    make_user(runtime, "ada@example.org")
    token, csrf = session_token(runtime, "ada@example.org")
    use(client, token)
    assert (await client.post("/logout")).status_code == 403
    assert (await client.post("/logout", data={"csrf_token": "nope"})).status_code == 403
    assert (await client.get("/account")).status_code == 200
    out = await client.post("/logout", data={"csrf_token": csrf})
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    assert cookie_header(out, COOKIE).lower().count("max-age=0") == 1
    use(client, token)  # the old cookie, kept by someone: it opens nothing
    page = await client.get("/account")
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=%2Faccount")


async def test_roles_and_adding_a_teammate(client: httpx.AsyncClient, runtime: Runtime) -> None:
    make_user(runtime, "ada@example.org")
    make_user(runtime, "bo@example.org", UserRole.agent)
    make_user(runtime, "cy@example.org", UserRole.admin)
    agent, agent_csrf = session_token(runtime, "bo@example.org")
    use(client, agent)
    assert (await client.get("/team")).status_code == 403
    assert (await client.get("/account")).status_code == 200
    added = {"csrf_token": agent_csrf, "email": "di@example.org", "name": "Di", "role": "agent", "password": PASSWORD}
    assert (await client.post("/team", data=added)).status_code == 403

    admin, csrf = session_token(runtime, "cy@example.org")
    use(client, admin)
    page = await client.get("/team")
    assert page.status_code == 200
    assert_dashboard_headers(page)
    assert_accessible_form(Html(page.text))
    for shown in ("ada@example.org", "bo@example.org", "Cy", "agent", "admin", "user.add", "user.sign_in"):
        assert shown in page.text, shown
    assert (await client.post("/team", data={**added, "csrf_token": "nope"})).status_code == 403

    refused = await client.post("/team", data={**added, "csrf_token": csrf, "role": "owner"})
    assert refused.status_code == 400 and "agent or admin" in Html(refused.text).text("role-error")
    duplicate = await client.post("/team", data={**added, "csrf_token": csrf, "email": "BO@example.org"})
    assert duplicate.status_code == 400 and "already has an account" in Html(duplicate.text).text("email-error")
    assert Html(duplicate.text).value("email") == "BO@example.org" and Html(duplicate.text).value("name") == "Di"
    assert_accessible_form(Html(duplicate.text))

    done = await client.post("/team", data={**added, "csrf_token": csrf})
    assert (done.status_code, done.headers["location"]) == (303, "/team?added=1")
    assert ("di@example.org", "agent") in users(runtime)
    after = await client.get("/team?added=1")
    assert "Teammate added" in after.text and "di@example.org" in after.text
    # Newest first: the addition, by the admin.
    assert "Cy · <code>user.add</code> · di@example.org" in " ".join(after.text.split())


async def test_changing_the_password_ends_the_other_sessions(client: httpx.AsyncClient, runtime: Runtime) -> None:
    make_user(runtime, "ada@example.org")
    other, _ = session_token(runtime, "ada@example.org")
    mine, csrf = session_token(runtime, "ada@example.org")
    use(client, mine)
    new = "a new and better passphrase"
    page = await client.get("/account")
    assert page.status_code == 200 and "ada@example.org" in page.text
    assert_accessible_form(Html(page.text))

    change = {"csrf_token": csrf, "current": PASSWORD, "password": new, "again": new}
    assert (await client.post("/account", data={**change, "csrf_token": ""})).status_code == 403
    mismatch = await client.post("/account", data={**change, "again": new + "!"})
    assert mismatch.status_code == 400 and "not the same" in Html(mismatch.text).text("again-error")
    wrong = await client.post("/account", data={**change, "current": "not my password"})
    assert wrong.status_code == 400 and "not your current password" in Html(wrong.text).text("current-error")
    weak = await client.post("/account", data={**change, "password": "short", "again": "short"})
    assert weak.status_code == 400 and "at least 10" in Html(weak.text).text("password-error")
    assert_accessible_form(Html(weak.text))
    use(client, other)
    assert (await client.get("/account")).status_code == 200  # nothing changed yet
    use(client, mine)

    changed = await client.post("/account", data=change)
    assert (changed.status_code, changed.headers["location"]) == (303, "/account?changed=1")
    fresh = cookie_header(changed, COOKIE)
    assert "httponly" in fresh.lower()
    notice = await client.get("/account?changed=1")  # the new cookie, from the jar
    assert notice.status_code == 200 and "every other session has ended" in notice.text
    for ended in (other, mine):
        use(client, ended)
        assert (await client.get("/account")).status_code == 303


@pytest.fixture
def cli_env(database_url: str) -> dict[str, str]:
    return {"OPENLINE_DATABASE_URL": database_url}


def cli(env: dict[str, str], *args: str, given: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env, input=given)
    return result.exit_code, result.output


def test_users_from_the_command_line(cli_env: dict[str, str]) -> None:
    code, output = cli(cli_env, "users", "add", "bo@example.org", "--role", "agent", "--password-stdin", given="x\n")
    assert code == 1 and "add the owner first" in output
    code, output = cli(
        cli_env, "users", "add", "ada@example.org", "--role", "owner", "--name", "Ada", given="short\nshort\n"
    )
    assert code == 1 and "at least 10 characters" in output
    code, output = cli(cli_env, "users", "add", "ada@example.org", "--role", "owner", given=f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0 and "added ada@example.org (owner)" in output and PASSWORD not in output
    code, output = cli(cli_env, "users", "add", "eve@example.org", "--role", "owner", "--password-stdin", given="x\n")
    assert code == 1 and "already has an owner" in output
    code, output = cli(
        cli_env, "users", "add", "bo@example.org", "--role", "agent", "--name", "Bo", "--password-stdin", given=PASSWORD
    )
    assert code == 0 and "added bo@example.org (agent)" in output

    code, output = cli(cli_env, "users", "list")
    assert code == 0 and "ada@example.org" in output and "Bo" in output and "agent" in output

    code, output = cli(cli_env, "users", "password", "nobody@example.org", "--password-stdin", given=PASSWORD)
    assert code == 1 and "no account" in output
    code, output = cli(cli_env, "users", "password", "Bo@example.org", given="a fresh passphrase\na fresh passphrase\n")
    assert code == 0 and "changed the password of bo@example.org" in output

    database = Database(cli_env["OPENLINE_DATABASE_URL"])
    try:
        with database.read_engine.connect() as conn:
            a, u = schema.audit_log.c, schema.users.c
            log = conn.execute(
                sa.select(a.action, a.target, u.email)
                .join_from(schema.audit_log, schema.users, a.user_id == u.id)
                .order_by(a.id)
            ).all()
    finally:
        database.dispose()
    assert [tuple(row) for row in log] == [
        ("user.add", "ada@example.org", "ada@example.org"),
        ("user.add", "bo@example.org", "ada@example.org"),
        ("user.password", "bo@example.org", "ada@example.org"),
    ]
