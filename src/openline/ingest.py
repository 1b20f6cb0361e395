"""Durable, deduplicated ingest: the only work the request path does after parsing.

A text is one insert through the group-commit writer; the caller acknowledges the provider only once
it returns (committed). The unique (provider, provider message id) key makes a replay store nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import Counter

from openline.db import Writer, schema
from openline.db.sql import insert_ignoring_duplicates
from openline.providers.base import InboundSms, StatusReport
from openline.senders import SenderDirectory
from openline.states import Direction, MessageKind, MessageState

__all__ = ["INBOUND_COLUMNS", "Ingest", "UnknownSender", "inbound_insert_sql"]

log = logging.getLogger(__name__)

INBOUND = Counter("openline_inbound_texts", "Inbound texts acknowledged (replays included).", ["provider"])
UNKNOWN = Counter(
    "openline_inbound_unknown_sender",
    "Inbound texts refused: addressed to no configured sender.",
    ["provider"],
)


# PostgreSQL text cannot hold NUL; a NUL in a webhook (GSM's "@" mis-decoded by a gateway) is kept
# visible as the Unicode symbol for it, on every database alike.
NUL_STAND_IN = "\u2400"


class UnknownSender(LookupError):
    """The text was sent to an address that is not a sender of that provider here."""


INBOUND_COLUMNS = (
    "community_id",
    "direction",
    "kind",
    "state",
    "sender_id",
    "phone",
    "body",
    "media",
    "provider",
    "provider_message_id",
    "attempts",
    "created_at",
    "updated_at",
)


def inbound_insert_sql(dialect_name: str) -> str:
    """The inbound insert as SQL text in the driver's parameter style (see Writer.execute_sql)."""
    if dialect_name == "postgresql":
        values = ", ".join("%s::json" if c == "media" else "%s" for c in INBOUND_COLUMNS)
    else:
        values = ", ".join("?" for _ in INBOUND_COLUMNS)
    return (
        f"INSERT INTO messages ({', '.join(INBOUND_COLUMNS)}) VALUES ({values}) "
        "ON CONFLICT (provider, provider_message_id) DO NOTHING"  # uq_messages_provider_message_id
    )


class Ingest:
    def __init__(self, writer: Writer, directory: SenderDirectory, dialect_name: str) -> None:
        self._writer = writer
        self.on_stored: Callable[[], object] | None = None  # told after each commit
        self._directory = directory
        self._insert = inbound_insert_sql(dialect_name)
        self._receipt = insert_ignoring_duplicates(
            dialect_name, schema.message_receipts, ["provider", "provider_message_id", "status"]
        )
        self._sqlite = dialect_name == "sqlite"

    async def receive(self, sms: InboundSms) -> None:
        """Store ``sms`` durably (once, however often it is posted); returns after the commit."""
        sender = self._directory.cached(sms.to) or await asyncio.to_thread(self._directory.get, sms.to)
        if sender is None or sender.provider != sms.provider:
            UNKNOWN.labels(sms.provider).inc()
            log.warning(
                "refused %s text %s: %s is not a %s sender here",
                sms.provider,
                sms.provider_message_id,
                sms.to,
                sms.provider,
            )
            raise UnknownSender(f"{sms.to} is not a configured {sms.provider} sender")
        # Values as the columns store them: naive UTC times (UTCDateTime), JSON text, enum words.
        now = datetime.now(UTC).replace(tzinfo=None)
        stamp: datetime | str = now.strftime("%Y-%m-%d %H:%M:%S.%f") if self._sqlite else now
        media = [{"url": m.url, "content_type": m.content_type} for m in sms.media]
        await self._writer.execute_sql(
            self._insert,
            (
                sender.community_id,
                Direction.inbound.value,
                MessageKind.text.value,
                MessageState.received.value,
                sender.id,
                sms.from_number,
                sms.body.replace("\x00", NUL_STAND_IN),
                json.dumps(media) if media else None,
                sms.provider,
                sms.provider_message_id,
                0,
                stamp,
                stamp,
            ),
        )
        INBOUND.labels(sms.provider).inc()
        if self.on_stored is not None:
            self.on_stored()

    async def receive_status(self, report: StatusReport) -> None:
        """Store a delivery receipt durably (once, however often it is posted); applied to its message later."""
        await self._writer.execute(
            self._receipt,
            {
                "provider": report.provider,
                "provider_message_id": report.provider_message_id,
                "status": report.status,
                "provider_status": report.provider_status,
                "error_code": report.error_code,
                "received_at": schema.utcnow(),
                "applied": False,
            },
        )
        if self.on_stored is not None:
            self.on_stored()

    async def receive_spooled(self, item: InboundSms | StatusReport) -> None:
        """Store what waited in the spool; a text sent to a sender removed meanwhile is dropped, logged."""
        if isinstance(item, StatusReport):
            await self.receive_status(item)
            return
        sms = item
        try:
            await self.receive(sms)
        except UnknownSender:
            log.error(
                "spooled %s text %s dropped: %s is no longer a sender", sms.provider, sms.provider_message_id, sms.to
            )
