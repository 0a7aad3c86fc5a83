"""stripe subscriptions: who bills a subscription, and webhook events claimed before they are applied

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: the chat platform bills it (Telegram Stars, Discord); "stripe": a card subscription.
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("provider", sa.String(length=16), nullable=True))
    # NULL while a delivery is applying the event (a lease: received_at is when it was taken); set once applied.
    with op.batch_alter_table("webhook_events") as batch:
        batch.add_column(sa.Column("handled_at", storage.types.UTCDateTime(timezone=True), nullable=True))
    # Events stored before this revision were stored after their effect: they are handled.
    op.execute("UPDATE webhook_events SET handled_at = received_at")


def downgrade() -> None:
    op.execute("DELETE FROM webhook_events WHERE handled_at IS NULL")
    with op.batch_alter_table("webhook_events") as batch:
        batch.drop_column("handled_at")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("provider")
