"""Build a community report from the database: the glue between storage queries and the analytics."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine

from analytics.activity import ActivityRows
from analytics.frames import CommunityFrames
from analytics.members import current_member_mask, inactive_members, member_table
from analytics.report import build_report, history_start, range_start
from analytics.results import MemberStatus, Report
from analytics.surveys import survey_results
from bot.config import HelpSettings
from bot.importers import EARLIEST_TIME, LATEST_TIME
from bot.questions import questions_section
from storage.communities import CommunityInfo, find_community, latest_activity_day, list_communities
from storage.report_frames import last_active_before, load_frames, member_days, members
from storage.surveys import survey_frames

BUILT_IN_OWNERS: frozenset[tuple[str, str]] = frozenset({("console", "owner"), ("simulated", "owner")})
"""The console's and the demo's own owner account (``platform``, user id): the host, not a member."""

# The days and range a report may cover: the calendar window the importers accept for message times (far outside
# it the week and look-back arithmetic leaves what a date can hold). Twenty years of weekly rows is more history
# than any community has.
EARLIEST_AS_OF = EARLIEST_TIME.date()
LATEST_AS_OF = (LATEST_TIME - timedelta(days=1)).date()
MAX_WEEKS = 1040


class ReportError(Exception):
    """The report cannot be built; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """What to report on."""

    community: str
    as_of: date | None = None  # default: today in the community's time zone
    weeks: int = 12
    inactive_after_days: int = 14
    top_n: int = 10
    not_members: frozenset[tuple[str, str]] = BUILT_IN_OWNERS  # (platform, user id) accounts that are not members
    help: HelpSettings | None = None  # [help]: the report's questions section is computed when given


def check_report_day(day: date, option: str = "--as-of") -> date:
    """``day`` when a report, digest or nudge plan can be computed for it.

    Raises:
        ReportError: The day lies outside 1970-01-01 .. 2099-12-31; the message states the bounds.
    """
    if EARLIEST_AS_OF <= day <= LATEST_AS_OF:
        return day
    raise ReportError(
        f"{option}: expected a day from {EARLIEST_AS_OF.isoformat()} to {LATEST_AS_OF.isoformat()}, "
        f"got {day.isoformat()}"
    )


def resolve_community(engine: Engine, name: str, *, choose: str = "pass --community NAME") -> CommunityInfo:
    """The stored community, or an error that says what to do.

    Args:
        engine: The database.
        name: The community's name.
        choose: How the reader picks another community (the command's option or setting), used when the
            database holds other communities.

    Raises:
        ReportError: No such community: on an empty database the message says how a community gets there
            (a newcomer's first step), otherwise it lists the stored ones.
    """
    with engine.connect() as conn:
        info = find_community(conn, name)
        if info is None:
            known = [c.name for c in list_communities(conn)]
    if info is None and known:
        listed = ", ".join(repr(k) for k in known)
        raise ReportError(f"no community {name!r} in this database (it holds {listed}); {choose}")
    if info is None:
        raise ReportError(
            f"nothing is stored for {name!r} yet: start the bot (`cohortbot run`) or import its history "
            "(`cohortbot import discord-export|telegram-export ...`) first"
        )
    return info


def build_community_report(engine: Engine, request: ReportRequest, *, now: datetime) -> tuple[Report, str | None]:
    """Load the frames and compute the report.

    Args:
        engine: The database.
        request: Community, day and range.
        now: The current instant (the default ``as_of`` is its local date).

    Returns:
        The report, and a hint for the reader when the chosen day shows no recent activity but older history
        exists (typical right after importing an old export).
    """
    if not 1 <= request.weeks <= MAX_WEEKS:
        raise ReportError(f"--weeks: expected 1 to {MAX_WEEKS} weeks (20 years), got {request.weeks}")
    if request.as_of is not None:
        check_report_day(request.as_of)
    info = resolve_community(engine, request.community)
    tz = ZoneInfo(info.timezone)
    as_of = request.as_of or now.astimezone(tz).date()
    frames = load_frames(
        engine,
        info,
        as_of,
        history_start=history_start(as_of, request.weeks),
        not_members=request.not_members,
        range_start=range_start(as_of, request.weeks),
    )
    with engine.connect() as conn:
        latest = latest_activity_day(conn, info.id)
    report, hint = report_from_frames(
        frames,
        as_of=as_of,
        weeks=request.weeks,
        inactive_after_days=request.inactive_after_days,
        top_n=request.top_n,
        today=now.astimezone(tz).date(),
        latest=latest,
    )
    if request.help is not None:
        section = questions_section(
            engine,
            info.id,
            request.help,
            timezone=tz,
            first_week=range_start(as_of, request.weeks),
            as_of=as_of,
            top_n=request.top_n,
        )
        report = replace(report, questions=section)
    return with_surveys(engine, report, info.id), hint


def with_surveys(engine: Engine, report: Report, community_id: int) -> Report:
    """The report with its ``surveys`` section: every answer given up to the end of ``as_of`` (local day)."""
    end = datetime.combine(report.as_of + timedelta(days=1), time(0), tzinfo=ZoneInfo(report.timezone))
    results = survey_results(survey_frames(engine, community_id), timezone=report.timezone, until=end)
    return replace(report, surveys=results)


def report_from_frames(
    frames: CommunityFrames,
    *,
    as_of: date,
    weeks: int,
    inactive_after_days: int,
    top_n: int,
    today: date,
    latest: date | None,
    table: pd.DataFrame | None = None,
) -> tuple[Report, str | None]:
    """Compute the report of loaded frames, with its last complete day and the reader's hint.

    Shared by :func:`build_community_report` and the dashboard, which loads its frames incrementally.

    Args:
        frames: The frames of the range ending on ``as_of``.
        as_of: The report's last day.
        weeks: The range in weeks.
        inactive_after_days: Days without activity after which a member counts as inactive.
        top_n: How many members the top lists name.
        today: The community's local date now.
        latest: The last day with any activity, or None when nothing has been recorded.
        table: The member table of the same frames when the caller already built it.

    Returns:
        The report, and a hint for the reader when the chosen day shows no recent activity but older history
        exists (typical right after importing an old export).
    """
    # A report for today (or a later day) is not over yet: its last day is still being counted.
    last_complete = as_of if as_of < today else today - timedelta(days=1)
    data_ends = latest if latest is not None and latest < as_of else None
    report = build_report(
        frames,
        weeks=weeks,
        inactive_after_days=inactive_after_days,
        top_n=top_n,
        compare_through=min(last_complete, data_ends or last_complete),
        table=table,
    )
    report = replace(report, last_complete_day=last_complete, data_ends=data_ends)
    hint = None
    if latest is not None and (as_of - latest).days > 28:
        hint = (
            f"no activity in the 28 days before {as_of.isoformat()}; the latest activity is on "
            f"{latest.isoformat()}: try --as-of {latest.isoformat()}"
        )
    elif latest is None:
        hint = "nothing has been recorded for this community yet"
    return report, hint


def current_member_ids(
    engine: Engine, community: str, *, as_of: date, not_members: frozenset[tuple[str, str]] = BUILT_IN_OWNERS
) -> frozenset[int]:
    """The ids of the community's members on ``as_of``, the people a report's "Members" counts.

    Conversion lines divide by this same set, so that ``/report``, ``/revenue`` and the digest agree.

    Args:
        engine: The database.
        community: The community's name.
        as_of: The local day.
        not_members: Accounts that are not members, as in :class:`ReportRequest`.

    Returns:
        Member ids.
    """
    info = resolve_community(engine, community)
    with engine.connect() as conn:
        frame = members(conn, info.id, not_members=not_members)
    mask = current_member_mask(frame, as_of=as_of, timezone=ZoneInfo(info.timezone))
    return frozenset(int(i) for i in frame["member_id"].to_numpy()[mask])


def inactive_members_as_of(
    engine: Engine, community: str, *, as_of: date, inactive_after_days: int
) -> list[MemberStatus]:
    """The members a report as of ``as_of`` would list as inactive, without building the rest of the report.

    The daily nudge run needs only this list; loading the same history as :func:`build_community_report` (the
    look-back before ``as_of``) and computing only the member table keeps the list identical at a fraction of
    the cost.

    Args:
        engine: The database.
        community: The community's name.
        as_of: The local day the list is for.
        inactive_after_days: Days of silence (and of membership) after which a member is inactive.

    Returns:
        The inactive members in the report's order (most recently active first, never-active members last).
    """
    info = resolve_community(engine, community)
    tz = ZoneInfo(info.timezone)
    first_day = history_start(as_of, weeks=1)  # the same history a one-week report loads
    end = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    with engine.connect() as conn:
        days = member_days(conn, info.id, first_day, as_of)
        frame = members(conn, info.id, not_members=BUILT_IN_OWNERS)
        earlier = last_active_before(conn, info.id, first_day, end)
    table = member_table(ActivityRows.from_frame(days), frame, as_of=as_of, timezone=tz, last_active_before=earlier)
    return inactive_members(table, inactive_after_days=inactive_after_days)
