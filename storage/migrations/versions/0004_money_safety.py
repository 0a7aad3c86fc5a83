"""money: unmatched payments, test purchases, access that ends, member usernames

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("is_test", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("access_ends_at", storage.types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("username", sa.String(length=64), nullable=True))
    op.create_table(
        "unmatched_payments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("community_id", _ID, nullable=False),
        sa.Column("member_id", _ID, nullable=True),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("charge_id", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("received_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("problem", sa.String(length=500), nullable=False),
        sa.Column("refunded_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refunded_by_member_id", _ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_unmatched_payments_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_unmatched_payments_member_id_members"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["refunded_by_member_id"],
            ["members.id"],
            name=op.f("fk_unmatched_payments_refunded_by_member_id_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unmatched_payments")),
        sa.UniqueConstraint("platform", "charge_id", name=op.f("uq_unmatched_payments_platform_charge_id")),
    )


def downgrade() -> None:
    op.drop_table("unmatched_payments")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("username")
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("access_ends_at")
        batch.drop_column("is_test")
