"""The cohortbot side of ``python -m bench analytics``: the report as ``cohortbot report`` builds it, timed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from bench.analytics.common import (
    COURSE_FIELDS,
    INACTIVE_AFTER_DAYS,
    REPORT_WEEKS,
    TOP_N,
    Plan,
    best_of,
    peak_memory_bytes,
    reset_peak_memory,
)
from bench.synthetic import (
    COMMUNITY,
)

# --- our side: the report, as `cohortbot report` builds it --------------------------------------------------------


def report_metrics(report: Any) -> dict[str, Any]:
    """The compared metrics of an ``analytics.results.Report``, as plain values."""
    from analytics.results import ActivitySummary

    m: dict[str, Any] = {"members": report.members}
    m["daily.day"] = [d.day.isoformat() for d in report.daily]
    for name in ("dau", "wau", "mau"):
        m[f"daily.{name}"] = [getattr(d, name) for d in report.daily]
    for name in ("week", "active", "new", "left", "messages", "reactions", "communicators", "active_channels"):
        m[f"weekly.{name}"] = [getattr(w, name) for w in report.weekly]
    for f in fields(ActivitySummary):
        m[f"summary.{f.name}"] = getattr(report.summary, f.name)
    for name in ("cohort", "size", "retention", "activation_rate", "activation_eligible", "second_week_retention"):
        m[f"cohorts.{name}"] = [
            list(getattr(c, name)) if name == "retention" else getattr(c, name) for c in report.cohorts
        ]
    m["activation_rate"] = report.activation_rate
    m["activation_eligible"] = report.activation_eligible
    m["inactive"] = [[s.member_id, s.days_since_active] for s in report.inactive]
    m["at_risk"] = [[s.member_id, s.score] for s in report.at_risk]
    m["segments"] = dict(report.segments)
    m["top_members"] = [[s.member_id, s.score] for s in report.top_members]
    m["top_members.details"] = [
        [s.member_id, s.messages_28d, s.segment, s.days_since_active] for s in report.top_members
    ]
    commerce = report.commerce
    for name in COURSE_FIELDS:
        values = [getattr(c, name) for c in commerce.courses]
        if name == "price_points":
            values = [[[p.price, p.sales] for p in points] for points in values]
        m[f"commerce.courses.{name}"] = values
    m["commerce.revenue_weeks"] = [[w.week, w.currency, w.gross, w.refunded, w.net] for w in commerce.revenue_weeks]
    for name in (
        "buyers",
        "members",
        "conversion",
        "median_days_to_first_purchase",
        "buyer_retention_30d",
        "buyer_retention_eligible",
        "refund_rate",
    ):
        m[f"commerce.{name}"] = getattr(commerce, name)
    m["commerce.cohort_conversion"] = [[c.cohort, c.size, c.buyers, c.conversion] for c in commerce.cohort_conversion]
    m["commerce.ltv_cohorts"] = [
        [c.cohort, c.currency, c.members, c.buyers, c.net, c.per_member] for c in commerce.ltv_cohorts
    ]
    subs = report.subscriptions
    m["subscriptions.active"] = subs.active
    m["subscriptions.subscribers"] = subs.subscribers
    m["subscriptions.mrr"] = [[currency, amount] for currency, amount in subs.mrr]
    m["subscriptions.renewals_due"] = subs.renewals_due
    m["subscriptions.renewed"] = subs.renewed
    m["subscriptions.renewal_rate"] = subs.renewal_rate
    m["subscriptions.weeks"] = [[w.week, w.new, w.churned, w.active] for w in subs.weeks]
    m["subscriptions.courses"] = [
        [c.course, c.active, c.new, c.churned, c.renewals_due, c.renewal_rate] for c in subs.courses
    ]
    m["hour_of_week"] = [[h.weekday, h.hour, h.messages, h.reactions] for h in report.hour_of_week]
    m["channels"] = [
        [c.channel_id, c.name, c.parent, c.messages, c.active_members, c.previous_messages, list(c.weekly_messages)]
        for c in report.channels
    ]
    m["growth"] = [[g.day.isoformat(), g.joins, g.leaves, g.members] for g in report.growth]
    return m


def _or_empty(frame: pd.DataFrame | None) -> pd.DataFrame:
    return pd.DataFrame() if frame is None else frame


def measure_ours(url: str, as_of: date, repeats: int) -> dict[str, Any]:
    """Time ``build_community_report`` on the database at ``url`` (the cached SQLite file, or its copy in
    PostgreSQL); run in a fresh process, so that its peak RSS is ours."""
    from analytics.frames import CommunityFrames
    from analytics.report import build_report
    from bot.reporting import ReportRequest, build_community_report
    from storage import communities, report_frames, subscription_figures
    from storage.engine import make_engine

    engine = make_engine(url)
    request = ReportRequest(
        community=COMMUNITY, as_of=as_of, weeks=REPORT_WEEKS, inactive_after_days=INACTIVE_AFTER_DAYS, top_n=TOP_N
    )
    now = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    reset_peak_memory()  # the imports and the engine above are not the report's
    times, (report, _hint) = best_of(lambda: build_community_report(engine, request, now=now), repeats)
    peak = peak_memory_bytes()

    # Where the seconds go: the same reads and the same analytics, each part timed on its own (one more run).
    from analytics.report import LOOKBACK_DAYS, range_start

    plan = Plan.of(as_of, REPORT_WEEKS, LOOKBACK_DAYS)
    history_start = date(1970, 1, 1) + timedelta(days=plan.score_from)
    first = range_start(as_of, REPORT_WEEKS)
    channels_from = min(history_start, first - (as_of - first) - timedelta(days=1))
    parts: dict[str, float] = {}
    rows: dict[str, int] = {}
    read_frames: dict[str, pd.DataFrame] = {}
    with engine.connect() as conn:
        info = communities.find_community(conn, COMMUNITY)
        assert info is not None
        end = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        reads: dict[str, Callable[[], pd.DataFrame]] = {
            "member_days": lambda: report_frames.member_days(conn, info.id, history_start, as_of),
            "members": lambda: report_frames.members(conn, info.id),
            "community_days": lambda: report_frames.community_days(conn, info.id, history_start, as_of),
            "channel_days": lambda: report_frames.channel_days(conn, info.id, channels_from, as_of),
            "hourly": lambda: report_frames.hourly(conn, info.id, history_start, as_of),
            "channel_names": lambda: report_frames.channel_names(conn, info.id),
            "channel_members": lambda: report_frames.channel_members(conn, info.id, first, as_of),
            "purchases": lambda: report_frames.purchases(conn, info.id, end),
            "subscription_periods": lambda: subscription_figures.subscription_periods(conn, info.id, end),
            # Buyers' days before the history (buyer retention): 109,259 rows here, 1.4 s before issue 15.
            "buyer_days": lambda: _or_empty(
                report_frames._buyer_days(
                    conn, info.id, read_frames["purchases"], ZoneInfo(info.timezone), history_start, end
                )
            ),
        }
        for name, read in reads.items():
            started = time.perf_counter()
            read_frames[name] = read()
            parts[f"read {name}"] = time.perf_counter() - started
            rows[name] = len(read_frames[name])
    frames = CommunityFrames(
        community=info.name,
        timezone=ZoneInfo(info.timezone),
        as_of=as_of,
        member_days=read_frames["member_days"],
        members=read_frames["members"],
        community_days=read_frames["community_days"],
        channel_days=read_frames["channel_days"],
        purchases=read_frames["purchases"],
        hourly=read_frames["hourly"],
        channels=read_frames["channel_names"],
        channel_members=read_frames["channel_members"],
        channel_members_start=first,
        buyer_days=read_frames["buyer_days"],
        subscription_periods=read_frames["subscription_periods"],
    )
    started = time.perf_counter()
    build_report(frames, weeks=REPORT_WEEKS, inactive_after_days=INACTIVE_AFTER_DAYS, top_n=TOP_N)
    parts["build_report"] = time.perf_counter() - started
    engine.dispose()
    return {
        "times": times,
        "peak": peak,
        "parts": parts,
        "rows": rows,
        "metrics": report_metrics(report),
        "history_start": history_start.isoformat(),
    }
