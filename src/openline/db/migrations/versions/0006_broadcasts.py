"""broadcasts: variants, schedules, fan-out progress, tracked links

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 19:10:00

No earlier openline wrote broadcasts, so the table gets its final shape without data to carry over.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import openline.db.schema

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OLD_STATES = ("draft", "scheduled", "fanning_out", "sending", "done", "cancelled")
_NEW_STATES = ("draft", "scheduled", "fanning_out", "sending", "paused", "done", "cancelled")
_UNSETTLED = "state IN ('queued', 'sending') AND broadcast_id IS NOT NULL"


def _state(states: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*states, name="state", native_enum=False, create_constraint=True, length=16)


def _allowed(states: tuple[str, ...]) -> str:
    return "state IN (" + ", ".join(f"'{s}'" for s in states) + ")"


def upgrade() -> None:
    op.create_table(
        "broadcast_links",
        sa.Column("id", Id, nullable=False),
        sa.Column("broadcast_id", Id, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["broadcast_id"], ["broadcasts.id"], name=op.f("fk_broadcast_links_broadcast_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_links")),
        sa.UniqueConstraint("broadcast_id", "url", name=op.f("uq_broadcast_links_broadcast_id_url")),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        # The state word list is a CHECK constraint; PostgreSQL changes it in place.
        op.drop_constraint(op.f("ck_broadcasts_state"), "broadcasts", type_="check")
        op.create_check_constraint(op.f("ck_broadcasts_state"), "broadcasts", _allowed(_NEW_STATES))
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        if sqlite:  # SQLite rebuilds the table, CHECK constraint included
            batch_op.alter_column("state", existing_type=_state(_OLD_STATES), type_=_state(_NEW_STATES))
        batch_op.add_column(sa.Column("message", sa.JSON(), server_default=sa.text("'{}'"), nullable=False))
        batch_op.add_column(sa.Column("segment_name", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("sender_id", Id, nullable=True))
        batch_op.add_column(sa.Column("local_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("local_time", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("fanout_cursor", Id, nullable=True))
        batch_op.add_column(sa.Column("tally", sa.JSON(), server_default=sa.text("'{}'"), nullable=False))
        batch_op.add_column(sa.Column("started_at", openline.db.schema.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("finished_at", openline.db.schema.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "updated_at",
                openline.db.schema.UTCDateTime(),
                server_default=sa.func.current_timestamp(),
                nullable=False,
            )
        )
        batch_op.create_unique_constraint(op.f("uq_broadcasts_community_id_name"), ["community_id", "name"])
        batch_op.create_foreign_key(
            op.f("fk_broadcasts_sender_id"), "senders", ["sender_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_check_constraint(
            op.f("ck_broadcasts_local_time_has_date"), "local_time IS NULL OR local_date IS NOT NULL"
        )
        batch_op.drop_column("body_template")
        batch_op.drop_column("member_local_time")
    with op.batch_alter_table("link_clicks", schema=None) as batch_op:
        batch_op.create_index("ix_link_clicks_broadcast", ["broadcast_id", "member_id"], unique=False)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("variant", sa.String(length=20), nullable=True))
        batch_op.create_index(
            "ix_messages_unsettled_broadcast",
            ["broadcast_id"],
            unique=False,
            sqlite_where=sa.text(_UNSETTLED),
            postgresql_where=sa.text(_UNSETTLED),
        )
    # The dispatcher claims due texts in due order per sender and kind (see schema.py).
    op.create_index(
        "ix_messages_queue",
        "messages",
        ["sender_id", "kind", sa.text("coalesce(next_attempt_at, created_at)"), "id"],
        unique=False,
        sqlite_where=sa.text("state = 'queued'"),
        postgresql_where=sa.text("state = 'queued'"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_queue", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_unsettled_broadcast")
        batch_op.drop_column("variant")
    with op.batch_alter_table("link_clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_link_clicks_broadcast")
    op.execute("DELETE FROM broadcasts")
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_local_time", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("body_template", sa.Text(), server_default="", nullable=False))
        batch_op.drop_constraint(op.f("ck_broadcasts_local_time_has_date"), type_="check")
        batch_op.drop_constraint(op.f("fk_broadcasts_sender_id"), type_="foreignkey")
        batch_op.drop_constraint(op.f("uq_broadcasts_community_id_name"), type_="unique")
        for column in (
            "updated_at",
            "finished_at",
            "started_at",
            "tally",
            "fanout_cursor",
            "local_time",
            "local_date",
            "sender_id",
            "segment_name",
            "message",
        ):
            batch_op.drop_column(column)
        if sqlite:
            batch_op.alter_column("state", existing_type=_state(_NEW_STATES), type_=_state(_OLD_STATES))
    if not sqlite:
        op.drop_constraint(op.f("ck_broadcasts_state"), "broadcasts", type_="check")
        op.create_check_constraint(op.f("ck_broadcasts_state"), "broadcasts", _allowed(_OLD_STATES))
    op.drop_table("broadcast_links")
