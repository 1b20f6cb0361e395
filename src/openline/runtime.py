"""Everything a running openline process shares: settings, database, writer, sender directory."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from openline.communities import bootstrap
from openline.db import Database, Writer, ensure_current, upgrade
from openline.db.checkpoint import Checkpointer
from openline.ingest import Ingest
from openline.installation import derive_key, secret_key
from openline.providers import InboundWebhook, inbound_webhooks
from openline.senders import SenderDirectory
from openline.settings import Settings
from openline.spool import Spool

__all__ = ["Runtime"]

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    writer: Writer
    senders: SenderDirectory
    ingest: Ingest
    secret_key: bytes
    webhooks: dict[str, InboundWebhook] = field(default_factory=dict)
    spool: Spool = field(default_factory=lambda: Spool(Path("openline-spool")))
    checkpointer: Checkpointer | None = None
    # Where members' links point: OPENLINE_PUBLIC_URL, else the address this process serves on.
    base_url: str = ""
    # Set whenever this process stores a text, so the engine wakes without polling.
    arrivals: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool) -> Runtime:
        """Connect, check (or, with ``migrate``, bring up to date) the schema, create the default
        community on a first start. Raises DatabaseError with a one-line reason."""
        db = Database(settings.database_url)
        try:
            db.check_reachable()
            if migrate:
                upgrade(db)
            else:
                ensure_current(db)
            with db.write_engine.begin() as conn:
                created = bootstrap(conn, settings.community_name)
                key = secret_key(conn, settings.secret_key.get_secret_value() if settings.secret_key else None)
        except BaseException:
            db.dispose()
            raise
        if created is not None:
            log.info("created community %r with a sandbox sender", created.name)
        senders = SenderDirectory(db.read_engine)
        senders.reload()
        writer = Writer(db.write_engine, max_batch=settings.writer_max_batch)
        ingest = Ingest(writer, senders, db.write_engine.dialect.name)
        runtime = cls(settings, db, writer, senders, ingest, key)
        runtime.webhooks = inbound_webhooks(settings, runtime.key_for("sandbox-webhook"))
        runtime.spool = Spool(settings.spool_dir)
        if db.is_sqlite:
            runtime.checkpointer = Checkpointer(db.read_engine)
        runtime.serve_on(settings.host, settings.port)
        ingest.on_stored = runtime.arrivals.set
        return runtime

    def serve_on(self, host: str, port: int) -> None:
        """Record the address this process serves on (used for links when there is no public URL)."""
        self.base_url = self.settings.public_url or f"http://{host}:{port}"

    def key_for(self, purpose: str) -> bytes:
        return derive_key(self.secret_key, purpose)

    def close(self) -> None:
        self.writer.close()
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.db.dispose()
