"""dispatch: sender leases, receipts, send times

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 14:26:26.107497
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import openline.db.schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_receipts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_message_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_status", sa.String(length=32), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("received_at", openline.db.schema.UTCDateTime(), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_receipts")),
        sa.UniqueConstraint("provider", "provider_message_id", "status", name="uq_message_receipts_once"),
    )
    with op.batch_alter_table("message_receipts", schema=None) as batch_op:
        batch_op.create_index("ix_message_receipts_pending", ["applied", "id"], unique=False)

    op.create_table(
        "sender_leases",
        sa.Column("sender_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("expires_at", openline.db.schema.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["senders.id"], name=op.f("fk_sender_leases_sender_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sender_id", name=op.f("pk_sender_leases")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", openline.db.schema.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("sent_at", openline.db.schema.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("delivered_at", openline.db.schema.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("sent_at")
        batch_op.drop_column("expires_at")

    op.drop_table("sender_leases")
    with op.batch_alter_table("message_receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_message_receipts_pending")

    op.drop_table("message_receipts")
