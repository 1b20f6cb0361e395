"""What a broadcast does for each member: skip them (and why), or which text, from which sender, when.

The estimate and the fan-out both call :class:`Planner`, so the estimate's numbers are the send's. That
includes ``{{ form_link }}``: each member's join link is signed as the text is planned, and its length
depends only on the member's id, so the estimate counts exactly the characters fan-out writes.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from openline.broadcasts.compose import MissingValue
from openline.broadcasts.store import Broadcast, compile_for
from openline.db import schema
from openline.encoding import Encoding, count_segments, smart_encode
from openline.engine.config import load_config
from openline.links import join_url
from openline.outbox import MAX_BODY
from openline.quiet_hours import NeverOpen, Recipient, frequency_limit, next_open, recipient_for
from openline.segments import member_filter
from openline.senders import Sender, list_senders
from openline.states import MemberState, MessageKind, MessageState
from openline.tracking import LinkRewriter, find_urls

__all__ = ["CAP_PERIOD", "Planned", "Planner", "Skipped", "register_links"]

CAP_PERIOD = timedelta(hours=24)
mem, m = schema.members.c, schema.messages.c

# Why a member of the segment gets nothing: words for the estimate, the stats and "why".
_NOT_SUBSCRIBED = {
    MemberState.new: "never confirmed (texted, not yet asked)",
    MemberState.pending: "never confirmed (pending)",
    MemberState.unsubscribed: "opted out",
    MemberState.blocked: "blocked",
}


@dataclass(frozen=True)
class Planned:
    member_id: int
    phone: str
    conversation_id: int | None
    sender: Sender
    country: str | None
    zone: str  # the member's (first) zone, to say "08:00 their time"
    variant: str
    language: str | None
    body: str
    encoding: Encoding
    segments: int
    not_before: datetime
    deferred_by: str | None  # None: due at the broadcast's time; else what holds it back


@dataclass(frozen=True)
class Skipped:
    member_id: int
    reason: str


_MEMBER_COLUMNS = (
    mem.id,
    mem.phone,
    mem.state,
    mem.first_name,
    mem.last_name,
    mem.city,
    mem.postcode,
    mem.country,
    mem.email,
    mem.birthday,
    mem.language,
    mem.time_zone,
    mem.time_zones,
    mem.custom,
    schema.conversations.c.id.label("conversation_id"),
    schema.conversations.c.sender_id.label("usual_sender"),
)


class Planner:
    """Plans one broadcast, a batch of members at a time, as of ``now``."""

    def __init__(
        self,
        conn: sa.Connection,
        broadcast: Broadcast,
        *,
        now: datetime,
        base_url: str,
        link_key: bytes,
        join_key: bytes | None = None,
    ):
        """``link_key`` signs tracked links (``key_for("tracked-link")``); ``join_key`` signs the join
        links of ``{{ form_link }}`` (``key_for("member-link")``). Without it (an estimate, a preview,
        a "why"), join links are signed with a throwaway key: as long as real ones, so texts count the
        same, but they open nothing, so a preview never hands staff a member's working link."""
        self.broadcast = broadcast
        self.now = now
        self.compiled = compile_for(conn, broadcast)
        self.settings = load_config(conn, broadcast.community_id).broadcasts
        self.owner = self.settings.owner_windows()
        senders = list_senders(conn, broadcast.community_id)
        if not senders:
            raise ValueError("this community has no sender yet (add one with `openline senders add`)")
        self._senders = {s.id: s for s in senders}
        self._rotation = sorted(self._senders)
        self._rewriter = LinkRewriter(broadcast.id, base_url, link_key) if base_url else None
        self._tags = "tags" in self.compiled.variables
        self.uses_form_link = "form_link" in self.compiled.variables
        if self.uses_form_link and not base_url:
            raise ValueError("{{ form_link }} needs the installation's public URL")
        self._base_url = base_url
        self._join_key = (join_key or secrets.token_bytes(32)) if self.uses_form_link else None
        self._filter = member_filter(broadcast.segment, now=now)

    def members(
        self, conn: sa.Connection, after: int | None, limit: int, *, phones: Collection[str] = ()
    ) -> Sequence[Any]:
        """The next ``limit`` members of the segment after member id ``after``, in id order (only those
        with one of ``phones`` when given)."""
        query = (
            sa.select(*_MEMBER_COLUMNS)
            .select_from(schema.members.outerjoin(schema.conversations, schema.conversations.c.member_id == mem.id))
            .where(mem.community_id == self.broadcast.community_id, self._filter)
            .order_by(mem.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(mem.id > after)
        if phones:
            query = query.where(mem.phone.in_(list(phones)))
        return conn.execute(query).all()

    def plan(self, conn: sa.Connection, rows: Sequence[Any]) -> list[Planned | Skipped]:
        tags = self._load_tags(conn, rows) if self._tags else {}
        recent = self._recent(conn, [row.phone for row in rows if row.state == MemberState.subscribed])
        return [self._one(conn, row, tags.get(row.id, []), recent.get(row.phone, [])) for row in rows]

    # -- one member ------------------------------------------------------------------------------

    def _one(self, conn: sa.Connection, row: Any, tags: list[str], recent: list[datetime]) -> Planned | Skipped:
        state = MemberState(row.state)
        if state is not MemberState.subscribed:
            return Skipped(row.id, _NOT_SUBSCRIBED[state])
        values: dict[str, Any] = {
            "first_name": row.first_name,
            "last_name": row.last_name,
            "city": row.city,
            "postcode": row.postcode,
            "country": row.country,
            "language": row.language,
            "birthday": row.birthday,
            "email": row.email,
            "tags": tags,
            "custom": dict(row.custom or {}),
        }
        if self._join_key is not None:
            # Signed at planning time: fan-out's link lives JOIN_LINK_LIFETIME (30 days), far longer than
            # any text waits in the queue (a deferred text expires 10 hours after its window opens).
            values["form_link"] = join_url(self._base_url, self._join_key, row.id, self.now)
        try:
            rendered = self.compiled.render_for(
                self.broadcast.id, row.id, row.language, values, disclosure=self.settings.disclosure
            )
        except MissingValue as missing:
            return Skipped(row.id, str(missing))
        except ValueError as exc:  # too long once personalised
            return Skipped(row.id, f"the personalised text cannot be sent: {exc}")
        sender = self._sender_for(row)
        body = rendered.text
        footer = self.settings.footer_for(rendered.language or row.language)
        if footer and not body.endswith(footer):
            body = f"{body}\n{footer}"
            if len(body) > MAX_BODY:
                return Skipped(
                    row.id, f"the personalised text with its footer is {len(body)} characters; at most {MAX_BODY}"
                )
        if self._rewriter is not None:
            body = self._rewriter.rewrite(conn, body, row.id)
        if sender.smart_encoding:
            body = smart_encode(body)
        count = count_segments(body)
        recipient = recipient_for(
            row.phone, row.country, row.postcode, [row.time_zone] if row.time_zone else row.time_zones
        )
        try:
            when, deferred_by = self._when(recipient, recent)
        except NeverOpen as exc:
            return Skipped(row.id, f"no sending window ever opens for them: {exc}")
        return Planned(
            member_id=row.id,
            phone=row.phone,
            conversation_id=row.conversation_id,
            sender=sender,
            country=recipient.country,
            zone=recipient.zones[0] if recipient.zones else "UTC",
            variant=rendered.variant,
            language=rendered.language,
            body=body,
            encoding=count.encoding,
            segments=count.segments,
            not_before=when,
            deferred_by=deferred_by,
        )

    def _sender_for(self, row: Any) -> Sender:
        """The broadcast's sender; else the number the member texted; else one of the community's,
        spread by member id so a large list uses every sender's throughput."""
        chosen = self.broadcast.sender_id or row.usual_sender
        if chosen in self._senders:
            return self._senders[chosen]
        return self._senders[self._rotation[row.id % len(self._rotation)]]

    def _when(self, recipient: Recipient, recent: list[datetime]) -> tuple[datetime, str | None]:
        schedule = self.broadcast.schedule
        at, reason = max(self.now, schedule.at or self.now), None
        if schedule.local:
            zones = recipient.zones or ("UTC",)
            local = max(schedule.member_time(ZoneInfo(zone)) for zone in zones)
            if local > at:
                at, reason = local, f"{schedule.local_time} their time"
        limit = frequency_limit(recipient, self.settings.frequency_cap)
        for _ in range(3):  # the cap and the window may push each other once or twice
            opened = next_open(recipient, at, self.owner)
            if opened > at:
                local = opened.astimezone(ZoneInfo(recipient.zones[0] if recipient.zones else "UTC"))
                at, reason = opened, f"the sending window to open ({local:%H:%M} their time)"
            if limit is None or len(recent) < limit:
                break
            # The oldest of the last ``limit`` broadcasts must leave the 24 hours first.
            frees = sorted(recent)[-limit] + CAP_PERIOD
            if frees <= at:
                break
            at, reason = frees, f"the frequency cap ({limit} per 24 h)"
        return at, reason

    # -- per batch ---------------------------------------------------------------------------------

    def _recent(self, conn: sa.Connection, phones: list[str]) -> dict[str, list[datetime]]:
        """Other broadcasts' texts to these numbers in the cap period (sent, or still to be sent)."""
        # Looked up even without an owner's cap: Florida, Oklahoma and Maryland law cap marketing texts.
        if not phones:
            return {}
        moment = sa.func.coalesce(m.sent_at, m.next_attempt_at, m.created_at)
        rows = conn.execute(
            sa.select(m.phone, moment.label("at")).where(
                m.community_id == self.broadcast.community_id,
                m.phone.in_(phones),
                m.kind == MessageKind.broadcast,
                m.broadcast_id != self.broadcast.id,
                m.state.not_in((MessageState.failed, MessageState.cancelled)),
                moment >= self.now - CAP_PERIOD,
            )
        )
        found: dict[str, list[datetime]] = defaultdict(list)
        for phone, at in rows:
            found[phone].append(at)
        return found

    def _load_tags(self, conn: sa.Connection, rows: Sequence[Any]) -> dict[int, list[str]]:
        t = schema.member_tags.c
        found: dict[int, list[str]] = defaultdict(list)
        for member_id, tag in conn.execute(
            sa.select(t.member_id, t.tag).where(t.member_id.in_([row.id for row in rows])).order_by(t.tag)
        ):
            found[member_id].append(tag)
        return found


def register_links(conn: sa.Connection, broadcast: Broadcast, base_url: str, link_key: bytes) -> None:
    """Create the tracked-link rows for the URLs written in the broadcast's bodies, in a short write
    transaction of their own, so an estimate can then run on a read connection."""
    rewriter = LinkRewriter(broadcast.id, base_url, link_key)
    for variant in broadcast.message.variants:
        for source in (variant.body, *variant.translations.values()):
            for _, _, url in find_urls(source):
                if not url.startswith(f"{rewriter.base_url}/"):
                    rewriter.link_id(conn, url)
