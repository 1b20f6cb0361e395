"""`openline users`: dashboard accounts from the command line (the first owner on a headless server, a
teammate, a forgotten password).

Passwords are asked twice at a hidden prompt, or read from the first line of standard input with
``--password-stdin`` for scripts; never as an argument, which other users of the machine could see in
the process list and which shells keep in their history. The audit log records the owner as the one
who acted (the new owner, for the first one), as accounts.add_user and set_password do.
"""

from __future__ import annotations

import sys
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.table import Table

from openline.accounts import User, add_user, create_owner, has_owner, list_users, set_password
from openline.cli_common import CommunityOption, admin_connection, fail, out
from openline.communities import DEFAULT_SLUG, get_community
from openline.states import UserRole

__all__ = ["users_app"]

users_app = typer.Typer(help="Who may sign in to the dashboard, and with which role.", no_args_is_help=True)

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on standard input")
        return password
    prompted: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return prompted


def _owner(conn: sa.Connection, community_id: int) -> User | None:
    return next((user for user in list_users(conn, community_id) if user.role is UserRole.owner), None)


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The address they sign in with.")],
    role: Annotated[UserRole, typer.Option(help="owner (only the first account), admin or agent.")],
    name: Annotated[str | None, typer.Option(help="How teammates see them.")] = None,
    password_stdin: PasswordStdin = False,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Add a dashboard account (the owner first, while there is none; then admins and agents)."""
    # Checked before asking for the password, and again when writing (accounts refuses a second owner).
    with admin_connection() as conn:
        owner_exists = has_owner(conn)
    if role is UserRole.owner and owner_exists:
        fail("this installation already has an owner; add admins and agents")
    if role is not UserRole.owner and not owner_exists:
        fail("add the owner first: openline users add EMAIL --role owner")
    password = _password(password_stdin)
    with admin_connection() as conn:
        community_id = get_community(conn, community).id
        if role is UserRole.owner:
            user = create_owner(conn, community_id, email, password, name)
        else:
            owner = _owner(conn, community_id)
            if owner is None:
                fail(f"community {community!r} has no owner")
            user = add_user(conn, community_id, email, password, role, name, by=owner)
    out.print(f"added {user.email} ({user.role.value})")


@users_app.command("list")
def users_list(community: CommunityOption = DEFAULT_SLUG) -> None:
    """List dashboard accounts with their roles."""
    with admin_connection() as conn:
        found = list_users(conn, get_community(conn, community).id)
    table = Table("e-mail", "name", "role")
    for user in found:
        table.add_row(user.email, user.name or "-", user.role.value)
    out.print(table)


@users_app.command("password")
def users_password(
    email: Annotated[str, typer.Argument(help="The account's address.")],
    password_stdin: PasswordStdin = False,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Set a new password for an account (their sessions end: they sign in again with it)."""
    address = email.strip().lower()
    with admin_connection() as conn:
        known = any(user.email == address for user in list_users(conn, get_community(conn, community).id))
    if not known:
        fail(f"no account {address!r}")
    password = _password(password_stdin)
    with admin_connection() as conn:
        community_id = get_community(conn, community).id
        user = next((user for user in list_users(conn, community_id) if user.email == address), None)
        if user is None:
            fail(f"no account {address!r}")
        set_password(conn, user, password, by=_owner(conn, community_id) or user)
    out.print(f"changed the password of {address}; their sessions have ended")
