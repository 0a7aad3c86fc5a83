"""surveys: NPS questions and native polls, members' answers, and the survey DMs queued and sent

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0011"
# Main's head when this was written; the integrator re-chains it after 0010/0011.
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, storage.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("id", _ID, nullable=False),
        sa.Column("community_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("question", sa.String(length=300), nullable=False),
        sa.Column("options", sa.Text(), nullable=True),
        sa.Column("course_id", _ID, nullable=True),
        sa.Column("platform", sa.String(length=16), nullable=True),
        sa.Column("channel_id", sa.String(length=64), nullable=True),
        sa.Column("platform_message_id", sa.String(length=64), nullable=True),
        sa.Column("poll_id", sa.String(length=128), nullable=True),
        sa.Column("audience", sa.Integer(), nullable=True),
        sa.Column("created_by_member_id", _ID, nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name=op.f("fk_surveys_community_id_communities"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_surveys_course_id_courses"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_member_id"],
            ["members.id"],
            name=op.f("fk_surveys_created_by_member_id_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("platform", "poll_id", name=op.f("uq_surveys_platform_poll_id")),
    )
    op.create_index("ix_surveys_community_id_created_at", "surveys", ["community_id", "created_at"])
    op.create_table(
        "survey_responses",
        sa.Column("id", _ID, nullable=False),
        sa.Column("survey_id", _ID, nullable=False),
        sa.Column("member_id", _ID, nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=True),
        sa.Column("option", sa.SmallInteger(), nullable=True),
        sa.Column("comment", sa.String(length=1000), nullable=True),
        _time("answered_at"),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys.id"], name=op.f("fk_survey_responses_survey_id_surveys"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_survey_responses_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_responses")),
        sa.UniqueConstraint("survey_id", "member_id", name=op.f("uq_survey_responses_survey_id_member_id")),
    )
    op.create_index("ix_survey_responses_member_id", "survey_responses", ["member_id"])
    op.create_table(
        "survey_dms",
        sa.Column("id", _ID, nullable=False),
        sa.Column("survey_id", _ID, nullable=False),
        sa.Column("member_id", _ID, nullable=False),
        _time("queued_at"),
        _time("claimed_at", nullable=True),
        _time("sent_at", nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys.id"], name=op.f("fk_survey_dms_survey_id_surveys"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_survey_dms_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_dms")),
        sa.UniqueConstraint("survey_id", "member_id", name=op.f("uq_survey_dms_survey_id_member_id")),
    )
    op.create_index("ix_survey_dms_member_id", "survey_dms", ["member_id"])


def downgrade() -> None:
    op.drop_table("survey_dms")
    op.drop_table("survey_responses")
    op.drop_index("ix_surveys_community_id_created_at", table_name="surveys")
    op.drop_table("surveys")
