"""members profile, suppressions, segments, clicks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 16:01:03.240250
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import openline.db.schema

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("created_at", openline.db.schema.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name=op.f("fk_segments_community_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("community_id", "name", name=op.f("uq_segments_community_id_name")),
    )
    op.create_table(
        "suppressions",
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", openline.db.schema.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name=op.f("fk_suppressions_community_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("community_id", "phone_hash", name=op.f("pk_suppressions")),
    )
    op.create_table(
        "link_clicks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("broadcast_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("clicked_at", openline.db.schema.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["broadcast_id"], ["broadcasts.id"], name=op.f("fk_link_clicks_broadcast_id"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name=op.f("fk_link_clicks_community_id"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_link_clicks_member_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_clicks")),
    )
    with op.batch_alter_table("link_clicks", schema=None) as batch_op:
        batch_op.create_index("ix_link_clicks_member", ["member_id", "clicked_at"], unique=False)

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("postcode", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("country", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("email", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("time_zones", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column("form_submitted_at", openline.db.schema.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("joined_at", openline.db.schema.UTCDateTime(), nullable=True))
        batch_op.create_index("ix_members_community_country", ["community_id", "country"], unique=False)
        batch_op.create_index("ix_members_community_joined", ["community_id", "joined_at"], unique=False)
        batch_op.create_index("ix_members_community_state", ["community_id", "state"], unique=False)
    # Members who joined before this revision: their join date is their first subscription in the ledger.
    op.execute(
        "UPDATE members SET joined_at = (SELECT min(occurred_at) FROM consent_events "
        "WHERE consent_events.member_id = members.id AND consent_events.new_state = 'subscribed')"
    )


def downgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index("ix_members_community_state")
        batch_op.drop_index("ix_members_community_joined")
        batch_op.drop_index("ix_members_community_country")
        batch_op.drop_column("joined_at")
        batch_op.drop_column("form_submitted_at")
        batch_op.drop_column("time_zones")
        batch_op.drop_column("email")
        batch_op.drop_column("country")
        batch_op.drop_column("postcode")

    with op.batch_alter_table("link_clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_link_clicks_member")

    op.drop_table("link_clicks")
    op.drop_table("suppressions")
    op.drop_table("segments")
