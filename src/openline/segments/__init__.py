"""Member segments: filters over a community's members, as JSON, as text, as SQL and in Python.

    >>> node = parse_filter("country = IT and tag milan and not replied within 30 days")
    >>> count_members(conn, community_id, node, now)        # a live count
    >>> member_ids(community_id, node, now=now)              # SELECT members.id ..., for fan-out

The JSON form is described in `openline.segments.model`, the text form in `openline.segments.text`;
`docs/segments.md` has both with every field and operator.
"""

from __future__ import annotations

import json

from openline.segments.evaluate import MemberFacts, age, matches
from openline.segments.fields import Engagement, FieldType, FilterError, Op
from openline.segments.model import (
    Activity,
    And,
    Condition,
    Filter,
    Not,
    Or,
    Tag,
    activity,
    all_of,
    any_of,
    condition,
    from_json,
    to_json,
)
from openline.segments.query import count_members, member_filter, member_ids
from openline.segments.store import (
    SavedSegment,
    counted_segments,
    delete_segment,
    get_segment,
    list_segments,
    save_segment,
)
from openline.segments.text import parse_text, to_text

__all__ = [
    "Activity",
    "And",
    "Condition",
    "Engagement",
    "FieldType",
    "Filter",
    "FilterError",
    "MemberFacts",
    "Not",
    "Op",
    "Or",
    "SavedSegment",
    "Tag",
    "activity",
    "age",
    "all_of",
    "any_of",
    "condition",
    "count_members",
    "counted_segments",
    "delete_segment",
    "from_json",
    "get_segment",
    "list_segments",
    "matches",
    "member_filter",
    "member_ids",
    "parse_filter",
    "parse_text",
    "save_segment",
    "to_json",
    "to_text",
]


def parse_filter(written: str) -> Filter:
    """A filter as a person gives it: JSON when it starts with ``{``, else the text form."""
    if written.lstrip().startswith("{"):
        try:
            data = json.loads(written)
        except json.JSONDecodeError as exc:
            raise FilterError(f"not valid JSON: {exc.msg}", column=exc.pos + 1) from None
        return from_json(data)
    return parse_text(written)
