"""`openline broadcast ...`: compose, estimate, send, watch, pause, cancel and explain broadcasts."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from openline.broadcast_settings import BroadcastSettings
from openline.broadcasts import (
    Broadcast,
    Message,
    Schedule,
    TemplateProblem,
    broadcast_stats,
    cancel,
    create_broadcast,
    estimate,
    find_broadcast,
    list_broadcasts,
    pause,
    resume,
    start,
    why,
)
from openline.broadcasts.plan import Planned, Planner
from openline.cli_common import CommunityOption, admin_connection, fail, installation_key, out, settings_or_exit
from openline.communities import DEFAULT_SLUG, get_community
from openline.engine.config import load_config, update_config
from openline.phone import to_e164
from openline.segments import FilterError, parse_filter, to_json
from openline.states import BroadcastState

__all__ = ["app"]

app = typer.Typer(
    help="Broadcasts: a personalised text to a segment, estimated first (see docs/broadcasts.md).",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="The broadcast's name (or id).", show_default=False)]
_FINISHED = (BroadcastState.done, BroadcastState.cancelled)


def _links(conn: sa.Connection) -> tuple[str, bytes]:
    """The base URL tracked links point to and their key: the same as the running service's."""
    settings = settings_or_exit()
    base_url = settings.public_url or f"http://{settings.host}:{settings.port}"
    return base_url, installation_key(conn, "tracked-link")


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            fail(f"{what} {value!r} must look like NAME=TEXT")
        pairs[key.strip()] = text
    return pairs


def _message(
    body: str | None,
    translations: list[str],
    variants: list[str],
    weights: list[str],
    sponsored: bool,
    message_file: Path | None,
) -> Message:
    if message_file is not None:
        try:
            return Message.model_validate(json.loads(message_file.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            fail(f"cannot read {message_file}: {exc}")
    if body is None:
        fail("give the text with --body (or everything as JSON with --message-file)")
    weight_of = {name: int(n) for name, n in _pairs(weights, "--weight").items() if n.strip().isdigit()}
    arms: list[dict[str, Any]] = [{"name": "A", "body": body, "translations": _pairs(translations, "--translation")}]
    for name, text in _pairs(variants, "--variant").items():
        arms.append({"name": name, "body": text})
    for arm in arms:
        if arm["name"] in weight_of:
            arm["weight"] = weight_of[arm["name"]]
    return Message.model_validate({"variants": arms, "sponsored": sponsored})


def _schedule(at: str | None, local: str | None) -> Schedule:
    try:
        if at is not None:
            return Schedule(at=datetime.fromisoformat(at))
        if local is not None:
            day, _, clock = local.strip().partition(" ")
            return Schedule(local_date=date.fromisoformat(day), local_time=clock.strip() or None)
    except ValueError as exc:
        fail(f"the schedule: {exc}")
    return Schedule()


@app.command("create")
def broadcast_create(
    name: NameArgument,
    body: Annotated[
        str | None, typer.Option(help="The text; {{ first_name | default('friend') }} personalises.")
    ] = None,
    segment: Annotated[str | None, typer.Option(help="A saved segment's name.")] = None,
    filter_: Annotated[str | None, typer.Option("--filter", help="Or a filter, e.g. 'city = Milan'.")] = None,
    translation: Annotated[list[str], typer.Option(help="LANG=TEXT, the text in a language (repeat).")] = [],  # noqa: B006
    variant: Annotated[list[str], typer.Option(help="NAME=TEXT, an A/B variant besides A (repeat).")] = [],  # noqa: B006
    weight: Annotated[list[str], typer.Option(help="NAME=N, a variant's share of recipients.")] = [],  # noqa: B006
    sponsored: Annotated[bool, typer.Option(help="Mark as sponsored: the disclosure goes first.")] = False,
    sender: Annotated[str | None, typer.Option(help="Send from this sender only.")] = None,
    at: Annotated[str | None, typer.Option(help="Send at this instant (ISO 8601 with offset).")] = None,
    local: Annotated[str | None, typer.Option(help="'YYYY-MM-DD HH:MM' in each member's own time zone.")] = None,
    message_file: Annotated[
        Path | None, typer.Option(help="The whole message (variants, translations) as JSON.")
    ] = None,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Create a draft broadcast (nothing is sent until `openline broadcast send`)."""

    message = _message(body, translation, variant, weight, sponsored, message_file)
    schedule = _schedule(at, local)
    node = None
    if filter_ is not None:
        try:
            node = to_json(parse_filter(filter_))
        except FilterError as exc:
            fail(f"the filter: {exc}")
    with admin_connection() as conn:
        community_id = get_community(conn, community).id
        try:
            created = create_broadcast(
                conn, community_id, name, message, segment=node, segment_name=segment, sender=sender, schedule=schedule
            )
        except TemplateProblem as exc:
            fail(f"the text: {escape(str(exc))}")
    out.print(f"draft {escape(created.name)} (id {created.id}), to send {created.schedule.describe()}")
    out.print("next: `openline broadcast estimate`, then `openline broadcast send`")


@app.command("list")
def broadcast_list(community: CommunityOption = DEFAULT_SLUG) -> None:
    """List broadcasts, newest first."""

    with admin_connection() as conn:
        found = list_broadcasts(conn, get_community(conn, community).id)
    table = Table("id", "name", "state", "recipients", "when")
    for broadcast in found:
        table.add_row(
            str(broadcast.id),
            escape(broadcast.name),
            broadcast.state.value,
            f"{int(broadcast.tally.get('recipients', 0)):,}",
            broadcast.schedule.describe(),
        )
    out.print(table)


def _find(conn: sa.Connection, community: str, name: str) -> Broadcast:
    return find_broadcast(conn, get_community(conn, community).id, name)


@app.command("preview")
def broadcast_preview(
    name: NameArgument,
    member: Annotated[list[str], typer.Option(help="Preview for this member's number (repeat).")] = [],  # noqa: B006
    sample: Annotated[int, typer.Option(help="Else this many members of the segment.", min=1, max=50)] = 3,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Show the text exactly as some members would get it (segments, encoding, when)."""

    with admin_connection() as conn:
        broadcast = _find(conn, community, name)
        base_url, key = _links(conn)
        planner = Planner(conn, broadcast, now=datetime.now(UTC), base_url=base_url, link_key=key)
        if member:
            rows = list(planner.members(conn, None, len(member), phones=[to_e164(p) for p in member]))
        else:
            rows = list(planner.members(conn, None, sample))
        plans = planner.plan(conn, rows)
        conn.rollback()  # a preview creates nothing (tracked link rows included)
    if not rows:
        fail("no such member in the broadcast's segment" if member else "the segment has no members")
    for row, plan in zip(rows, plans, strict=True):
        if isinstance(plan, Planned):
            out.print(
                f"[bold]{row.phone}[/] variant {plan.variant}, {plan.encoding.value}, {plan.segments} segment(s), "
                f"at {plan.not_before:%Y-%m-%d %H:%M} UTC"
            )
            out.print(f"  {escape(plan.body)}")
        else:
            out.print(f"[bold]{row.phone}[/] skipped: {escape(plan.reason)}")


@app.command("estimate")
def broadcast_estimate(
    name: NameArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Recipients, segments, cost and time to send, before anything is sent."""

    with admin_connection() as conn:
        broadcast = _find(conn, community, name)
        base_url, key = _links(conn)
        result = estimate(conn, broadcast, now=datetime.now(UTC), base_url=base_url, link_key=key)
    if as_json:
        out.print_json(data=result.to_json())
        return
    for line in result.summary():
        out.print(escape(line))


@app.command("send")
def broadcast_send(
    name: NameArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    wait: Annotated[
        bool, typer.Option(help="Follow the progress until it is done (Ctrl-C stops watching only).")
    ] = True,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Show the estimate, then start the broadcast (the running service fans it out and sends it)."""

    with admin_connection() as conn:
        broadcast = _find(conn, community, name)
        base_url, key = _links(conn)
        result = estimate(conn, broadcast, now=datetime.now(UTC), base_url=base_url, link_key=key)
    for line in result.summary():
        out.print(escape(line))
    if not yes and not typer.confirm(f"send {broadcast.name} {broadcast.schedule.describe()}?"):
        raise typer.Exit(1)
    with admin_connection() as conn:
        started = start(conn, _find(conn, community, name), datetime.now(UTC))
    out.print(f"{started.name} is {started.state.value}; `openline serve` or `openline worker` sends it")
    if wait:
        _watch(community, name, result.recipients)


def _watch(community: str, name: str, expected: int) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=out) as progress:
            task = progress.add_task("starting", total=expected or None)
            while True:
                with admin_connection() as conn:
                    broadcast = _find(conn, community, name)
                    stats = broadcast_stats(conn, broadcast, datetime.now(UTC))
                texts = stats.texts
                settled = sum(texts[s] for s in ("sent", "delivered", "undelivered", "failed", "cancelled"))
                description = (
                    f"{broadcast.state.value}: {texts['delivered']:,} delivered, {texts['deferred']:,} deferred"
                )
                total = max(expected, stats.recipients) or None
                progress.update(task, completed=settled, total=total, description=description)
                if broadcast.state in _FINISHED:
                    break
                if broadcast.state is BroadcastState.sending and not texts["queued"] + texts["sending"]:
                    if texts["deferred"]:
                        out.print("the rest wait for their time; `openline broadcast stats` follows them")
                    break
                time.sleep(1.0)
    except KeyboardInterrupt:
        out.print("stopped watching; the broadcast goes on (`openline broadcast stats`)")


@app.command("pause")
def broadcast_pause(name: NameArgument, community: CommunityOption = DEFAULT_SLUG) -> None:
    """Hold every text not yet sent (and the fan-out) until `resume`."""

    with admin_connection() as conn:
        paused = pause(conn, _find(conn, community, name))
    out.print(f"{paused.name} is paused")


@app.command("resume")
def broadcast_resume(name: NameArgument, community: CommunityOption = DEFAULT_SLUG) -> None:
    """Go on with a paused broadcast."""

    with admin_connection() as conn:
        resumed = resume(conn, _find(conn, community, name))
    out.print(f"{resumed.name} is {resumed.state.value} again")


@app.command("cancel")
def broadcast_cancel(name: NameArgument, community: CommunityOption = DEFAULT_SLUG) -> None:
    """Cancel every text not yet sent (texts already with the provider cannot be called back)."""

    with admin_connection() as conn:
        cancelled, count = cancel(conn, _find(conn, community, name), datetime.now(UTC))
    out.print(f"{cancelled.name} is cancelled; {count:,} texts will not be sent")


@app.command("stats")
def broadcast_stats_command(
    name: NameArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Recipients, texts by state, failures by reason, clicks, replies and opt-outs."""

    with admin_connection() as conn:
        stats = broadcast_stats(conn, _find(conn, community, name), datetime.now(UTC))
    if as_json:
        out.print_json(data=stats.to_json())
        return
    out.print(f"[bold]{escape(stats.name)}[/] ({stats.state}): {stats.recipients:,} recipients")
    table = Table("texts", "count")
    for state, n in sorted(stats.texts.items()):
        table.add_row(state, f"{n:,}")
    out.print(table)
    for reason, n in stats.failed.most_common():
        out.print(f"  not sent or not delivered, {n:,}: {escape(reason)}")
    for reason, n in sorted(stats.skipped.items(), key=lambda item: -item[1]):
        out.print(f"  skipped, {n:,}: {escape(reason)}")
    out.print(
        f"clicks {stats.clicks:,} ({stats.clicked:,} members), replies {stats.replied:,}, "
        f"opt-outs within 24 h {stats.opted_out:,}"
    )
    if len(stats.variants) > 1:
        for variant, counts in stats.variants.items():
            out.print(f"  variant {escape(variant)}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))


@app.command("why")
def broadcast_why(
    name: NameArgument,
    phone: Annotated[str, typer.Argument(help="The member's number.", show_default=False)],
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Explain what the broadcast did (or will do) for one member, and why."""

    with admin_connection() as conn:
        broadcast = _find(conn, community, name)
        base_url, key = _links(conn)
        story = why(conn, broadcast, phone, now=datetime.now(UTC), base_url=base_url, link_key=key)
        conn.rollback()
    out.print(escape(story))


# -- the community's broadcast rules ---------------------------------------------------------------


def _change(community: str, **changes: Any) -> BroadcastSettings:
    with admin_connection() as conn:
        community_id = get_community(conn, community).id
        current = load_config(conn, community_id).broadcasts.model_dump()
        config = update_config(conn, community_id, broadcasts={**current, **changes})
    return config.broadcasts


@app.command("windows")
def broadcast_windows(
    spans: Annotated[
        list[str] | None,
        typer.Argument(
            help="e.g. 'mon-fri 10:00-20:00' 'sat,sun 10:00-18:00' 'holidays 10:00-18:00'", show_default=False
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the owner's windows (the law still applies).")] = False,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Show or set the owner's sending windows, in each member's local time, on top of the law."""

    if clear or spans:
        rules = _change(community, windows=[] if clear else spans)
    else:
        with admin_connection() as conn:
            rules = load_config(conn, get_community(conn, community).id).broadcasts
    out.print("; ".join(rules.windows) if rules.windows else "no owner windows: only the legal hours apply")


@app.command("cap")
def broadcast_cap(
    per_day: Annotated[str, typer.Argument(help="At most N broadcasts per member per 24 h, or 'off'.")],
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Set the frequency cap across broadcasts (stricter legal caps always apply)."""

    value = None if per_day.strip().lower() == "off" else per_day.strip()
    if value is not None and not value.isdigit():
        fail(f"{per_day!r}: give a number of broadcasts per 24 hours, or 'off'")
    rules = _change(community, frequency_cap=int(value) if value else None)
    out.print(f"frequency cap: {rules.frequency_cap or 'none'} per member per 24 h")


@app.command("price")
def broadcast_price(
    country: Annotated[str, typer.Argument(help="Two-letter destination country, or * for every other.")],
    price: Annotated[float, typer.Argument(help="The price of one segment.")],
    currency: Annotated[str | None, typer.Option(help="The currency of every price (e.g. USD, EUR).")] = None,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Set the price of one segment to a country (the estimate's cost)."""

    with admin_connection() as conn:
        current = load_config(conn, get_community(conn, community).id).broadcasts
    changes: dict[str, Any] = {"prices": {**current.prices, country.strip().upper(): price}}
    if currency is not None:
        changes["currency"] = currency
    rules = _change(community, **changes)
    out.print(", ".join(f"{c} {p:g}" for c, p in sorted(rules.prices.items())) + f" {rules.currency} per segment")


@app.command("disclosure")
def broadcast_disclosure(
    text: Annotated[str, typer.Argument(help="Put before sponsored broadcasts, e.g. '#ad' or 'Sponsored:'.")],
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Set the disclosure that starts every sponsored broadcast."""

    rules = _change(community, disclosure=text.strip())
    out.print(f"sponsored broadcasts start with {escape(rules.disclosure)!r}")


@app.command("footer")
def broadcast_footer(
    text: Annotated[str | None, typer.Argument(help="e.g. 'Reply STOP to opt out'.", show_default=False)] = None,
    language: Annotated[str, typer.Option(help="The members' language it is for; * for everyone else.")] = "*",
    clear: Annotated[bool, typer.Option("--clear", help="Remove the footer for that language.")] = False,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Show or set the line put after every broadcast (opt-out instructions), per language."""

    if clear or text is not None:
        with admin_connection() as conn:
            current = dict(load_config(conn, get_community(conn, community).id).broadcasts.footer)
        if clear:
            current.pop(language, None)
        else:
            assert text is not None
            current[language] = text
        rules = _change(community, footer=current)
    else:
        with admin_connection() as conn:
            rules = load_config(conn, get_community(conn, community).id).broadcasts
    if not rules.footer:
        out.print("no footer")
    for code, line in sorted(rules.footer.items()):
        out.print(f"{code}: {escape(line)}")
