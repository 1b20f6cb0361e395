"""Exporting a community's members, streaming: CSV (one line per member) or JSON lines (with the ledger)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import sqlalchemy as sa

from openline.csv_safety import spreadsheet_safe
from openline.db import schema
from openline.members import EVENT_COLUMNS, PROFILE_COLUMNS, PROFILE_FIELDS, consent_event_dict, profile_dict
from openline.states import ConsentSource, MemberState

__all__ = ["CSV_COLUMNS", "ExportFormat", "export_lines"]

ExportFormat = Literal["csv", "jsonl"]
_mem = schema.members.c

EXPORT_PAGE = 1_000
CSV_COLUMNS = (
    "phone",
    "state",
    *PROFILE_FIELDS,
    "time_zone",
    "tags",
    "custom",
    "consent_source",
    "consent_at",
    "joined_at",
    "created_at",
)


def export_lines(engine: sa.Engine, community_id: int, fmt: ExportFormat) -> Iterator[str]:
    """A community's members as CSV or JSON lines, a page at a time (each page its own short read).

    CSV: the profile, tags (comma-separated), custom fields as JSON, and for subscribed members the
    consent that subscribed them (so the file imports back as it was). JSONL: one object per member
    with the profile, tags and the full consent ledger.
    """
    if fmt == "csv":
        yield _csv_text([CSV_COLUMNS])
    after = 0
    while True:
        with engine.connect() as conn:
            page = _page(conn, community_id, after)
        if not page:
            return
        after = page[-1]["id"]
        if fmt == "jsonl":
            yield "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in page)
        else:
            yield _csv_text([_csv_row(record) for record in page])


def _page(conn: sa.Connection, community_id: int, after: int) -> list[dict[str, Any]]:
    members = conn.execute(
        sa.select(*PROFILE_COLUMNS)
        .where(_mem.community_id == community_id, _mem.id > after)
        .order_by(_mem.id)
        .limit(EXPORT_PAGE)
    ).mappings()
    records = [{**profile_dict(row), "tags": [], "consent": []} for row in members]
    if not records:
        return records
    by_id = {r["id"]: r for r in records}
    ids = list(by_id)
    tags = schema.member_tags.c
    for member_id, tag in conn.execute(
        sa.select(tags.member_id, tags.tag).where(tags.member_id.in_(ids)).order_by(tags.member_id, tags.tag)
    ):
        by_id[member_id]["tags"].append(tag)
    events = schema.consent_events.c
    for event in conn.execute(
        sa.select(*EVENT_COLUMNS).where(events.member_id.in_(ids)).order_by(events.member_id, events.id)
    ).mappings():
        by_id[event["member_id"]]["consent"].append(consent_event_dict(event))
    return records


def _csv_row(record: dict[str, Any]) -> list[str]:
    source = at = ""
    if record["state"] == MemberState.subscribed:
        for event in reversed(record["consent"]):
            if event["new_state"] == MemberState.subscribed:
                evidence = event["evidence"] or {}
                if event["source"] == ConsentSource.import_file and "consent_source" in evidence:
                    source, at = evidence["consent_source"], evidence.get("consent_at", event["occurred_at"])
                else:
                    source, at = event["source"], event["occurred_at"]
                break
    values = {
        **record,
        "tags": ",".join(record["tags"]),
        "custom": json.dumps(record["custom"], ensure_ascii=False) if record["custom"] else "",
        "consent_source": source,
        "consent_at": at,
    }
    # Every cell, since most hold what people typed on the sign-up form or a file brought; phone numbers
    # (E.164) and the values openline makes (states, ISO times, JSON objects) come through unchanged.
    return ["" if values[c] is None else spreadsheet_safe(str(values[c])) for c in CSV_COLUMNS]


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
