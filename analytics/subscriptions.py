"""Subscriptions: active subscriptions, monthly recurring revenue, new and churned per week, renewal rate.

Everything is computed from the paid periods (``analytics.frames.SUBSCRIPTION_PERIODS_COLUMNS``), never from the
subscription's current state alone, so a back-dated report sees the subscriptions as they were on its day. The
definitions are in docs/metrics.md, "Subscriptions"; in short, for a period ``p`` of subscription ``s``:

- its *access end* is ``e(p) = min(p.ends_at, s.paid_until)`` (a platform that ended the subscription early, as
  after a refund, moved ``paid_until`` back);
- ``p`` is *renewed* when the next period of ``s`` (by start) starts no later than ``e(p) + RENEWAL_GRACE``; it is
  *decided* once ``e(p) + RENEWAL_GRACE`` is at or before the end of the report day (a renewal may still come
  until then); a decided period that was not renewed is a *churn* at ``e(p)``;
- ``s`` is *active* at instant ``t`` when one of its periods has ``p.starts_at <= t < e(p)``.

Weeks are ISO weeks of local days in the community's time zone, as everywhere else.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analytics.results import CourseSubscriptions, SubscriptionSummary, SubscriptionWeek
from analytics.weeks import NO_DAY, day_number, local_day_numbers, week_label, week_starts

RENEWAL_GRACE = timedelta(days=1)
"""How late a renewal may start after the access it renews ends and still count as a renewal (the bot's own
grace, ``storage.subscriptions.RENEWAL_GRACE``: a renewal charged on time arrives within minutes)."""

MONTH_DAYS = 30
"""MRR is per 30 days: a period of another length is scaled to it."""

CALENDAR_MONTH = (27.5, 31.5)
"""A period from 27.5 to 31.5 days long is one month (a calendar month of a card or Discord subscription): its
amount counts as it is, so that MRR does not move with the length of February."""

_NS = 1_000_000_000


def _ns(values: pd.Series[Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """UTC instants as int64 nanoseconds (NaT as the smallest int64)."""
    return pd.to_datetime(values, utc=True).to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _instant(day: date, timezone: ZoneInfo) -> int:
    """The local midnight that starts ``day``, in UTC nanoseconds."""
    return int(pd.Timestamp(datetime.combine(day, time(), tzinfo=timezone)).value)


def monthly_amount(amount: np.ndarray[Any, Any], length_seconds: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A period's amount per 30 days: as is for a one-month period (:data:`CALENDAR_MONTH`), else scaled.

    Args:
        amount: Amounts in major units.
        length_seconds: The periods' lengths in seconds.

    Returns:
        The monthly amounts (NaN where the length is not positive).
    """
    days = length_seconds / 86_400
    monthly = (days >= CALENDAR_MONTH[0]) & (days < CALENDAR_MONTH[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(days > 0, amount * MONTH_DAYS / np.where(days > 0, days, 1), np.nan)
    return np.where(monthly, amount, scaled)


def _prepared(periods: pd.DataFrame, end: int) -> pd.DataFrame:
    """The periods that started before ``end``, sorted, with access end, renewed and decided flags."""
    starts = _ns(periods["starts_at"])
    keep = starts < end
    frame = pd.DataFrame(
        {
            "subscription_id": pd.to_numeric(periods["subscription_id"]).astype("int64").to_numpy()[keep],
            "member_id": pd.to_numeric(periods["member_id"]).astype("float64").to_numpy()[keep],
            "course": periods["course"].astype(str).to_numpy()[keep],
            "title": periods["title"].astype(str).to_numpy()[keep],
            "starts": starts[keep],
            "ends": _ns(periods["ends_at"])[keep],
            "paid_until": _ns(periods["paid_until"])[keep],
            "amount": pd.to_numeric(periods["amount"]).astype("float64").to_numpy()[keep],
            "currency": periods["currency"].astype("object").to_numpy()[keep],
            "refunded": (_ns(periods["refunded_at"]) < end)[keep] & periods["refunded_at"].notna().to_numpy()[keep],
        }
    )
    frame = frame.sort_values(["subscription_id", "starts", "ends"], kind="stable").reset_index(drop=True)
    access_end = np.minimum(frame["ends"].to_numpy(), frame["paid_until"].to_numpy())
    sub = frame["subscription_id"].to_numpy()
    starts_sorted = frame["starts"].to_numpy()
    has_next = np.zeros(len(frame), dtype=np.bool_)
    next_start = np.zeros(len(frame), dtype=np.int64)
    if len(frame) > 1:
        has_next[:-1] = sub[1:] == sub[:-1]
        next_start[:-1] = starts_sorted[1:]
    grace = int(RENEWAL_GRACE.total_seconds()) * _NS
    renewed = has_next & (next_start <= access_end + grace)
    return frame.assign(
        access_end=access_end,
        renewed=renewed,
        decided=renewed | (access_end + grace <= end),
    )


def _active_at(frame: pd.DataFrame, instant: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which periods give access at ``instant``."""
    starts = frame["starts"].to_numpy()
    ends = frame["access_end"].to_numpy()
    result: np.ndarray[Any, np.dtype[np.bool_]] = (starts <= instant) & (instant < ends)
    return result


def subscription_summary(
    periods: pd.DataFrame, *, timezone: ZoneInfo, start: date, as_of: date
) -> SubscriptionSummary | None:
    """The subscriptions as of the end of ``as_of``, and week by week over the report range.

    - ``active``: subscriptions active at the end of ``as_of`` (the next local day's midnight); ``subscribers``:
      the distinct members among them.
    - ``mrr``: per currency, over the active subscriptions, the amount of each one's latest period that started
      by then, per 30 days (:func:`monthly_amount`), unless that period's purchase was refunded.
    - ``weeks``: per ISO week from the week of ``start`` to the week of ``as_of``: ``new`` subscriptions (first
      period started in the week), ``churned`` (decided, unrenewed periods whose access ended in the week) and
      ``active`` at the week's end (the end of ``as_of`` for the last week).
    - ``renewal_rate``: of the decided periods whose access ended in the range, the share renewed.
    - ``courses``: the same per course.

    Args:
        periods: The subscription periods frame.
        timezone: The community's time zone.
        start: Any day of the first week.
        as_of: The report day.

    Returns:
        The summary; None when no period started by the end of ``as_of``.
    """
    end = _instant(as_of + timedelta(days=1), timezone)
    frame = _prepared(periods, end)
    if not len(frame):
        return None
    mondays = week_starts(start, as_of)
    m0 = day_number(mondays[0]) if mondays else day_number(as_of) + 1
    n_weeks = len(mondays)

    now_active = _active_at(frame, end)
    active_subs = np.unique(frame["subscription_id"].to_numpy()[now_active])
    subscribers = int(pd.unique(frame["member_id"].to_numpy()[now_active]).size)

    # MRR: each active subscription's latest period that started by the end (periods are sorted by start).
    started = frame[(frame["starts"].to_numpy() < end) & np.isin(frame["subscription_id"].to_numpy(), active_subs)]
    latest = started.drop_duplicates("subscription_id", keep="last")
    latest = latest[~latest["refunded"].to_numpy() & latest["currency"].notna().to_numpy()]
    monthly = monthly_amount(
        latest["amount"].to_numpy(dtype=np.float64),
        (latest["ends"].to_numpy() - latest["starts"].to_numpy()) / _NS,
    )
    mrr_by: dict[str, float] = {}
    for currency, value in zip(latest["currency"].astype(str), monthly, strict=True):
        if not np.isnan(value):
            mrr_by[currency] = mrr_by.get(currency, 0.0) + float(value)

    first_start = frame.groupby("subscription_id", sort=False)["starts"].min()
    first_day = local_day_numbers(pd.Series(pd.to_datetime(first_start.to_numpy(), utc=True)), timezone)
    churn = frame["decided"].to_numpy() & ~frame["renewed"].to_numpy()
    end_day = local_day_numbers(pd.Series(pd.to_datetime(frame["access_end"].to_numpy(), utc=True)), timezone)
    in_range_end = (end_day != NO_DAY) & (end_day >= m0) & (frame["access_end"].to_numpy() < end)
    due = frame["decided"].to_numpy() & in_range_end

    weeks: list[SubscriptionWeek] = []
    new_weeks = _per_week(first_day, m0, n_weeks)
    churn_weeks = _per_week(end_day[churn & in_range_end], m0, n_weeks)
    for i, monday in enumerate(mondays):
        week_end = min(_instant(monday + timedelta(days=7), timezone), end)
        weeks.append(
            SubscriptionWeek(
                week=week_label(monday),
                start=monday,
                new=int(new_weeks[i]),
                churned=int(churn_weeks[i]),
                active=int(np.unique(frame["subscription_id"].to_numpy()[_active_at(frame, week_end)]).size),
            )
        )

    courses: list[CourseSubscriptions] = []
    course_of = frame["course"].to_numpy()
    first_course = frame.drop_duplicates("subscription_id")[["subscription_id", "course"]]
    new_in_range = first_day >= m0
    for course in sorted(set(course_of.tolist())):
        mine = course_of == course
        title = str(frame["title"].to_numpy()[mine][-1])
        c_due = due & mine
        c_new = new_in_range & (first_course["course"].to_numpy() == course)
        courses.append(
            CourseSubscriptions(
                course=str(course),
                title=title,
                active=int(np.unique(frame["subscription_id"].to_numpy()[now_active & mine]).size),
                new=int(c_new.sum()),
                churned=int((churn & in_range_end & mine).sum()),
                renewals_due=int(c_due.sum()),
                renewal_rate=_share(int((c_due & frame["renewed"].to_numpy()).sum()), int(c_due.sum())),
            )
        )
    renewed = int((due & frame["renewed"].to_numpy()).sum())
    return SubscriptionSummary(
        active=int(active_subs.size),
        subscribers=subscribers,
        mrr=tuple(sorted(mrr_by.items())),
        weeks=tuple(weeks),
        renewals_due=int(due.sum()),
        renewed=renewed,
        renewal_rate=_share(renewed, int(due.sum())),
        courses=tuple(courses),
    )


def _per_week(days: np.ndarray[Any, Any], m0: int, n_weeks: int) -> np.ndarray[Any, Any]:
    """Counts of the day numbers per week from the Monday ``m0``; days outside the weeks are dropped."""
    inside = (days != NO_DAY) & (days >= m0) & (days < m0 + 7 * n_weeks)
    return np.bincount((days[inside] - m0) // 7, minlength=n_weeks)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None
