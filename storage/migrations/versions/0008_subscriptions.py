"""subscriptions: recurring access to monthly courses and their paid periods

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, storage.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("community_id", _ID, nullable=False),
        sa.Column("member_id", _ID, nullable=False),
        sa.Column("course_id", _ID, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("subscription_ref", sa.String(length=200), nullable=False),
        _time("started_at"),
        _time("ends_at"),
        _time("cancelled_at", nullable=True),
        _time("ended_at", nullable=True),
        _time("reminded_for", nullable=True),
        _time("comeback_sent_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_subscriptions_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_subscriptions_member_id_members"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_subscriptions_course_id_courses"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("platform", "subscription_ref", name=op.f("uq_subscriptions_platform_subscription_ref")),
    )
    op.create_index("ix_subscriptions_member_id", "subscriptions", ["member_id"])
    op.create_index("ix_subscriptions_community_id_ends_at", "subscriptions", ["community_id", "ends_at"])
    op.create_table(
        "subscription_periods",
        sa.Column("id", _ID, nullable=False),
        sa.Column("subscription_id", _ID, nullable=False),
        sa.Column("member_id", _ID, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("charge_id", sa.String(length=200), nullable=False),
        _time("starts_at"),
        _time("ends_at"),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_periods_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_subscription_periods_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_periods")),
        sa.UniqueConstraint("platform", "charge_id", name=op.f("uq_subscription_periods_platform_charge_id")),
    )
    op.create_index("ix_subscription_periods_subscription_id", "subscription_periods", ["subscription_id"])
    op.create_index("ix_subscription_periods_member_id", "subscription_periods", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_subscription_periods_member_id", table_name="subscription_periods")
    op.drop_index("ix_subscription_periods_subscription_id", table_name="subscription_periods")
    op.drop_table("subscription_periods")
    op.drop_index("ix_subscriptions_community_id_ends_at", table_name="subscriptions")
    op.drop_index("ix_subscriptions_member_id", table_name="subscriptions")
    op.drop_table("subscriptions")
