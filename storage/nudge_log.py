"""The nudge log: who may be nudged, the nudges sent, unreachable members, and whether nudged members came back.

Every write commits before the function returns, so two bot processes sharing one PostgreSQL database see each
other's nudges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, insert, select, update

from storage.engine import writing
from storage.models import (
    Channel,
    ChannelDailyActivity,
    Member,
    MemberActivity,
    MemberDailyActivity,
    Nudge,
)


@dataclass(frozen=True, slots=True)
class NudgeCandidate:
    """What the nudge run needs to know about an inactive member."""

    member_id: int
    platform: str
    user_id: str
    name: str
    last_active_at: datetime | None
    opted_out: bool
    unreachable: bool
    last_nudged_at: datetime | None


def nudge_candidates(engine: Engine, community_id: int, member_ids: Sequence[int]) -> list[NudgeCandidate]:
    """The members ``member_ids`` (order kept) with their preferences and last nudge decision."""
    if not member_ids:
        return []
    last_nudge = (
        select(Nudge.member_id, func.max(Nudge.decided_at).label("last"))
        .where(Nudge.community_id == community_id)
        .group_by(Nudge.member_id)
        .subquery()
    )
    found: dict[int, NudgeCandidate] = {}
    with engine.connect() as conn:
        for start in range(0, len(member_ids), 500):
            chunk = list(member_ids[start : start + 500])
            query = (
                select(
                    Member.id,
                    Member.platform,
                    Member.platform_user_id,
                    func.coalesce(Member.display_name, Member.platform_user_id),
                    MemberActivity.last_active_at,
                    Member.nudges_opt_out,
                    Member.dm_unreachable_at,
                    last_nudge.c.last,
                )
                .outerjoin(MemberActivity, MemberActivity.member_id == Member.id)
                .outerjoin(last_nudge, last_nudge.c.member_id == Member.id)
                .where(Member.community_id == community_id, Member.id.in_(chunk))
            )
            for row in conn.execute(query):
                found[int(row[0])] = NudgeCandidate(
                    member_id=int(row[0]),
                    platform=row[1],
                    user_id=row[2],
                    name=row[3],
                    last_active_at=row[4],
                    opted_out=bool(row[5]),
                    unreachable=row[6] is not None,
                    last_nudged_at=row[7],
                )
    return [found[m] for m in member_ids if m in found]


def nudges_sent_since(engine: Engine, community_id: int, since: datetime) -> int:
    """Nudges actually sent since ``since`` (the daily budget counts these)."""
    with engine.connect() as conn:
        count = conn.execute(
            select(func.count())
            .select_from(Nudge)
            .where(Nudge.community_id == community_id, Nudge.group == "nudged", Nudge.sent_at >= since)
        ).scalar_one()
    return int(count)


def record_nudge(
    engine: Engine,
    community_id: int,
    member_id: int,
    *,
    group: str,
    decided_at: datetime,
    sent_at: datetime | None = None,
    error: str | None = None,
) -> int:
    """Record a nudge decision (``nudged`` or ``holdout``) and, for nudged members, whether it was sent."""
    with writing(engine).begin() as conn:
        nudge_id = conn.execute(
            insert(Nudge)
            .values(
                community_id=community_id,
                member_id=member_id,
                group=group,
                decided_at=decided_at,
                sent_at=sent_at,
                error=None if error is None else error[:500],
            )
            .returning(Nudge.id)
        ).scalar_one()
    return int(nudge_id)


def mark_unreachable(engine: Engine, member_id: int, *, now: datetime) -> None:
    """Remember that direct messages to this member fail (they blocked the bot or closed their DMs)."""
    with writing(engine).begin() as conn:
        conn.execute(update(Member).where(Member.id == member_id).values(dm_unreachable_at=now))


def record_nudge_outcomes(
    engine: Engine, community_id: int, *, now: datetime, timezone: ZoneInfo, window_days: int
) -> int:
    """Set ``reactivated_at`` on nudge decisions whose member came back within ``window_days`` after them.

    Both groups are measured the same way: activity after the decision instant, on that local day or the
    ``window_days`` days after it. Decisions whose window closed without activity keep ``reactivated_at`` empty.

    Returns:
        How many decisions got an outcome in this call.
    """
    # Outcomes come from daily rollups, so a late look is still right; a month of slack covers a bot that was down.
    horizon = now - timedelta(days=window_days + 30)
    with engine.connect() as conn:
        pending = conn.execute(
            select(Nudge.id, Nudge.member_id, Nudge.decided_at, MemberActivity.last_active_at)
            .outerjoin(MemberActivity, MemberActivity.member_id == Nudge.member_id)
            .where(
                Nudge.community_id == community_id,
                Nudge.reactivated_at.is_(None),
                Nudge.decided_at >= horizon,
            )
        ).all()
    updated = 0
    for nudge_id, member_id, decided_at, last_active in pending:
        back = _came_back_at(engine, community_id, member_id, decided_at, last_active, timezone, window_days)
        if back is None:
            continue
        with writing(engine).begin() as conn:
            conn.execute(update(Nudge).where(Nudge.id == nudge_id).values(reactivated_at=back))
        updated += 1
    return updated


def _came_back_at(
    engine: Engine,
    community_id: int,
    member_id: int,
    decided_at: datetime,
    last_active: datetime | None,
    timezone: ZoneInfo,
    window_days: int,
) -> datetime | None:
    window_end = decided_at + timedelta(days=window_days)
    if last_active is None or last_active <= decided_at:
        return None  # nothing at all since the decision
    if last_active <= window_end:
        return last_active
    # Active since, but the newest activity is past the window: look for a day inside it (days are local).
    first_day = decided_at.astimezone(timezone).date() + timedelta(days=1)
    last_day = window_end.astimezone(timezone).date()
    with engine.connect() as conn:
        day = conn.execute(
            select(func.min(MemberDailyActivity.day)).where(
                MemberDailyActivity.community_id == community_id,
                MemberDailyActivity.member_id == member_id,
                MemberDailyActivity.day >= first_day,
                MemberDailyActivity.day <= last_day,
            )
        ).scalar()
    if day is None:
        return None
    return datetime.combine(day, time(0), tzinfo=timezone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class NudgeOutcomeCounts:
    """Decisions whose outcome window has closed, by group."""

    nudged: int
    nudged_reactivated: int
    holdout: int
    holdout_reactivated: int


def nudge_outcome_counts(
    engine: Engine, community_id: int, *, decided_between: tuple[datetime, datetime]
) -> NudgeOutcomeCounts:
    """Count decisions made in ``decided_between`` (their 7-day window must have closed) and their comebacks.

    Nudges that could not be delivered are left out: those members never saw a message.
    """
    start, end = decided_between
    counts = {("nudged", False): 0, ("nudged", True): 0, ("holdout", False): 0, ("holdout", True): 0}
    with engine.connect() as conn:
        rows = conn.execute(
            select(Nudge.group, Nudge.reactivated_at.is_not(None), func.count())
            .where(
                Nudge.community_id == community_id,
                Nudge.decided_at >= start,
                Nudge.decided_at < end,
                Nudge.error.is_(None),
            )
            .group_by(Nudge.group, Nudge.reactivated_at.is_not(None))
        ).all()
    for group, came_back, n in rows:
        counts[(group, bool(came_back))] = int(n)
    return NudgeOutcomeCounts(
        nudged=counts[("nudged", False)] + counts[("nudged", True)],
        nudged_reactivated=counts[("nudged", True)],
        holdout=counts[("holdout", False)] + counts[("holdout", True)],
        holdout_reactivated=counts[("holdout", True)],
    )


def busiest_channels(engine: Engine, community_id: int, since: date, *, limit: int = 2) -> list[tuple[str, int]]:
    """Channel names and message counts since the local day ``since``, busiest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(func.coalesce(Channel.name, Channel.platform_channel_id), func.sum(ChannelDailyActivity.messages))
            .join(Channel, Channel.id == ChannelDailyActivity.channel_id)
            .where(ChannelDailyActivity.community_id == community_id, ChannelDailyActivity.day >= since)
            .group_by(Channel.id, Channel.name, Channel.platform_channel_id)
            .order_by(func.sum(ChannelDailyActivity.messages).desc())
            .limit(limit)
        ).all()
    return [(str(name), int(n)) for name, n in rows if n]
