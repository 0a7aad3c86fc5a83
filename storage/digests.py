"""Digest claims: each community's weekly digest is sent once per week.

A digest week is claimed by inserting its unique row and the write commits before the function returns, so when
two bot processes share one PostgreSQL database only the process whose insert won sends. When it has been sent,
the row keeps the owners' text as delivered, so it can be shown again later exactly as the owners read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.engine import writing
from storage.models import (
    Digest,
)

STALE_CLAIM_AFTER = timedelta(minutes=30)
"""A claim not marked sent by then is taken to be from a process that died, and may be taken over."""


@dataclass(frozen=True, slots=True)
class DigestRecord:
    """A claimed digest week."""

    week: str
    claimed_at: datetime
    sent_at: datetime | None
    late: bool
    claimed_by: str | None
    owner_text: str | None = None
    """The owners' version as delivered (plain text); None if no owner received it or it was sent before 0005."""


def claim_digest(
    engine: Engine,
    community_id: int,
    week: str,
    *,
    now: datetime,
    late: bool,
    claimed_by: str,
    stale_after: timedelta = STALE_CLAIM_AFTER,
) -> bool:
    """Claim the digest of ``week`` for sending; True only for the one caller that may send it.

    A claim that never got to ``sent`` (the process died while sending) can be taken over once it is older than
    ``stale_after``, so a crash delays a digest instead of losing it.
    """
    upsert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with writing(engine).begin() as conn:
        won = conn.execute(
            upsert(Digest)
            .values(community_id=community_id, week=week, claimed_at=now, late=late, claimed_by=claimed_by)
            .on_conflict_do_nothing(index_elements=["community_id", "week"])
            .returning(Digest.id)
        ).scalar()
        if won is not None:
            return True
        taken_over = conn.execute(
            update(Digest)
            .where(
                Digest.community_id == community_id,
                Digest.week == week,
                Digest.sent_at.is_(None),
                Digest.claimed_at < now - stale_after,
            )
            .values(claimed_at=now, claimed_by=claimed_by, late=True)
        )
        return bool(taken_over.rowcount == 1)


def mark_digest_sent(
    engine: Engine, community_id: int, week: str, *, now: datetime, owner_text: str | None = None
) -> None:
    """Record that the claimed digest went out, with the owners' text as they received it (if any owner did)."""
    with writing(engine).begin() as conn:
        conn.execute(
            update(Digest)
            .where(Digest.community_id == community_id, Digest.week == week)
            .values(sent_at=now, owner_text=owner_text)
        )


def digest_record(engine: Engine, community_id: int, week: str) -> DigestRecord | None:
    """The claim of ``week``, if any."""
    with engine.connect() as conn:
        row = conn.execute(select(Digest).where(Digest.community_id == community_id, Digest.week == week)).one_or_none()
    return None if row is None else _record(row)


def latest_sent_digest(engine: Engine, community_id: int) -> DigestRecord | None:
    """The most recently sent digest of the community (by sending time), if any was sent."""
    with engine.connect() as conn:
        row = conn.execute(
            select(Digest)
            .where(Digest.community_id == community_id, Digest.sent_at.is_not(None))
            .order_by(Digest.sent_at.desc(), Digest.id.desc())
            .limit(1)
        ).one_or_none()
    return None if row is None else _record(row)


def _record(row: Row[Any]) -> DigestRecord:
    return DigestRecord(row.week, row.claimed_at, row.sent_at, row.late, row.claimed_by, row.owner_text)
