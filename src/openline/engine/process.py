"""The conversation engine: what each inbound text does to its member, the ledger and the inbox.

Texts are taken in arrival order and a batch of them commits together. Each text is one atomic unit
(member state, consent event, replies and inbox change together or not at all): the batch runs in one
savepoint, and if any text fails it is rolled back and re-run with a savepoint per text, so the faulty
text is marked ``failed`` and the others go through. Replies are ``queued`` rows in ``messages``,
written in the same transaction: the dispatcher sends them, and the engine never calls it.

One engine runs at a time per database (on PostgreSQL an advisory lock elects it), which is what
serialises each member's texts in arrival order.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from openline.db import schema
from openline.encoding import count_segments, smart_encode
from openline.engine.config import CommunityConfig, load_config
from openline.engine.keywords import Intent, Match, classify
from openline.engine.language import LanguageGuesser
from openline.engine.texts import SystemText, render
from openline.erasure import ERASED_PHONE, is_suppressed, lift_suppression
from openline.links import join_url, sign_profile_link
from openline.phone import region_of
from openline.regions import member_region
from openline.states import ConsentSource, Direction, MemberState, MessageKind, MessageState
from openline.timezones import member_zones

__all__ = ["ENGINE_LOCK", "Engine"]

log = logging.getLogger(__name__)

# PostgreSQL advisory lock key electing the one engine ("olengine" in ASCII, as a 64-bit integer).
ENGINE_LOCK = 0x6F6C656E67696E65

m, mem, conv = schema.messages.c, schema.members.c, schema.conversations.c
B = sa.bindparam

# Every statement is built once: constructing SQLAlchemy statements per text cost more than running them.
_PENDING = (
    sa.select(
        m.id,
        m.community_id,
        m.sender_id,
        schema.senders.c.address.label("sender_address"),
        schema.senders.c.smart_encoding,
        m.provider,
        m.provider_message_id,
        m.phone,
        m.body,
    )
    .join_from(schema.messages, schema.senders, m.sender_id == schema.senders.c.id)
    .where(m.state == MessageState.received)
    .order_by(m.id)
    .limit(B("limit"))
)
_FIND_MEMBER = sa.select(mem.id, mem.state, mem.language).where(mem.community_id == B("c"), mem.phone == B("p"))
_CREATE_MEMBER = sa.insert(schema.members).returning(mem.id)
_SET_STATE = sa.update(schema.members).where(mem.id == B("_id")).values(state=B("state"), updated_at=B("now"))
# Subscribing also dates the join, once: "joined this week" counts first joins, not every START.
_SUBSCRIBE = (
    sa.update(schema.members)
    .where(mem.id == B("_id"))
    .values(state=MemberState.subscribed, updated_at=B("now"), joined_at=sa.func.coalesce(mem.joined_at, B("now")))
)
_SET_LANGUAGE = sa.update(schema.members).where(mem.id == B("_id")).values(language=B("language"), updated_at=B("now"))
_LEDGER = sa.insert(schema.consent_events)
_HAS_TAG = sa.select(schema.member_tags.c.tag).where(
    schema.member_tags.c.member_id == B("_member"), schema.member_tags.c.tag == B("_tag")
)
_TAG = sa.insert(schema.member_tags)
_TOUCH_CONVERSATION = (
    sa.update(schema.conversations)
    .where(conv.member_id == B("_member"))
    .values(unread=conv.unread + 1, last_message_at=B("now"), sender_id=B("sender"), archived=False)
    .returning(conv.id)
)
_CREATE_CONVERSATION = sa.insert(schema.conversations).returning(conv.id)
_DONE = (
    sa.update(schema.messages)
    .where(m.id == B("_id"))
    .values(state=B("state"), member_id=B("member"), conversation_id=B("conversation"), updated_at=B("now"))
)
# A text from an erased number that is not an opt-in: stored like an erased member's (see openline.erasure).
_FORGET = (
    sa.update(schema.messages)
    .where(m.id == B("_id"))
    .values(state=MessageState.processed, phone=ERASED_PHONE, body="", media=None, updated_at=B("now"))
)
_FAILED = (
    sa.update(schema.messages)
    .where(m.id == B("_id"))
    .values(state=MessageState.failed, error_reason=B("reason"), updated_at=B("now"))
)
_QUEUE = sa.insert(schema.messages)


def _by_name(texts: dict[str, dict[SystemText, str]]) -> dict[str, dict[str, str]]:
    return {lang: {k.value: v for k, v in by.items()} for lang, by in texts.items()}


@dataclass
class _Community:
    name: str
    config: CommunityConfig
    guesser: LanguageGuesser
    keywords: dict[str, str | None]
    extra_words: dict[Intent, dict[str, tuple[str, ...]]]
    loaded_at: float


@dataclass
class _Member:
    id: int
    state: MemberState
    language: str | None


@dataclass
class Engine:
    """Processes received texts on a connection the caller commits (the group-commit writer's)."""

    link_key: bytes
    base_url: str
    # Keys for the PROFILE link and for the erased numbers' hashes (see openline.erasure).
    profile_key: bytes
    suppression_key: bytes
    config_ttl: float = 5.0
    _communities: dict[int, _Community] = field(default_factory=dict)

    def process_pending(self, conn: sa.Connection, limit: int = 100) -> int:
        """Handle up to ``limit`` received texts; returns how many were taken."""
        if (
            conn.dialect.name == "postgresql"
            and not conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(ENGINE_LOCK))).scalar_one()
        ):
            return 0  # another worker's engine is running
        rows = conn.execute(_PENDING, {"limit": limit}).all()
        try:
            # Optimistically the whole batch in one savepoint: two statements fewer per text, which on
            # PostgreSQL are two round trips.
            with conn.begin_nested():
                for row in rows:
                    self._handle(conn, row)
            return len(rows)
        except Exception:
            log.warning("an engine batch failed; handling its %d texts one at a time", len(rows))
        for row in rows:
            try:
                with conn.begin_nested():
                    self._handle(conn, row)
            except Exception as exc:
                # A text the engine cannot handle must not block the ones behind it.
                log.exception("inbound message %s could not be processed", row.id)
                reason = f"engine: {type(exc).__name__}: {exc}"[:500]
                conn.execute(_FAILED, {"_id": row.id, "reason": reason, "now": schema.utcnow()})
        return len(rows)

    # -- one text -----------------------------------------------------------------------------

    def _community(self, conn: sa.Connection, community_id: int) -> _Community:
        cached = self._communities.get(community_id)
        if cached is not None and time.monotonic() - cached.loaded_at < self.config_ttl:
            return cached
        config = load_config(conn, community_id)
        name = conn.execute(
            sa.select(schema.communities.c.name).where(schema.communities.c.id == community_id)
        ).scalar_one()
        fresh = _Community(
            name=name,
            config=config,
            guesser=LanguageGuesser(config.languages),
            keywords={word: rule.language for word, rule in config.keywords.items()},
            extra_words={i: {lang: tuple(ws) for lang, ws in by.items()} for i, by in config.words.items()},
            loaded_at=time.monotonic(),
        )
        self._communities[community_id] = fresh
        return fresh

    def _handle(self, conn: sa.Connection, text: Any) -> None:
        community = self._community(conn, text.community_id)
        match = classify(text.body, keywords=community.keywords, extra=community.extra_words or None)
        now = schema.utcnow()
        member = self._member(conn, text.community_id, text.phone)
        language = match.language or (community.guesser.guess(text.body) if match.intent is Intent.text else None)
        if language is not None and language not in community.config.languages:
            language = None
        evidence = {
            "message_id": text.id,
            "provider": text.provider,
            "provider_message_id": text.provider_message_id,
            "text": text.body,
        }
        replies: list[SystemText | str] = []

        if member is None and is_suppressed(conn, text.community_id, self.suppression_key, text.phone):
            if match.intent not in (Intent.start, Intent.yes):
                # Erased at their request: neither answered, nor made a member again, nor kept.
                conn.execute(_FORGET, {"_id": text.id, "now": now})
                return
            lift_suppression(conn, text.community_id, self.suppression_key, text.phone)  # they opted in again

        if member is None:
            state = MemberState.unsubscribed if match.intent is Intent.stop else MemberState.pending
            member = self._create_member(conn, text.community_id, text.phone, state, language, now)
            self._ledger(conn, text.community_id, member.id, None, state, evidence, now)
            replies.append(SystemText.stopped if state is MemberState.unsubscribed else SystemText.autotext)
            if match.intent is Intent.help:
                replies.append(SystemText.help)
        else:
            if language is not None and language != member.language:
                member.language = language
                conn.execute(_SET_LANGUAGE, {"_id": member.id, "language": language, "now": now})
            replies += self._transition(conn, text.community_id, member, match, evidence, now)

        if match.intent is Intent.keyword and match.keyword is not None:
            rule = community.config.keywords[match.keyword]
            self._tag(conn, member.id, rule.tag)
            if rule.reply and member.state is MemberState.subscribed:
                replies.append(rule.reply)

        conversation_id = self._touch_conversation(conn, text, member.id, now)
        conn.execute(
            _DONE,
            {
                "_id": text.id,
                "state": MessageState.processed,
                "member": member.id,
                "conversation": conversation_id,
                "now": now,
            },
        )
        for reply in replies:
            body = reply if not isinstance(reply, SystemText) else self._render(reply, community, member, text)
            self._queue(conn, text, member.id, conversation_id, body, now)

    def _transition(
        self,
        conn: sa.Connection,
        community_id: int,
        member: _Member,
        match: Match,
        evidence: dict[str, Any],
        now: datetime,
    ) -> list[SystemText | str]:
        state = member.state
        if state is MemberState.blocked:
            return []
        if match.intent is Intent.stop:
            if state is MemberState.unsubscribed:
                return []  # one confirmation, then silence
            self._set_state(conn, community_id, member, MemberState.unsubscribed, evidence, now)
            return [SystemText.stopped]
        if match.intent in (Intent.yes, Intent.start) and state in (
            MemberState.pending,
            MemberState.unsubscribed,
            MemberState.new,
        ):
            self._set_state(conn, community_id, member, MemberState.subscribed, evidence, now)
            return [SystemText.confirmed]
        if match.intent is Intent.help:
            return [SystemText.help]
        if match.intent is Intent.profile:
            return [SystemText.profile]
        return []

    # -- storage helpers -----------------------------------------------------------------------

    def _member(self, conn: sa.Connection, community_id: int, phone: str) -> _Member | None:
        row = conn.execute(_FIND_MEMBER, {"c": community_id, "p": phone}).one_or_none()
        return None if row is None else _Member(row.id, MemberState(row.state), row.language)

    def _create_member(
        self,
        conn: sa.Connection,
        community_id: int,
        phone: str,
        state: MemberState,
        language: str | None,
        now: datetime,
    ) -> _Member:
        zone, zones = member_zones(phone, None, None, None)
        member_id = conn.execute(
            _CREATE_MEMBER,
            {
                "community_id": community_id,
                "phone": phone,
                "state": state,
                "language": language,
                "country": region_of(phone),
                "region": member_region(phone, None, None),
                "time_zone": zone,
                "time_zones": zones,
                "custom": {},
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
        return _Member(member_id, state, language)

    def _set_state(
        self,
        conn: sa.Connection,
        community_id: int,
        member: _Member,
        state: MemberState,
        evidence: dict[str, Any],
        now: datetime,
    ) -> None:
        if state is MemberState.subscribed:
            conn.execute(_SUBSCRIBE, {"_id": member.id, "now": now})
        else:
            conn.execute(_SET_STATE, {"_id": member.id, "state": state, "now": now})
        self._ledger(conn, community_id, member.id, member.state, state, evidence, now)
        member.state = state

    def _ledger(
        self,
        conn: sa.Connection,
        community_id: int,
        member_id: int,
        previous: MemberState | None,
        new: MemberState,
        evidence: dict[str, Any],
        now: datetime,
    ) -> None:
        conn.execute(
            _LEDGER,
            {
                "community_id": community_id,
                "member_id": member_id,
                "previous_state": previous,
                "new_state": new,
                "source": ConsentSource.sms,
                "evidence": evidence,
                "occurred_at": now,
            },
        )

    def _tag(self, conn: sa.Connection, member_id: int, tag: str) -> None:
        if conn.execute(_HAS_TAG, {"_member": member_id, "_tag": tag}).first() is None:
            conn.execute(_TAG, {"member_id": member_id, "tag": tag})

    def _touch_conversation(self, conn: sa.Connection, text: Any, member_id: int, now: datetime) -> int:
        updated = conn.execute(
            _TOUCH_CONVERSATION, {"_member": member_id, "now": now, "sender": text.sender_id}
        ).scalar_one_or_none()
        if updated is not None:
            return int(updated)
        return int(
            conn.execute(
                _CREATE_CONVERSATION,
                {
                    "community_id": text.community_id,
                    "member_id": member_id,
                    "sender_id": text.sender_id,
                    "unread": 1,
                    "last_message_at": now,
                    "archived": False,
                },
            ).scalar_one()
        )

    def _render(self, name: SystemText, community: _Community, member: _Member, text: Any) -> str:
        config = community.config
        language = member.language or config.default_language
        if name is SystemText.profile:
            link = f"{self.base_url}/profile/{sign_profile_link(self.profile_key, member.id, schema.utcnow())}"
        else:
            link = join_url(self.base_url, self.link_key, member.id, schema.utcnow())
        values = {"programme": config.programme or community.name, "contact": config.contact, "link": link}
        sender = config.sender_texts.get(text.sender_address, {})
        return render(name, language, values, _by_name(sender), _by_name(config.texts))

    def _queue(
        self, conn: sa.Connection, text: Any, member_id: int, conversation_id: int, body: str, now: datetime
    ) -> None:
        if text.smart_encoding:
            body = smart_encode(body)
        count = count_segments(body)
        conn.execute(
            _QUEUE,
            {
                "community_id": text.community_id,
                "direction": Direction.outbound,
                "kind": MessageKind.system,
                "state": MessageState.queued,
                "sender_id": text.sender_id,
                "phone": text.phone,
                "member_id": member_id,
                "conversation_id": conversation_id,
                "body": body,
                "encoding": count.encoding.value,
                "segments": count.segments,
                "provider": text.provider,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            },
        )
