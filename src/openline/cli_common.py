"""What every `openline` command shares: output, failing with one clear line, settings, and the admin
connection (the sub-command modules and openline.cli all build on it)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import sqlalchemy as sa
import typer
from pydantic import ValidationError
from rich.console import Console

from openline.communities import UnknownCommunity, bootstrap
from openline.db import Database, DatabaseError, ensure_current, upgrade
from openline.installation import purpose_key
from openline.settings import Settings, SettingsError, load_settings

__all__ = [
    "CommunityOption",
    "admin_connection",
    "err",
    "fail",
    "installation_key",
    "out",
    "settings_or_exit",
]

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

CommunityOption = Annotated[str, typer.Option("--community", help="The community's slug.")]


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    """The settings, with logging set up; a wrong value ends the command with exit code 2."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc), 2)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level != "debug":
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


@contextmanager
def admin_connection() -> Iterator[sa.Connection]:
    """A write transaction for an admin command. On SQLite the schema is brought up to date first
    (one box, one file); on PostgreSQL it must already be, via `openline db upgrade`."""
    settings = settings_or_exit()
    db = Database(settings.database_url)
    try:
        db.check_reachable()
        if db.is_sqlite:
            upgrade(db)
        else:
            ensure_current(db)
        with db.write_engine.begin() as conn:
            bootstrap(conn, settings.community_name)
            yield conn
    except DatabaseError as exc:
        fail(str(exc))
    except ValidationError as exc:
        fail("; ".join(_validation_message(e) for e in exc.errors()))
    except (ValueError, UnknownCommunity) as exc:
        fail(str(exc))
    finally:
        db.dispose()


def installation_key(conn: sa.Connection, purpose: str) -> bytes:
    """The key the running service uses for ``purpose`` (``Runtime.key_for``)."""
    configured = settings_or_exit().secret_key
    return purpose_key(conn, configured.get_secret_value() if configured else None, purpose)


def _validation_message(error: Any) -> str:
    where = ".".join(map(str, error["loc"])) or "value"
    return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"
