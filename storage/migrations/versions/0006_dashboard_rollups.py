"""dashboard rollups: activity by local hour, and active members per channel and day

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "community_hourly_activity",
        sa.Column("community_id", _ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("reactions", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_community_hourly_activity_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("community_id", "day", "hour", name=op.f("pk_community_hourly_activity")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "channel_member_daily",
        sa.Column("community_id", _ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel_id", _ID, nullable=False),
        sa.Column("member_id", _ID, nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_channel_member_daily_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_channel_member_daily_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_channel_member_daily_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("community_id", "day", "channel_id", "member_id", name=op.f("pk_channel_member_daily")),
        sqlite_with_rowid=False,
    )
    # Rollups of events stored before this revision are filled by `cohortbot db rebuild-rollups`.


def downgrade() -> None:
    op.drop_table("channel_member_daily")
    op.drop_table("community_hourly_activity")
