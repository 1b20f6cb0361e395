"""analytics: indexes that answer a day's counts and a broadcast's progress, and settled days kept

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import openline.db.schema

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_INBOUND = "direction = 'inbound'"
_SENT = "direction = 'outbound' AND sent_at IS NOT NULL"


def upgrade() -> None:
    # What each index is for: see schema.py.
    op.create_index(
        "ix_consent_events_day",
        "consent_events",
        ["community_id", "occurred_at", "new_state", "previous_state"],
        unique=False,
    )
    op.create_index(
        "ix_messages_inbound_day",
        "messages",
        ["community_id", "created_at", "phone"],
        unique=False,
        sqlite_where=sa.text(_INBOUND),
        postgresql_where=sa.text(_INBOUND),
    )
    op.create_index(
        "ix_messages_outbound_day",
        "messages",
        ["community_id", "sent_at", "state", "kind"],
        unique=False,
        sqlite_where=sa.text(_SENT),
        postgresql_where=sa.text(_SENT),
    )
    op.create_index(
        "ix_messages_broadcast_state",
        "messages",
        ["broadcast_id", "state"],
        unique=False,
        sqlite_where=sa.text("broadcast_id IS NOT NULL"),
        postgresql_where=sa.text("broadcast_id IS NOT NULL"),
    )
    op.create_table(
        "analytics_days",
        sa.Column("community_id", Id, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("computed_at", openline.db.schema.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name=op.f("fk_analytics_days_community_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("community_id", "day", name=op.f("pk_analytics_days")),
    )


def downgrade() -> None:
    op.drop_table("analytics_days")
    op.drop_index("ix_messages_broadcast_state", table_name="messages")
    op.drop_index("ix_messages_outbound_day", table_name="messages")
    op.drop_index("ix_messages_inbound_day", table_name="messages")
    op.drop_index("ix_consent_events_day", table_name="consent_events")
