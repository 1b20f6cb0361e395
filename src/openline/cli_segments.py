"""`openline segments ...`: count members by a filter, and keep named segments."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from openline.cli_common import CommunityOption, admin_connection, fail, out
from openline.communities import DEFAULT_SLUG, get_community
from openline.db.schema import utcnow
from openline.segments import (
    Filter,
    FilterError,
    count_members,
    counted_segments,
    delete_segment,
    parse_filter,
    save_segment,
    to_text,
)

__all__ = ["app"]

app = typer.Typer(help="Segments: members chosen by a filter (see docs/segments.md).", no_args_is_help=True)

FilterArgument = Annotated[
    str,
    typer.Argument(
        help="The filter, e.g. 'country = IT and tag milan and not replied within 30 days', or its JSON.",
        show_default=False,
    ),
]


def _parsed(written: str) -> Filter:
    """The filter, or a failure showing where in it the problem is."""
    try:
        return parse_filter(written)
    except FilterError as exc:
        message = escape(str(exc))
        if exc.column is not None and "\n" not in written:
            message += f"\n  {escape(written)}\n  {' ' * (exc.column - 1)}^"
        fail(message)


def _members(count: int) -> str:
    return f"{count:,} member{'' if count == 1 else 's'}"


@app.command("count")
def segments_count(written: FilterArgument, community: CommunityOption = DEFAULT_SLUG) -> None:
    """Count the members a filter matches right now."""

    node = _parsed(written)
    with admin_connection() as conn:
        count = count_members(conn, get_community(conn, community).id, node, utcnow())
    out.print(f"{_members(count)}: {escape(to_text(node))}")


@app.command("save")
def segments_save(
    name: Annotated[str, typer.Argument(help="The segment's name.", show_default=False)],
    written: FilterArgument,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Save a filter under a name (replacing a segment of that name)."""

    node = _parsed(written)
    with admin_connection() as conn:
        community_id = get_community(conn, community).id
        created = save_segment(conn, community_id, name, node)
        count = count_members(conn, community_id, node, utcnow())
    verb = "saved" if created else "replaced"
    out.print(f"{verb} {escape(name.strip())} ({_members(count)} now): {escape(to_text(node))}")


@app.command("list")
def segments_list(community: CommunityOption = DEFAULT_SLUG) -> None:
    """List saved segments with how many members each matches right now."""

    with admin_connection() as conn:
        found = counted_segments(conn, get_community(conn, community).id, utcnow())
    table = Table("name", "members", "filter")
    for segment, count in found:
        table.add_row(escape(segment.name), f"{count:,}", escape(to_text(segment.filter)))
    out.print(table)


@app.command("delete")
def segments_delete(
    name: Annotated[str, typer.Argument(help="The segment's name.", show_default=False)],
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Delete a saved segment."""

    with admin_connection() as conn:
        deleted = delete_segment(conn, get_community(conn, community).id, name)
    if not deleted:
        fail(f"no segment named {escape(repr(name.strip()))}")
    out.print(f"deleted {escape(name.strip())}")
