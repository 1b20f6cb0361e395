"""Senders: the numbers, short codes and IDs a community answers on."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from openline.db import schema
from openline.phone import classify_sender_address
from openline.states import SenderKind

__all__ = [
    "PROVIDERS",
    "SANDBOX_NUMBER",
    "DuplicateSender",
    "Sender",
    "SenderDirectory",
    "UnknownProvider",
    "add_sender",
    "list_senders",
]

# The providers openline has adapters for.
PROVIDERS = ("sandbox", "twilio", "vonage", "telnyx", "plivo", "smpp")
# A number from a range no carrier assigns to a real subscriber, so sandbox texts cannot reach anyone.
SANDBOX_NUMBER = "+12025550100"


class UnknownProvider(ValueError):
    pass


class DuplicateSender(ValueError):
    pass


@dataclass(frozen=True)
class Sender:
    id: int
    community_id: int
    provider: str
    address: str
    kind: SenderKind
    mps: float
    daily_cap: int | None
    smart_encoding: bool = False


_COLUMNS = (
    schema.senders.c.id,
    schema.senders.c.community_id,
    schema.senders.c.provider,
    schema.senders.c.address,
    schema.senders.c.kind,
    schema.senders.c.mps,
    schema.senders.c.daily_cap,
    schema.senders.c.smart_encoding,
)


def add_sender(
    conn: sa.Connection,
    community_id: int,
    address: str,
    *,
    provider: str,
    mps: float = 1.0,
    daily_cap: int | None = None,
    smart_encoding: bool = False,
) -> Sender:
    """Add a sender; raises ValueError subclasses with a clear message for bad input."""
    if provider not in PROVIDERS:
        raise UnknownProvider(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    if mps <= 0:
        raise ValueError(f"--mps must be more than 0 segments per second (got {mps})")
    if daily_cap is not None and daily_cap <= 0:
        raise ValueError(f"--daily-cap must be a positive number of segments (got {daily_cap})")
    normalised, kind = classify_sender_address(address)
    taken = conn.execute(sa.select(schema.senders.c.id).where(schema.senders.c.address == normalised)).first()
    if taken is not None:
        raise DuplicateSender(f"{normalised} is already a sender")
    sender_id = conn.execute(
        sa.insert(schema.senders)
        .values(
            community_id=community_id,
            provider=provider,
            address=normalised,
            kind=kind,
            mps=mps,
            daily_cap=daily_cap,
            smart_encoding=smart_encoding,
        )
        .returning(schema.senders.c.id)
    ).scalar_one()
    return Sender(sender_id, community_id, provider, normalised, kind, mps, daily_cap, smart_encoding)


def list_senders(conn: sa.Connection, community_id: int | None = None) -> list[Sender]:
    query = sa.select(*_COLUMNS).order_by(schema.senders.c.id)
    if community_id is not None:
        query = query.where(schema.senders.c.community_id == community_id)
    return [Sender(*row) for row in conn.execute(query)]


class SenderDirectory:
    """Finds the sender a webhook's "to" address belongs to, from memory.

    Loaded whole (an installation has a handful of senders); an unknown address reloads it, at most
    once per ``refresh_seconds``, so a sender added while the service runs is found without a restart
    and a flood of texts to a wrong number does not turn into a flood of queries.
    """

    def __init__(self, engine: sa.Engine, *, refresh_seconds: float = 1.0) -> None:
        self._engine = engine
        self._refresh_seconds = refresh_seconds
        self._by_address: dict[str, Sender] = {}
        self._loaded_at = float("-inf")

    def reload(self) -> None:
        with self._engine.connect() as conn:
            self._by_address = {s.address: s for s in list_senders(conn)}
        self._loaded_at = time.monotonic()

    def get(self, address: str) -> Sender | None:
        """The sender for ``address``; may query the database (call it off the event loop)."""
        sender = self._by_address.get(address)
        if sender is None and time.monotonic() - self._loaded_at >= self._refresh_seconds:
            self.reload()
            sender = self._by_address.get(address)
        return sender

    def all(self) -> list[Sender]:
        return list(self._by_address.values())

    def cached(self, address: str) -> Sender | None:
        """The sender for ``address`` if it is already in memory (never queries)."""
        return self._by_address.get(address)
