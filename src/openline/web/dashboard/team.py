"""/team, for the owner and admins: who is on the team, adding a teammate, and the latest entries of
the community's audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from openline.accounts import AccountError, Session, User, add_user, list_users
from openline.db import schema
from openline.states import UserRole
from openline.web.dashboard.auth import posted, read, sentence, write
from openline.web.dashboard.deps import check_csrf, render, require, runtime_of

__all__ = ["AUDIT_ENTRIES", "AuditEntry", "latest_audit", "router"]

router = APIRouter()

AUDIT_ENTRIES = 50
# The roles the page offers: there is one owner, made at setup.
ROLES = (UserRole.agent, UserRole.admin)
Admin = Annotated[Session, require(UserRole.admin)]


@dataclass(frozen=True)
class AuditEntry:
    occurred_at: datetime
    who: str  # "" when the user's row is gone
    action: str
    target: str


def latest_audit(conn: sa.Connection, community_id: int, limit: int = AUDIT_ENTRIES) -> list[AuditEntry]:
    """The community's newest audit-log entries first, with the name (or e-mail) of who acted."""
    a, u = schema.audit_log.c, schema.users.c
    rows = conn.execute(
        sa.select(a.occurred_at, a.action, a.target, u.name, u.email)
        .select_from(schema.audit_log.outerjoin(schema.users, a.user_id == u.id))
        .where(a.community_id == community_id)
        .order_by(a.id.desc())
        .limit(limit)
    )
    return [AuditEntry(row.occurred_at, row.name or row.email or "", row.action, row.target or "") for row in rows]


async def _page(
    request: Request,
    session: Session,
    status_code: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str = "",
) -> HTMLResponse:
    community_id = session.user.community_id

    def load(conn: sa.Connection) -> tuple[list[User], list[AuditEntry]]:
        return list_users(conn, community_id), latest_audit(conn, community_id)

    users, entries = await read(runtime_of(request), load)
    values = values or {}
    return render(
        request,
        "dashboard/team.html",
        status_code=status_code,
        section="team",
        users=users,
        entries=entries,
        roles=[role.value for role in ROLES],
        values={"email": values.get("email", ""), "name": values.get("name", ""), "role": values.get("role", "agent")},
        errors=errors or {},
        notice=notice,
    )


@router.get("/team")
async def team_page(request: Request, session: Admin, added: bool = False) -> HTMLResponse:
    return await _page(request, session, notice="Teammate added. Give them their password privately." if added else "")


@router.post("/team")
async def add_teammate(
    request: Request,
    session: Admin,
    _csrf: Annotated[Session, Depends(check_csrf)],
) -> Response:
    form = await posted(request)
    kept = {"email": form.get("email", ""), "name": form.get("name", ""), "role": form.get("role", "")}
    if kept["role"] not in {role.value for role in ROLES}:
        return await _page(request, session, 400, kept, {"role": "Choose agent or admin."})
    by, password = session.user, form.get("password", "")

    def add(conn: sa.Connection) -> User:
        return add_user(conn, by.community_id, kept["email"], password, UserRole(kept["role"]), kept["name"], by=by)

    try:
        await write(runtime_of(request), add)  # add_user writes the audit-log entry
    except AccountError as exc:
        field = "password" if "password" in str(exc) else "email"
        return await _page(request, session, 400, kept, {field: sentence(exc)})
    # Redirected, so reloading the page does not post the form again.
    return RedirectResponse("/team?added=1", status_code=303)
