"""purchases.access_granted_at: finish an interrupted grant when a payment is delivered again

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("access_granted_at", storage.types.UTCDateTime(timezone=True), nullable=True))
    # Purchases recorded before this column existed were granted when they were recorded.
    op.execute("UPDATE purchases SET access_granted_at = purchased_at")


def downgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("access_granted_at")
