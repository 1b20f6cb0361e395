"""API tokens: shown once when created, stored only as a hash, revocable by name."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from openline.db import schema

__all__ = ["ApiToken", "DuplicateTokenName", "authenticate", "create_token", "list_tokens", "revoke_token"]

PREFIX = "ol_"


class DuplicateTokenName(ValueError):
    pass


@dataclass(frozen=True)
class ApiToken:
    id: int
    community_id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: sa.Connection, community_id: int, name: str) -> str:
    """Create a token and return it; this is the only time its value is known."""
    name = name.strip()
    if not name:
        raise ValueError("a token needs a name (--name), so it can be revoked later")
    exists = conn.execute(
        sa.select(schema.api_tokens.c.id).where(
            schema.api_tokens.c.community_id == community_id, schema.api_tokens.c.name == name
        )
    ).first()
    if exists is not None:
        raise DuplicateTokenName(f"a token named {name!r} exists already")
    token = PREFIX + secrets.token_urlsafe(32)
    conn.execute(sa.insert(schema.api_tokens).values(community_id=community_id, name=name, token_hash=_hash(token)))
    return token


def revoke_token(conn: sa.Connection, community_id: int, name: str) -> bool:
    """Revoke the named token; False when there is no such live token."""
    result = conn.execute(
        sa.update(schema.api_tokens)
        .where(
            schema.api_tokens.c.community_id == community_id,
            schema.api_tokens.c.name == name,
            schema.api_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=schema.utcnow())
    )
    return result.rowcount == 1


def list_tokens(conn: sa.Connection, community_id: int) -> list[ApiToken]:
    t = schema.api_tokens.c
    rows = conn.execute(
        sa.select(t.id, t.community_id, t.name, t.created_at, t.revoked_at)
        .where(t.community_id == community_id)
        .order_by(t.id)
    )
    return [ApiToken(*row) for row in rows]


def authenticate(conn: sa.Connection, token: str) -> ApiToken | None:
    """The live token matching ``token``, or None."""
    t = schema.api_tokens.c
    row = conn.execute(
        sa.select(t.id, t.community_id, t.name, t.created_at, t.revoked_at).where(
            t.token_hash == _hash(token), t.revoked_at.is_(None)
        )
    ).one_or_none()
    return None if row is None else ApiToken(*row)
