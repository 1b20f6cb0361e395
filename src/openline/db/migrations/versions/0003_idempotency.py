"""api idempotency keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 14:43:09.521652
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint("uq_messages_idempotency_key", ["community_id", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint("uq_messages_idempotency_key", type_="unique")
        batch_op.drop_column("idempotency_key")
