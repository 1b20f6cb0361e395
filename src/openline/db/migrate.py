"""Schema migrations (Alembic, batch mode so each one runs on SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from openline.db.engine import Database, DatabaseError

__all__ = ["SchemaState", "SchemaStatus", "ensure_current", "schema_status", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaState(StrEnum):
    empty = "empty"  # no openline tables yet
    behind = "behind"  # migrations to run
    current = "current"
    ahead = "ahead"  # written by a newer openline


@dataclass(frozen=True)
class SchemaStatus:
    state: SchemaState
    current: str | None
    head: str


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def schema_status(db: Database) -> SchemaStatus:
    script = ScriptDirectory.from_config(_config())
    head = script.get_current_head()
    assert head is not None
    with db.read_engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current is None:
        state = SchemaState.empty
    elif current == head:
        state = SchemaState.current
    elif current in {rev.revision for rev in script.walk_revisions()}:
        state = SchemaState.behind
    else:
        state = SchemaState.ahead
    return SchemaStatus(state, current, head)


def upgrade(db: Database) -> SchemaStatus:
    """Bring the schema to this openline's head; refuse a schema written by a newer openline."""
    status = schema_status(db)
    if status.state is SchemaState.ahead:
        raise DatabaseError(_ahead_message(db, status))
    if status.state is not SchemaState.current:
        config = _config()
        with db.write_engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    return schema_status(db)


def ensure_current(db: Database) -> None:
    """Raise :class:`DatabaseError` unless the schema is exactly the one this openline expects."""
    status = schema_status(db)
    if status.state is SchemaState.ahead:
        raise DatabaseError(_ahead_message(db, status))
    if status.state is not SchemaState.current:
        raise DatabaseError(
            f"the database at {db.describe()} is at schema revision {status.current or '(none)'}, "
            f"this openline needs {status.head}: run `openline db upgrade`"
        )


def _ahead_message(db: Database, status: SchemaStatus) -> str:
    return (
        f"the database at {db.describe()} has schema revision {status.current}, which this openline "
        f"does not know (its newest is {status.head}): it was written by a newer openline; upgrade openline"
    )
