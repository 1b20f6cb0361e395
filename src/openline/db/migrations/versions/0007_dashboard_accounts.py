"""dashboard: roles owner/admin/agent, sessions, sign-in failures, audit log, notes, inbox index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 19:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import openline.db.schema

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OLD_ROLES = ("owner", "agent", "viewer")
_NEW_ROLES = ("owner", "admin", "agent")


def _role(roles: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*roles, name="role", native_enum=False, create_constraint=True, length=16)


def _change_roles(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "sqlite":  # SQLite rebuilds the table, CHECK constraint included
        with op.batch_alter_table("users", schema=None) as batch_op:
            batch_op.alter_column("role", existing_type=_role(old), type_=_role(new))
    else:
        op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
        allowed = ", ".join(f"'{r}'" for r in new)
        op.create_check_constraint(op.f("ck_users_role"), "users", f"role IN ({allowed})")


def upgrade() -> None:
    # Read-only viewers become agents (who see the inbox only), the nearest role that remains.
    op.execute("UPDATE users SET role = 'agent' WHERE role = 'viewer'")
    _change_roles(_OLD_ROLES, _NEW_ROLES)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("disabled_at", openline.db.schema.UTCDateTime(), nullable=True))
    op.create_table(
        "user_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", openline.db.schema.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", openline.db.schema.UTCDateTime(), nullable=False),
        sa.Column("expires_at", openline.db.schema.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_user_sessions")),
    )
    op.create_index("ix_user_sessions_user", "user_sessions", ["user_id"], unique=False)
    op.create_table(
        "login_failures",
        sa.Column("id", Id, nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("failed_at", openline.db.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index("ix_login_failures_key", "login_failures", ["key", "failed_at"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("id", Id, nullable=False),
        sa.Column("community_id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("occurred_at", openline.db.schema.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name=op.f("fk_audit_log_community_id"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_audit_log_user_id"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_community", "audit_log", ["community_id", "id"], unique=False)
    op.create_table(
        "conversation_notes",
        sa.Column("id", Id, nullable=False),
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", openline.db.schema.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_notes_conversation_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_conversation_notes_user_id"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_notes")),
    )
    op.create_index("ix_conversation_notes_conversation", "conversation_notes", ["conversation_id", "id"], unique=False)

    # The inbox's previews and search read a conversation's own texts only (see schema.py).
    op.create_index(
        "ix_messages_conversational",
        "messages",
        ["conversation_id", "id"],
        unique=False,
        sqlite_where=sa.text("kind IN ('text', 'reply')"),
        postgresql_where=sa.text("kind IN ('text', 'reply')"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_conversational", table_name="messages")
    op.drop_index("ix_conversation_notes_conversation", table_name="conversation_notes")
    op.drop_table("conversation_notes")
    op.drop_index("ix_audit_log_community", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_login_failures_key", table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_index("ix_user_sessions_user", table_name="user_sessions")
    op.drop_table("user_sessions")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("name")
    op.execute("UPDATE users SET role = 'agent' WHERE role = 'admin'")
    _change_roles(_NEW_ROLES, _OLD_ROLES)
