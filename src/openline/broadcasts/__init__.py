"""Broadcasts: a personalised text to a segment, estimated, scheduled in local time, paced and tracked.

    >>> draft = create_broadcast(conn, community_id, "milan-show", {"variants": [{"body": "Hi {{ first_name |
    ...     default('friend') }}, tickets: https://example.org/t"}]}, segment_name="fans in Milan")
    >>> estimate(conn, draft, now=now, base_url=url, link_key=key).summary()
    >>> start(conn, draft, now)          # the worker fans it out and the dispatcher sends it
    >>> broadcast_stats(conn, get_broadcast(conn, draft.id), now)

`docs/broadcasts.md` describes templates, variants, schedules, windows, caps, links and stats.
"""

from openline.broadcasts.compose import Message, MissingValue, TemplateProblem, Variant
from openline.broadcasts.estimate import Estimate, estimate
from openline.broadcasts.fanout import fan_out_batch
from openline.broadcasts.stats import BroadcastStats, broadcast_stats, why
from openline.broadcasts.store import (
    Broadcast,
    BroadcastNotFound,
    Schedule,
    WrongState,
    advance,
    cancel,
    create_broadcast,
    find_broadcast,
    get_broadcast,
    list_broadcasts,
    pause,
    resume,
    start,
)

__all__ = [
    "Broadcast",
    "BroadcastNotFound",
    "BroadcastStats",
    "Estimate",
    "Message",
    "MissingValue",
    "Schedule",
    "TemplateProblem",
    "Variant",
    "WrongState",
    "advance",
    "broadcast_stats",
    "cancel",
    "create_broadcast",
    "estimate",
    "fan_out_batch",
    "find_broadcast",
    "get_broadcast",
    "list_broadcasts",
    "pause",
    "resume",
    "start",
    "why",
]
