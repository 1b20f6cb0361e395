"""Values an installation generates once and keeps in its database."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa

from openline.db import DatabaseError, schema
from openline.db.sql import insert_ignoring_duplicates

__all__ = ["SecretKeyChanged", "derive_key", "purpose_key", "secret_key"]

_FINGERPRINT = "secret_key_fingerprint"


class SecretKeyChanged(DatabaseError):
    """The secret key is not the one the database's suppression list was hashed with."""


def secret_key(conn: sa.Connection, configured: str | None) -> bytes:
    """The configured ``OPENLINE_SECRET_KEY``, or the one generated on first start.

    Keeping the generated key in the database means every process of an installation (several
    `openline web` behind a load balancer) signs and checks with the same key.
    """
    key = configured.encode() if configured else _generated_key(conn)
    _check_unchanged(conn, key)
    return key


def _generated_key(conn: sa.Connection) -> bytes:
    table = schema.installation
    row = conn.execute(sa.select(table.c.value).where(table.c.key == "secret_key")).first()
    if row is not None:
        return str(row.value).encode()
    # Two processes starting at once may both get here; the first insert wins, both read it back.
    insert = insert_ignoring_duplicates(conn.dialect.name, table, ["key"])
    conn.execute(insert.values(key="secret_key", value=secrets.token_urlsafe(48)))
    return str(conn.execute(sa.select(table.c.value).where(table.c.key == "secret_key")).scalar_one()).encode()


def _check_unchanged(conn: sa.Connection, key: bytes) -> None:
    """Refuse a key other than the one the suppression list was hashed with.

    Erased numbers are kept only as HMACs under a key derived from this one (openline.erasure), so
    under another key none would match: erased people could be texted and imported again. The hashes
    cannot be carried over (the numbers are gone), so a changed key is refused while the list holds
    anyone. The key itself stays out of the database when configured; only a fingerprint is kept.
    """
    table = schema.installation
    fingerprint = derive_key(key, _FINGERPRINT).hex()[:32]
    stored = sa.select(table.c.value).where(table.c.key == _FINGERPRINT)
    if conn.execute(stored).scalar_one_or_none() is None:
        # The first start with this check; a process starting at once with another key loses the race.
        insert = insert_ignoring_duplicates(conn.dialect.name, table, ["key"])
        conn.execute(insert.values(key=_FINGERPRINT, value=fingerprint))
    if conn.execute(stored).scalar_one() == fingerprint:
        return
    erased = conn.execute(sa.select(sa.func.count()).select_from(schema.suppressions)).scalar_one()
    if erased:
        raise SecretKeyChanged(
            "the secret key is not the one this database's suppression list was made with: its "
            f"{erased:,} erased number{'s' if erased != 1 else ''} would no longer be recognised and could be "
            "texted again; set OPENLINE_SECRET_KEY back to the previous key (unset, openline uses the one it "
            "generated and keeps in the database)"
        )
    conn.execute(sa.update(table).where(table.c.key == _FINGERPRINT).values(value=fingerprint))


def derive_key(root: bytes, purpose: str) -> bytes:
    """A key for one purpose only, so a signature made for one use is worthless for another."""
    return hmac.new(root, purpose.encode(), hashlib.sha256).digest()


def purpose_key(conn: sa.Connection, configured: str | None, purpose: str) -> bytes:
    """The key a running service derives for ``purpose`` (``Runtime.key_for``), for admin commands."""
    return derive_key(secret_key(conn, configured), purpose)
