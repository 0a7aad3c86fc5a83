"""Communities: look them up by name, list them, and find the last day with activity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, func, select

from storage.models import (
    Community,
    CommunityDailyTotals,
)


@dataclass(frozen=True, slots=True)
class CommunityInfo:
    """A community as stored."""

    id: int
    name: str
    timezone: str


def find_community(conn: Connection, name: str) -> CommunityInfo | None:
    """The stored community with this name, if any."""
    row = conn.execute(select(Community.id, Community.name, Community.timezone).where(Community.name == name)).first()
    return None if row is None else CommunityInfo(int(row.id), row.name, row.timezone)


def list_communities(conn: Connection) -> list[CommunityInfo]:
    """Every stored community, by name."""
    rows = conn.execute(select(Community.id, Community.name, Community.timezone).order_by(Community.name))
    return [CommunityInfo(int(r.id), r.name, r.timezone) for r in rows]


def latest_activity_day(conn: Connection, community_id: int) -> date | None:
    """The last local day with any recorded activity (a sensible default "as of" for imported history)."""
    value = conn.execute(
        select(func.max(CommunityDailyTotals.day)).where(CommunityDailyTotals.community_id == community_id)
    ).scalar()
    if value is None:
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))
