"""The `openline` command: a thin layer over the library."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from openline._version import __version__
from openline.cli_broadcasts import app as broadcast_app
from openline.cli_common import CommunityOption, admin_connection, fail, installation_key, out, settings_or_exit
from openline.cli_form import form_app
from openline.cli_members import members_app
from openline.cli_segments import app as segments_app
from openline.cli_simulate import app as simulate_app
from openline.cli_users import users_app
from openline.communities import DEFAULT_SLUG, bootstrap, get_community
from openline.db import Database, DatabaseError, upgrade
from openline.engine.config import (
    KeywordRule,
    add_keyword,
    add_word,
    load_config,
    remove_keyword,
    set_text,
    update_config,
)
from openline.engine.keywords import Intent
from openline.engine.texts import SystemText
from openline.outbox import queue_text
from openline.runtime import Runtime
from openline.senders import add_sender, list_senders
from openline.settings import Settings
from openline.tokens import create_token, list_tokens, revoke_token

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    help="openline: one phone number thousands of people can text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
senders_app = typer.Typer(help="The numbers a community answers on.", no_args_is_help=True)
tokens_app = typer.Typer(help="Tokens for the JSON API under /api/v1.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(senders_app, name="senders")
app.add_typer(tokens_app, name="tokens")
community_app = typer.Typer(help="How the community introduces itself and understands texts.", no_args_is_help=True)
keywords_app = typer.Typer(help="Keywords that tag members (MILAN → tag milan).", no_args_is_help=True)
app.add_typer(community_app, name="community")
app.add_typer(keywords_app, name="keywords")
app.add_typer(segments_app, name="segments")
app.add_typer(members_app, name="members")
app.add_typer(form_app, name="form")
app.add_typer(broadcast_app, name="broadcast")
app.add_typer(simulate_app, name="simulate")
app.add_typer(users_app, name="users")

HostOption = Annotated[str | None, typer.Option(help="Address to listen on [default: OPENLINE_HOST or 127.0.0.1]")]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on [default: OPENLINE_PORT or 8000]")]


def _open_runtime(settings: Settings) -> Runtime:
    try:
        return Runtime.open(settings, migrate=Database(settings.database_url).is_sqlite)
    except DatabaseError as exc:
        fail(str(exc))


def _version(value: bool) -> None:
    if value:
        out.print(f"openline {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """openline: one phone number thousands of people can text."""


def _run_web(settings: Settings, runtime: Runtime, host: str | None, port: int | None, *, background: bool) -> None:
    import uvicorn

    from openline.web import create_app
    from openline.worker import run_background

    runtime.serve_on(host or settings.host, port or settings.port)
    application = create_app(runtime, background=run_background if background else None)
    config = uvicorn.Config(
        application,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
    )
    uvicorn.Server(config).run()


@app.command()
def serve(host: HostOption = None, port: PortOption = None) -> None:
    """Run everything in one process: the web server, the conversation engine and the dispatcher.

    On SQLite (the embedded default) the database is created and migrated on start.
    """
    settings = settings_or_exit()
    _run_web(settings, _open_runtime(settings), host, port, background=True)


@app.command()
def web(host: HostOption = None, port: PortOption = None) -> None:
    """Run only the web server (webhooks, API, sign-up and profile pages, simulator); pair it with `openline worker`."""
    settings = settings_or_exit()
    _run_web(settings, _open_runtime(settings), host, port, background=False)


@app.command()
def worker() -> None:
    """Run only the background work (conversation engine and dispatcher), until interrupted."""
    from openline.worker import run_background

    settings = settings_or_exit()
    runtime = _open_runtime(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_background(runtime, stop)

    try:
        asyncio.run(main())
    finally:
        runtime.close()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to this version of openline."""
    settings = settings_or_exit()
    db = Database(settings.database_url)
    try:
        db.check_reachable()
        status = upgrade(db)
        with db.write_engine.begin() as conn:
            bootstrap(conn, settings.community_name)
    except DatabaseError as exc:
        fail(str(exc))
    finally:
        db.dispose()
    out.print(f"{db.describe()}: schema at revision {status.current} (current)")


@senders_app.command("add")
def senders_add(
    number: Annotated[str, typer.Argument(help="E.164 number, short code or alphanumeric sender ID.")],
    provider: Annotated[str, typer.Option(help="sandbox, twilio, vonage, telnyx, plivo or smpp.")],
    mps: Annotated[float, typer.Option(help="Segments per second the carrier allows.")] = 1.0,
    daily_cap: Annotated[int | None, typer.Option(help="Most segments to send per day.")] = None,
    smart_encoding: Annotated[
        bool, typer.Option(help="Replace curly quotes, dashes and odd spaces with GSM-7 characters.")
    ] = False,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Add a number the community answers on."""
    with admin_connection() as conn:
        sender = add_sender(
            conn,
            get_community(conn, community).id,
            number,
            provider=provider,
            mps=mps,
            daily_cap=daily_cap,
            smart_encoding=smart_encoding,
        )
    out.print(f"added {sender.kind.value} {sender.address} ({sender.provider}, {sender.mps:g} segments/s)")


@senders_app.command("list")
def senders_list(community: CommunityOption = DEFAULT_SLUG) -> None:
    """List the community's senders."""
    with admin_connection() as conn:
        found = list_senders(conn, get_community(conn, community).id)
    table = Table("address", "kind", "provider", "segments/s", "daily cap", "smart encoding")
    for s in found:
        table.add_row(
            s.address,
            s.kind.value,
            s.provider,
            f"{s.mps:g}",
            str(s.daily_cap or "-"),
            "on" if s.smart_encoding else "-",
        )
    out.print(table)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="A name to recognise and revoke the token by.")],
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Create an API token and print it (it is stored hashed and cannot be shown again)."""
    with admin_connection() as conn:
        token = create_token(conn, get_community(conn, community).id, name)
    print(token)


@tokens_app.command("revoke")
def tokens_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Revoke an API token: requests with it are refused from now on."""
    with admin_connection() as conn:
        if not revoke_token(conn, get_community(conn, community).id, name):
            fail(f"no live token named {name!r}")
    out.print(f"revoked {name}")


@tokens_app.command("list")
def tokens_list(community: CommunityOption = DEFAULT_SLUG) -> None:
    """List API tokens (names and dates; token values are never stored)."""
    with admin_connection() as conn:
        found = list_tokens(conn, get_community(conn, community).id)
    table = Table("name", "created", "revoked")
    for t in found:
        table.add_row(
            t.name,
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "-",
        )
    out.print(table)


@app.command()
def send(
    to: Annotated[str, typer.Option(help="The recipient's number, with its country code.")],
    body: Annotated[str, typer.Option(help="The text.")] = "",
    media: Annotated[list[str] | None, typer.Option(help="An MMS media URL (repeat for more).")] = None,
    sender: Annotated[str | None, typer.Option(help="The sender to use (default: sticky, else the first).")] = None,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Queue one transactional text; the running service's dispatcher sends it."""
    with admin_connection() as conn:
        resource, _ = queue_text(
            conn,
            get_community(conn, community).id,
            to,
            body,
            suppression_key=installation_key(conn, "suppression"),
            sender=sender,
            media_urls=tuple(media or ()),
        )
    out.print(
        f"queued message {resource.id} to {resource.to} from {resource.sender}: "
        f"{resource.segments} {resource.encoding} segment(s)"
    )


@community_app.command("show")
def community_show(community: CommunityOption = DEFAULT_SLUG) -> None:
    """Show the community's settings (programme name, languages, keywords, words, texts)."""
    with admin_connection() as conn:
        found = get_community(conn, community)
        config = load_config(conn, found.id)
    out.print(f"{found.name} ({found.slug})")
    out.print_json(config.model_dump_json())


@community_app.command("set")
def community_set(
    programme: Annotated[str | None, typer.Option(help="Name used in system texts.")] = None,
    contact: Annotated[str | None, typer.Option(help="How members get help (shown in HELP answers).")] = None,
    languages: Annotated[str | None, typer.Option(help="Comma-separated ISO 639-1 codes, e.g. en,it,hi.")] = None,
    default_language: Annotated[str | None, typer.Option(help="Language for members of unknown language.")] = None,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Change how the community introduces itself and which languages it answers in."""
    changes: dict[str, object] = {"programme": programme, "contact": contact, "default_language": default_language}
    if languages is not None:
        changes["languages"] = [code.strip() for code in languages.split(",") if code.strip()]
    with admin_connection() as conn:
        update_config(conn, get_community(conn, community).id, **{k: v for k, v in changes.items() if v is not None})
    out.print("saved")


@community_app.command("word")
def community_word(
    intent: Annotated[Intent, typer.Argument(help="stop, start, help, yes or profile.")],
    word: Annotated[str, typer.Argument(help="The word, as members write it.")],
    language: Annotated[str, typer.Option(help="ISO 639-1 code of the word's language.")],
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Teach openline another word for STOP, START, HELP or YES."""
    with admin_connection() as conn:
        add_word(conn, get_community(conn, community).id, intent, language, word)
    out.print(f"{word} now means {intent.value.upper()} ({language})")


@community_app.command("text")
def community_text(
    name: Annotated[SystemText, typer.Argument(help="autotext, confirmed, stopped, help or frequency.")],
    template: Annotated[str, typer.Argument(help="The text; placeholders {programme} {frequency} {contact} {link}.")],
    language: Annotated[str, typer.Option(help="ISO 639-1 code of the language it is written in.")] = "en",
    sender: Annotated[str | None, typer.Option(help="Only for texts sent from this sender (its address).")] = None,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Replace one of openline's own texts in one language (for the community, or one sender)."""
    with admin_connection() as conn:
        set_text(conn, get_community(conn, community).id, language, name, template, sender)
    out.print(f"{name.value} ({language}{', ' + sender if sender else ''}) saved")


@keywords_app.command("add")
def keywords_add(
    word: Annotated[str, typer.Argument(help="One word members text, e.g. MILAN.")],
    tag: Annotated[str, typer.Option(help="Tag given to members who text it.")],
    reply: Annotated[str | None, typer.Option(help="Answer sent to subscribed members.")] = None,
    language: Annotated[str | None, typer.Option(help="Language the keyword implies, e.g. it.")] = None,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Add (or change) a keyword."""
    with admin_connection() as conn:
        add_keyword(conn, get_community(conn, community).id, word, KeywordRule(tag=tag, reply=reply, language=language))
    out.print(f"{word.strip().upper()} tags members {tag!r}")


@keywords_app.command("list")
def keywords_list(community: CommunityOption = DEFAULT_SLUG) -> None:
    """List keywords."""
    with admin_connection() as conn:
        config = load_config(conn, get_community(conn, community).id)
    table = Table("keyword", "tag", "language", "reply")
    for word, rule in sorted(config.keywords.items()):
        table.add_row(word, rule.tag, rule.language or "-", rule.reply or "-")
    out.print(table)


@keywords_app.command("remove")
def keywords_remove(
    word: Annotated[str, typer.Argument(help="The keyword.")], community: CommunityOption = DEFAULT_SLUG
) -> None:
    """Remove a keyword (tags already given stay)."""
    with admin_connection() as conn:
        if not remove_keyword(conn, get_community(conn, community).id, word):
            fail(f"no keyword {word.strip().upper()!r}")
    out.print(f"removed {word.strip().upper()}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
