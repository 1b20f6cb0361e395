"""Communities, and the embedded default a first start creates."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from openline.db import schema
from openline.senders import SANDBOX_NUMBER, add_sender

__all__ = [
    "DEFAULT_SLUG",
    "Community",
    "UnknownCommunity",
    "bootstrap",
    "get_community",
]

DEFAULT_SLUG = "default"


class UnknownCommunity(LookupError):
    pass


@dataclass(frozen=True)
class Community:
    id: int
    slug: str
    name: str


def get_community(conn: sa.Connection, slug: str = DEFAULT_SLUG) -> Community:
    row = conn.execute(
        sa.select(schema.communities.c.id, schema.communities.c.slug, schema.communities.c.name).where(
            schema.communities.c.slug == slug
        )
    ).one_or_none()
    if row is None:
        raise UnknownCommunity(f"no community {slug!r}")
    return Community(row.id, row.slug, row.name)


def bootstrap(conn: sa.Connection, community_name: str) -> Community | None:
    """On an installation with no community yet, create the default one and its sandbox sender.

    Returns the community it created, or None when there was one already.
    """
    if conn.execute(sa.select(schema.communities.c.id).limit(1)).first() is not None:
        return None
    community_id = conn.execute(
        sa.insert(schema.communities)
        .values(slug=DEFAULT_SLUG, name=community_name, settings={})
        .returning(schema.communities.c.id)
    ).scalar_one()
    add_sender(conn, community_id, SANDBOX_NUMBER, provider="sandbox", mps=10.0)
    return Community(community_id, DEFAULT_SLUG, community_name)
