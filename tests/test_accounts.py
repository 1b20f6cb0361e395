"""Dashboard accounts on SQLite and PostgreSQL: the first owner, teammates, sign-in and its limits,
sessions, passwords, the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from openline.accounts import (
    AccountError,
    TooManyAttempts,
    add_user,
    create_owner,
    has_owner,
    list_users,
    session_for,
    set_password,
    sign_in,
    sign_out,
)
from openline.communities import bootstrap
from openline.db import Database, schema
from openline.states import UserRole

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
PASSWORD = "correct horse battery"


@pytest.fixture
def conn(db: Database) -> sa.Connection:
    with db.write_engine.begin() as connection:
        bootstrap(connection, "Test")
        yield connection


def community(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(schema.communities.c.id)).scalar_one())


def test_the_first_owner_is_created_once(conn: sa.Connection) -> None:
    assert not has_owner(conn)
    with pytest.raises(AccountError, match="at least 10 characters"):
        create_owner(conn, community(conn), "ada@example.org", "short", "Ada")
    with pytest.raises(AccountError, match="not an e-mail address"):
        create_owner(conn, community(conn), "ada", PASSWORD, "Ada")
    owner = create_owner(conn, community(conn), " Ada@Example.org ", PASSWORD, "Ada")
    assert (owner.email, owner.role, owner.label) == ("ada@example.org", UserRole.owner, "Ada")
    assert has_owner(conn)
    with pytest.raises(AccountError, match="already has an owner"):
        create_owner(conn, community(conn), "eve@example.org", PASSWORD, None)
    stored = conn.execute(sa.select(schema.users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_teammates_and_roles(conn: sa.Connection) -> None:
    owner = create_owner(conn, community(conn), "ada@example.org", PASSWORD, "Ada")
    agent = add_user(conn, community(conn), "bo@example.org", PASSWORD, UserRole.agent, by=owner)
    with pytest.raises(AccountError, match="only the owner or an admin"):
        add_user(conn, community(conn), "cy@example.org", PASSWORD, UserRole.agent, by=agent)
    with pytest.raises(AccountError, match="already has an account"):
        add_user(conn, community(conn), "BO@example.org", PASSWORD, UserRole.admin, by=owner)
    assert [u.email for u in list_users(conn, community(conn))] == ["ada@example.org", "bo@example.org"]
    assert owner.may(UserRole.admin) and not agent.may(UserRole.admin) and agent.may(UserRole.agent)
    actions = conn.execute(sa.select(schema.audit_log.c.action, schema.audit_log.c.target)).all()
    assert [tuple(a) for a in actions] == [("user.add", "ada@example.org"), ("user.add", "bo@example.org")]


def test_sign_in_sessions_and_sign_out(conn: sa.Connection) -> None:
    owner = create_owner(conn, community(conn), "ada@example.org", PASSWORD, None)
    with pytest.raises(AccountError, match="wrong e-mail address or password"):
        sign_in(conn, "ada@example.org", "not the password", "10.0.0.1", NOW)
    with pytest.raises(AccountError, match="wrong e-mail address or password"):
        sign_in(conn, "nobody@example.org", PASSWORD, "10.0.0.1", NOW)
    token, session = sign_in(conn, "ADA@example.org", PASSWORD, "10.0.0.1", NOW)
    assert session.user == owner and len(session.csrf_token) >= 40
    assert conn.execute(sa.select(schema.user_sessions.c.token_hash)).scalar_one() != token
    assert session_for(conn, token, NOW + timedelta(hours=1)) == session
    assert session_for(conn, token + "x", NOW) is None
    assert session_for(conn, token, NOW + timedelta(hours=13)) is None  # idle too long
    sign_out(conn, token)
    assert session_for(conn, token, NOW) is None


def test_too_many_failures_make_sign_in_wait(conn: sa.Connection) -> None:
    create_owner(conn, community(conn), "ada@example.org", PASSWORD, None)
    for minute in range(5):
        with pytest.raises(AccountError):
            sign_in(conn, "ada@example.org", "guess number x", f"10.0.0.{minute}", NOW + timedelta(minutes=minute))
    with pytest.raises(TooManyAttempts) as waiting:
        sign_in(conn, "ada@example.org", PASSWORD, "10.0.0.9", NOW + timedelta(minutes=5))
    assert waiting.value.retry_after == 10 * 60 + 1  # the first failure leaves the 15 minutes then
    token, _ = sign_in(conn, "ada@example.org", PASSWORD, "10.0.0.9", NOW + timedelta(minutes=16))
    assert token


def test_a_new_password_ends_every_session(conn: sa.Connection) -> None:
    owner = create_owner(conn, community(conn), "ada@example.org", PASSWORD, None)
    token, _ = sign_in(conn, "ada@example.org", PASSWORD, "10.0.0.1", NOW)
    set_password(conn, owner, "a brand new passphrase", by=owner)
    assert session_for(conn, token, NOW) is None
    with pytest.raises(AccountError):
        sign_in(conn, "ada@example.org", PASSWORD, "10.0.0.1", NOW)
    assert sign_in(conn, "ada@example.org", "a brand new passphrase", "10.0.0.1", NOW)
