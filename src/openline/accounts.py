"""Dashboard accounts: the owner and their team, passwords, sessions, sign-in limits and the audit log.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended set). A
session is a random token in a cookie; only its SHA-256 is stored. Failed sign-ins are counted per
e-mail address and per client address in the database, so every web process sees the same count.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from openline.db import schema
from openline.states import UserRole

__all__ = [
    "MIN_PASSWORD",
    "SESSION_LIFETIME",
    "AccountError",
    "Session",
    "TooManyAttempts",
    "User",
    "add_user",
    "audit",
    "create_owner",
    "has_owner",
    "list_users",
    "session_for",
    "set_password",
    "sign_in",
    "sign_out",
]

MIN_PASSWORD = 10
SESSION_LIFETIME = timedelta(days=14)
# A session not used for this long ends, whatever its lifetime.
IDLE_LIMIT = timedelta(hours=12)
# Sign-in waits after this many failures in the window: per address a person types, per client address.
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_CLIENT = 20

_hasher = PasswordHasher()
u, s = schema.users.c, schema.user_sessions.c


class AccountError(ValueError):
    pass


class TooManyAttempts(AccountError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {max(1, retry_after // 60)} minute(s)")
        self.retry_after = retry_after


@dataclass(frozen=True)
class User:
    id: int
    community_id: int
    email: str
    name: str | None
    role: UserRole

    @property
    def label(self) -> str:
        return self.name or self.email

    def may(self, role: UserRole) -> bool:
        """True when the user's role is ``role`` or above (owner > admin > agent)."""
        order = [UserRole.agent, UserRole.admin, UserRole.owner]
        return order.index(self.role) >= order.index(role)


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str


_USER_COLUMNS = (u.id, u.community_id, u.email, u.name, u.role)


def _user(row: Any) -> User:
    return User(int(row.id), int(row.community_id), row.email, row.name, UserRole(row.role))


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so a wrong address takes as long as a wrong password
    (made on first use: hashing costs tens of milliseconds, which no command should pay at import)."""
    return _hasher.hash(secrets.token_hex(16))


def _email(raw: str) -> str:
    email = raw.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > 320 or any(c.isspace() for c in email):
        raise AccountError(f"{raw.strip()!r} is not an e-mail address")
    return email


def _check_password(password: str, email: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise AccountError("a password is at most 1,024 characters")
    if password.strip().lower() == email or len(set(password)) < 4:
        raise AccountError("choose a password that is harder to guess")


def has_owner(conn: sa.Connection) -> bool:
    """Whether the installation has an owner yet (the setup page is shown until it does)."""
    return conn.execute(sa.select(u.id).where(u.role == UserRole.owner).limit(1)).first() is not None


def create_owner(conn: sa.Connection, community_id: int, email: str, password: str, name: str | None) -> User:
    """The first account. Refused once an owner exists: the setup page cannot be replayed."""
    # Two first owners at once: on PostgreSQL the second waits on this row lock, then finds the first
    # (SQLite's BEGIN IMMEDIATE already lets one writer in at a time).
    c = schema.communities.c
    conn.execute(sa.select(c.id).where(c.id == community_id).with_for_update())
    if has_owner(conn):
        raise AccountError("this installation already has an owner; sign in instead")
    return add_user(conn, community_id, email, password, UserRole.owner, name, by=None)


def add_user(
    conn: sa.Connection,
    community_id: int,
    email: str,
    password: str,
    role: UserRole,
    name: str | None = None,
    *,
    by: User | None,
) -> User:
    address = _email(email)
    _check_password(password, address)
    if by is not None and not by.may(UserRole.admin):
        raise AccountError("only the owner or an admin adds teammates")
    if role is UserRole.owner and by is not None:
        raise AccountError("there is one owner")
    exists = conn.execute(sa.select(u.id).where(u.community_id == community_id, u.email == address)).first()
    if exists is not None:
        raise AccountError(f"{address} already has an account")
    clean_name = (name or "").strip() or None
    new_id = conn.execute(
        sa.insert(schema.users)
        .values(
            community_id=community_id,
            email=address,
            password_hash=_hasher.hash(password),
            role=role,
            name=clean_name,
        )
        .returning(u.id)
    ).scalar_one()
    user = User(int(new_id), community_id, address, clean_name, role)
    audit(conn, user if by is None else by, "user.add", address, {"role": role.value})
    return user


def list_users(conn: sa.Connection, community_id: int) -> list[User]:
    rows = conn.execute(
        sa.select(*_USER_COLUMNS).where(u.community_id == community_id, u.disabled_at.is_(None)).order_by(u.id)
    )
    return [_user(row) for row in rows]


def sign_in(conn: sa.Connection, email: str, password: str, client: str, now: datetime) -> tuple[str, Session]:
    """A new session for the right e-mail and password: (cookie token, session). Raises TooManyAttempts
    while the address or the client has failed too often lately, AccountError for wrong credentials
    (never saying which of the two was wrong). A failure is recorded on ``conn`` before it raises: the
    caller commits it anyway, or the limit never counts it."""
    address = email.strip().lower()
    keys = (f"email:{address}"[:400], f"ip:{client}"[:400])
    _refuse_if_limited(conn, keys, now)
    row = conn.execute(
        sa.select(*_USER_COLUMNS, u.password_hash).where(u.email == address, u.disabled_at.is_(None)).limit(1)
    ).one_or_none()
    try:
        _hasher.verify(row.password_hash if row is not None else _dummy_hash(), password)
        if row is None:
            raise VerificationError("no such user")
    except (VerificationError, InvalidHashError):
        conn.execute(sa.insert(schema.login_failures), [{"key": key, "failed_at": now} for key in keys])
        raise AccountError("wrong e-mail address or password") from None
    user = _user(row)
    if _hasher.check_needs_rehash(row.password_hash):
        conn.execute(sa.update(schema.users).where(u.id == user.id).values(password_hash=_hasher.hash(password)))
    conn.execute(sa.delete(schema.login_failures).where(schema.login_failures.c.key == keys[0]))
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    conn.execute(
        sa.insert(schema.user_sessions).values(
            token_hash=_hash(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    audit(conn, user, "user.sign_in", address, {})
    return token, Session(user, csrf)


def _refuse_if_limited(conn: sa.Connection, keys: tuple[str, str], now: datetime) -> None:
    f = schema.login_failures.c
    since = now - FAILURE_WINDOW
    for key, limit in zip(keys, (MAX_FAILURES_PER_EMAIL, MAX_FAILURES_PER_CLIENT), strict=True):
        times = (
            conn.execute(
                sa.select(f.failed_at)
                .where(f.key == key, f.failed_at > since)
                .order_by(f.failed_at.desc())
                .limit(limit)
            )
            .scalars()
            .all()
        )
        if len(times) >= limit:
            # Allowed again once the oldest of the last ``limit`` failures leaves the window.
            raise TooManyAttempts(int((times[-1] + FAILURE_WINDOW - now).total_seconds()) + 1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_for(conn: sa.Connection, token: str | None, now: datetime) -> Session | None:
    """The live session a cookie token opens, or None (unknown, expired, idle too long, user disabled)."""
    if not token or len(token) > 100:
        return None
    row = conn.execute(
        sa.select(*_USER_COLUMNS, s.csrf_token, s.last_seen_at, s.expires_at)
        .join_from(schema.user_sessions, schema.users, s.user_id == u.id)
        .where(s.token_hash == _hash(token), u.disabled_at.is_(None))
    ).one_or_none()
    if row is None or row.expires_at <= now or row.last_seen_at + IDLE_LIMIT <= now:
        return None
    if now - row.last_seen_at > timedelta(minutes=5):  # not a write per request
        conn.execute(sa.update(schema.user_sessions).where(s.token_hash == _hash(token)).values(last_seen_at=now))
    return Session(_user(row), row.csrf_token)


def sign_out(conn: sa.Connection, token: str) -> None:
    conn.execute(sa.delete(schema.user_sessions).where(s.token_hash == _hash(token)))


def set_password(conn: sa.Connection, user: User, password: str, *, by: User) -> None:
    """A new password; every session of the user ends (a stolen session dies with the old password)."""
    if by.id != user.id and not by.may(UserRole.admin):
        raise AccountError("only the owner or an admin changes someone else's password")
    _check_password(password, user.email)
    conn.execute(sa.update(schema.users).where(u.id == user.id).values(password_hash=_hasher.hash(password)))
    conn.execute(sa.delete(schema.user_sessions).where(s.user_id == user.id))
    audit(conn, by, "user.password", user.email, {})


def audit(conn: sa.Connection, by: User, action: str, target: str | None, details: dict[str, Any]) -> None:
    """Record an administrative action (who, what, on what) in the community's audit log."""
    conn.execute(
        sa.insert(schema.audit_log).values(
            community_id=by.community_id,
            user_id=by.id,
            action=action,
            target=(target or "")[:200] or None,
            details=details,
        )
    )
