"""digests: the owners' text as sent, to show it again after a restart

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Digests sent before this revision keep NULL: their text was never stored.
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("owner_text", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("owner_text")
