"""messages.author_id: the teammate who wrote an inbox reply

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A nullable column without a default: instant on both databases, however many texts there are.
    op.add_column("messages", sa.Column("author_id", Id, nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "author_id")
