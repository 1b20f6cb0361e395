"""Saved segments: a community's named filters, kept in their JSON form and counted live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from openline.db import schema
from openline.segments.fields import FilterError
from openline.segments.model import Filter, from_json, to_json
from openline.segments.query import count_members

__all__ = [
    "SavedSegment",
    "counted_segments",
    "delete_segment",
    "get_segment",
    "list_segments",
    "save_segment",
]

MAX_NAME = 100  # segments.name


@dataclass(frozen=True)
class SavedSegment:
    name: str
    filter: Filter
    created_at: datetime


def _name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValueError("a segment needs a name")
    if len(name) > MAX_NAME:
        raise ValueError(f"a segment name is at most {MAX_NAME} characters (got {len(name)})")
    if not name.isprintable():
        raise ValueError("a segment name cannot contain control characters")
    return name


def save_segment(conn: sa.Connection, community_id: int, name: str, node: Filter | Mapping[str, Any]) -> bool:
    """Save the filter under ``name``, replacing a segment of that name; True when it is new."""
    name = _name(name)
    checked = from_json(node) if isinstance(node, Mapping) else node
    s = schema.segments.c
    updated = conn.execute(
        sa.update(schema.segments).where(s.community_id == community_id, s.name == name).values(filter=to_json(checked))
    )
    if updated.rowcount:
        return False
    conn.execute(sa.insert(schema.segments).values(community_id=community_id, name=name, filter=to_json(checked)))
    return True


def get_segment(conn: sa.Connection, community_id: int, name: str) -> SavedSegment | None:
    s = schema.segments.c
    row = conn.execute(
        sa.select(s.name, s.filter, s.created_at).where(s.community_id == community_id, s.name == name.strip())
    ).one_or_none()
    return None if row is None else _segment(row.name, row.filter, row.created_at)


def list_segments(conn: sa.Connection, community_id: int) -> list[SavedSegment]:
    """The community's saved segments, by name."""
    s = schema.segments.c
    rows = conn.execute(
        sa.select(s.name, s.filter, s.created_at).where(s.community_id == community_id).order_by(s.name)
    )
    return [_segment(row.name, row.filter, row.created_at) for row in rows]


def delete_segment(conn: sa.Connection, community_id: int, name: str) -> bool:
    """Delete the named segment; False when there is none."""
    s = schema.segments.c
    result = conn.execute(sa.delete(schema.segments).where(s.community_id == community_id, s.name == name.strip()))
    return result.rowcount == 1


def counted_segments(conn: sa.Connection, community_id: int, now: datetime) -> list[tuple[SavedSegment, int]]:
    """Every saved segment with how many members match it now."""
    return [
        (found, count_members(conn, community_id, found.filter, now)) for found in list_segments(conn, community_id)
    ]


def _segment(name: str, stored: object, created_at: datetime) -> SavedSegment:
    try:
        return SavedSegment(name, from_json(stored), created_at)
    except FilterError as exc:
        # Saved by an older version that understood more, or edited by hand.
        raise FilterError(f"saved segment {name!r}: {exc}") from None
