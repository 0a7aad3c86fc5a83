"""What the scheduler remembers: job runs, digest claims (sent once per community and week), nudge decisions.

Every write commits before the function returns, so two bot processes sharing one PostgreSQL database see each
other's claims: a digest week is claimed by inserting its unique row, and only the process whose insert won sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.engine import writing
from storage.member_queries import ledger
from storage.models import (
    Channel,
    ChannelDailyActivity,
    Digest,
    JobRun,
    Member,
    MemberActivity,
    MemberDailyActivity,
    Nudge,
)

# --- job runs --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRunRecord:
    """One recorded run of a job."""

    id: int
    job: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    detail: str | None
    host: str | None


def start_job_run(engine: Engine, community_id: int, job: str, *, now: datetime, host: str) -> int:
    """Record that ``job`` started; returns the run id for :func:`finish_job_run`."""
    with writing(engine).begin() as conn:
        run_id = conn.execute(
            insert(JobRun)
            .values(community_id=community_id, job=job, started_at=now, outcome="running", host=host)
            .returning(JobRun.id)
        ).scalar_one()
    return int(run_id)


def finish_job_run(engine: Engine, run_id: int, *, now: datetime, outcome: str, detail: str | None = None) -> None:
    """Record how a run ended: ``ok``, ``skipped`` or ``failed`` (``detail`` says what it did or the error)."""
    with writing(engine).begin() as conn:
        conn.execute(
            update(JobRun)
            .where(JobRun.id == run_id)
            .values(finished_at=now, outcome=outcome, detail=None if detail is None else detail[:4000])
        )


def last_job_runs(engine: Engine, community_id: int) -> dict[str, JobRunRecord]:
    """The newest run of each job."""
    newest = (
        select(JobRun.job, func.max(JobRun.id).label("id"))
        .where(JobRun.community_id == community_id)
        .group_by(JobRun.job)
        .subquery()
    )
    query = select(JobRun).join(newest, JobRun.id == newest.c.id).order_by(JobRun.job)
    with engine.connect() as conn:
        return {
            row.job: JobRunRecord(row.id, row.job, row.started_at, row.finished_at, row.outcome, row.detail, row.host)
            for row in conn.execute(query)
        }


# --- digests -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestRecord:
    """A claimed digest week."""

    week: str
    claimed_at: datetime
    sent_at: datetime | None
    late: bool
    claimed_by: str | None


def claim_digest(
    engine: Engine,
    community_id: int,
    week: str,
    *,
    now: datetime,
    late: bool,
    claimed_by: str,
    stale_after: timedelta = timedelta(minutes=30),
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


def mark_digest_sent(engine: Engine, community_id: int, week: str, *, now: datetime) -> None:
    """Record that the claimed digest went out."""
    with writing(engine).begin() as conn:
        conn.execute(update(Digest).where(Digest.community_id == community_id, Digest.week == week).values(sent_at=now))


def digest_record(engine: Engine, community_id: int, week: str) -> DigestRecord | None:
    """The claim of ``week``, if any."""
    with engine.connect() as conn:
        row = conn.execute(select(Digest).where(Digest.community_id == community_id, Digest.week == week)).one_or_none()
    if row is None:
        return None
    return DigestRecord(row.week, row.claimed_at, row.sent_at, row.late, row.claimed_by)


# --- nudges --------------------------------------------------------------------------------------------------


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


# --- what happened while a member was away (nudge highlights) ------------------------------------------------


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


# --- course access (reconciliation) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CourseAccess:
    """Who should and who should not have a course's access on one platform, by platform user id."""

    course: str
    owners: frozenset[str]  # at least one live (not refunded) purchase
    refunded: frozenset[str]  # bought, but no purchase of this course gives access any more (refunded, ended)


def course_access(
    engine: Engine, community_id: int, platform: str, *, now: datetime, include_test: bool = False
) -> dict[str, CourseAccess]:
    """Per course key: the members (platform user ids) who own it at ``now`` and those who no longer do.

    A purchase stops giving access when it is refunded or its access ended (an expired Discord entitlement).
    Test purchases give access only with ``include_test`` (``[discord] grant_test_entitlements``); otherwise their
    buyers count as not owning the course, so a role given for one is taken away.
    """
    owners: dict[str, set[str]] = {}
    bought: dict[str, set[str]] = {}
    for row in ledger(engine, community_id, include_test=True):
        if row.platform != platform or row.member_user_id is None:
            continue  # another platform's sale, or a forgotten buyer (nobody left to give or take access)
        bought.setdefault(row.course_key, set()).add(row.member_user_id)
        if row.live(now) and (include_test or not row.is_test):
            owners.setdefault(row.course_key, set()).add(row.member_user_id)
    return {
        course: CourseAccess(course, frozenset(owners.get(course, set())), frozenset(users - owners.get(course, set())))
        for course, users in bought.items()
    }


def first_job_run_at(engine: Engine, community_id: int) -> datetime | None:
    """When the scheduler first ran for the community (before that, the bot cannot have missed a digest)."""
    with engine.connect() as conn:
        first: datetime | None = conn.execute(
            select(func.min(JobRun.started_at)).where(JobRun.community_id == community_id)
        ).scalar()
    return first
