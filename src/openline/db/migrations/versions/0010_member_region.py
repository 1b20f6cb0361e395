"""members.region: the member's state or province, for segments

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from openline.regions import member_region

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_BATCH = 5_000


def upgrade() -> None:
    op.add_column("members", sa.Column("region", sa.String(6), nullable=True))
    op.create_index("ix_members_community_region", "members", ["community_id", "region"])
    # Members already there get theirs as new ones will: from postcode and country, else the number.
    members = sa.table(
        "members",
        sa.column("id", sa.Integer()),
        sa.column("phone", sa.String()),
        sa.column("country", sa.String()),
        sa.column("postcode", sa.String()),
        sa.column("region", sa.String()),
    )
    conn = op.get_bind()
    after = 0
    while True:
        rows = conn.execute(
            sa.select(members.c.id, members.c.phone, members.c.country, members.c.postcode)
            .where(members.c.id > after)
            .order_by(members.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        after = rows[-1].id
        found = [
            {"_id": row.id, "region": region}
            for row in rows
            if (region := member_region(row.phone, row.country, row.postcode)) is not None
        ]
        if found:
            conn.execute(
                sa.update(members).where(members.c.id == sa.bindparam("_id")).values(region=sa.bindparam("region")),
                found,
            )


def downgrade() -> None:
    op.drop_index("ix_members_community_region", table_name="members")
    op.drop_column("members", "region")
