"""Values an installation generates once and keeps in its database."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa

from openline.db import schema
from openline.db.sql import insert_ignoring_duplicates

__all__ = ["derive_key", "purpose_key", "secret_key"]


def secret_key(conn: sa.Connection, configured: str | None) -> bytes:
    """The configured ``OPENLINE_SECRET_KEY``, or the one generated on first start.

    Keeping the generated key in the database means every process of an installation (several
    `openline web` behind a load balancer) signs and checks with the same key.
    """
    if configured:
        return configured.encode()
    table = schema.installation
    row = conn.execute(sa.select(table.c.value).where(table.c.key == "secret_key")).first()
    if row is not None:
        return str(row.value).encode()
    # Two processes starting at once may both get here; the first insert wins, both read it back.
    insert = insert_ignoring_duplicates(conn.dialect.name, table, ["key"])
    conn.execute(insert.values(key="secret_key", value=secrets.token_urlsafe(48)))
    return str(conn.execute(sa.select(table.c.value).where(table.c.key == "secret_key")).scalar_one()).encode()


def derive_key(root: bytes, purpose: str) -> bytes:
    """A key for one purpose only, so a signature made for one use is worthless for another."""
    return hmac.new(root, purpose.encode(), hashlib.sha256).digest()


def purpose_key(conn: sa.Connection, configured: str | None, purpose: str) -> bytes:
    """The key a running service derives for ``purpose`` (``Runtime.key_for``), for admin commands."""
    return derive_key(secret_key(conn, configured), purpose)
