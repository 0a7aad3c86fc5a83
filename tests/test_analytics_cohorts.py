"""Cohort retention and activation on hand-built frames; expectations are computed by hand in the comments."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from analytics.cohorts import activation_rate, cohort_retention
from analytics.results import Cohort
from tests.analytics_frames import member_days, members

BERLIN = ZoneInfo("Europe/Berlin")  # UTC+1 until 2024-03-31


# Weeks of 2024: W10 = 03-04..03-10, W11 = 03-11..03-17, W12 = 03-18..03-24, W13 = 03-25..03-31.
MEMBERS = members(
    (1, "2024-03-04 10:00", None),  # a: W10
    (2, "2024-03-03 23:30", None),  # b: Sunday 23:30 UTC = Monday 00:30 in Berlin: W10, not W09
    (3, "2024-03-08 12:00", "2024-03-15 12:00"),  # c: W10, never posted, left (still in the cohort)
    (4, "2024-03-10 09:00", None),  # d: W10 (Sunday)
    (5, "2024-03-17 22:30", None),  # e: Sunday 23:30 in Berlin: W11
    (6, "2024-03-22 12:00", None),  # f: W12
    (7, "2024-03-25 12:00", None),  # g: W13, the current week
    (8, "2024-02-01 12:00", None),  # h: joined before the range
)
ACTIVITY = member_days(
    (1, "2024-03-04", 1, 0, 0, 0),
    (1, "2024-03-06", 2, 0, 0, 0),  # a: 3 messages in 03-04..03-10: activated
    (1, "2024-03-12", 1, 0, 0, 0),  # a: active in W11
    (1, "2024-03-26", 1, 0, 0, 0),  # a: W13 is not complete: not observed
    (2, "2024-03-11", 3, 0, 0, 0),  # b: day 8 after joining: not activated; active in W11
    (2, "2024-03-20", 0, 0, 1, 0),  # b: a reaction in W12 is activity
    (4, "2024-03-10", 0, 0, 0, 5),  # d: receiving reactions is not activity
    (4, "2024-03-16", 3, 0, 0, 0),  # d: 3 messages in 03-10..03-16: activated; active in W11
    (5, "2024-03-17", 1, 0, 0, 0),
    (5, "2024-03-18", 1, 0, 0, 0),
    (5, "2024-03-23", 1, 0, 0, 0),  # e: 3 messages in 03-17..03-23: activated
    (6, "2024-03-22", 3, 0, 0, 0),  # f: window 03-22..03-28 not over on 03-27: not eligible
    (7, "2024-03-25", 5, 0, 0, 0),
    (8, "2024-03-05", 4, 0, 0, 0),
)
AS_OF = date(2024, 3, 27)  # a Wednesday: the last complete week is W12


def _by_label(cohorts: list[Cohort]) -> dict[str, Cohort]:
    return {c.cohort: c for c in cohorts}


def test_cohort_retention_shares_per_week_since_joining() -> None:
    cohorts = _by_label(cohort_retention(ACTIVITY, MEMBERS, timezone=BERLIN, start=date(2024, 2, 26), as_of=AS_OF))
    # W09 has no joiner (h joined in W05): no cohort; every week from W10 to W13 has joiners.
    assert list(cohorts) == ["2024-W10", "2024-W11", "2024-W12", "2024-W13"]
    w10 = cohorts["2024-W10"]
    assert (w10.start, w10.size) == (date(2024, 3, 4), 4)  # a, b, c, d (c left, still counted)
    # k=0 (W10): a -> 1/4; k=1 (W11): a, b, d -> 3/4; k=2 (W12): b -> 1/4; W13 is not complete.
    assert w10.retention == (0.25, 0.75, 0.25)
    assert w10.second_week_retention == 0.75
    assert w10.activation_rate == 0.5  # a and d of 4 eligible


def test_a_cohort_only_reports_complete_weeks() -> None:
    cohorts = _by_label(cohort_retention(ACTIVITY, MEMBERS, timezone=BERLIN, start=date(2024, 3, 4), as_of=AS_OF))
    e = cohorts["2024-W11"]
    assert (e.size, e.retention, e.activation_rate) == (1, (1.0, 1.0), 1.0)
    f = cohorts["2024-W12"]
    # f is active in W12 (k=0); the first seven days (03-22..03-28) are not over: activation unknown.
    assert (f.size, f.retention, f.second_week_retention, f.activation_rate) == (1, (1.0,), None, None)
    g = cohorts["2024-W13"]
    # The current week is partial: nothing observed yet.
    assert (g.size, g.retention, g.second_week_retention, g.activation_rate) == (1, (), None, None)


def test_on_a_sunday_the_current_week_is_complete() -> None:
    cohorts = _by_label(
        cohort_retention(ACTIVITY, MEMBERS, timezone=BERLIN, start=date(2024, 3, 4), as_of=date(2024, 3, 24))
    )
    assert cohorts["2024-W10"].retention == (0.25, 0.75, 0.25)
    assert cohorts["2024-W12"].retention == (1.0,)
    assert "2024-W13" not in cohorts  # g joined after as_of


def test_cohorts_in_utc_move_the_sunday_night_joiners() -> None:
    cohorts = _by_label(
        cohort_retention(ACTIVITY, MEMBERS, timezone=ZoneInfo("UTC"), start=date(2024, 3, 4), as_of=AS_OF)
    )
    # In UTC b joined on Sunday 03-03 (W09, outside the range): W10 is a, c, d.
    assert cohorts["2024-W10"].size == 3
    assert cohorts["2024-W10"].retention == pytest.approx((1 / 3, 2 / 3, 0.0))


def test_activation_rate_pools_the_eligible_joiners_of_the_weeks() -> None:
    # W09..W12 joiners: a, b, c, d (W10), e (W11) are eligible, f (W12) is not; h joined in W05.
    # Activated: a, d, e -> 3 / 5.
    rate = activation_rate(
        ACTIVITY, MEMBERS, timezone=BERLIN, first_week=date(2024, 2, 26), last_week=date(2024, 3, 18), as_of=AS_OF
    )
    assert rate == pytest.approx(0.6)


def test_activation_rate_without_eligible_joiners_is_none() -> None:
    rate = activation_rate(
        ACTIVITY, MEMBERS, timezone=BERLIN, first_week=date(2024, 3, 25), last_week=date(2024, 3, 25), as_of=AS_OF
    )
    assert rate is None


def test_cohort_in_iso_week_53() -> None:
    mem = members((1, "2020-12-31 12:00", None), (2, "2021-01-01 12:00", None))
    md = member_days((1, "2021-01-02", 1, 0, 0, 0), (1, "2021-01-05", 1, 0, 0, 0), (2, "2021-01-03", 0, 0, 1, 0))
    cohorts = cohort_retention(md, mem, timezone=BERLIN, start=date(2020, 12, 28), as_of=date(2021, 1, 13))
    assert [(c.cohort, c.start, c.size) for c in cohorts] == [("2020-W53", date(2020, 12, 28), 2)]
    # k=0 (2020-W53): both active; k=1 (2021-W01): member 1 only; 2021-W02 is not over on Wednesday 01-13.
    assert cohorts[0].retention == (1.0, 0.5)
    assert cohorts[0].activation_rate == 0.0  # nobody posted 3 messages in their first seven days


def test_cohorts_of_an_empty_community() -> None:
    assert cohort_retention(member_days(), members(), timezone=BERLIN, start=date(2024, 1, 1), as_of=AS_OF) == []


@pytest.mark.parametrize("seed", range(4))
def test_retention_equals_the_naive_count(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    n_members, n_rows = 40, 600
    joined = pd.Timestamp("2024-01-01 12:00", tz="UTC") + pd.to_timedelta(rng.integers(0, 60, n_members), unit="D")
    mem = members(*[(m + 1, str(joined[m]), None) for m in range(n_members)])
    base = np.datetime64("2024-01-01")
    md = pd.DataFrame(
        {
            "member_id": rng.integers(1, n_members + 1, n_rows),
            "day": (base + rng.integers(0, 90, n_rows).astype("timedelta64[D]")).astype("datetime64[ns]"),
            "messages": rng.integers(0, 2, n_rows),
            "replies": 0,
            "reactions_given": rng.integers(0, 2, n_rows),
            "reactions_received": 0,
        }
    )
    as_of = date(2024, 3, 27)
    cohorts = cohort_retention(md, mem, timezone=ZoneInfo("UTC"), start=date(2024, 1, 1), as_of=as_of)
    active = md[(md["messages"] + md["reactions_given"]) > 0]
    active_weeks = {
        (m, d.date() - timedelta(d.weekday())) for m, d in zip(active["member_id"], active["day"], strict=True)
    }
    join_week = {m + 1: joined[m].date() - timedelta(joined[m].weekday()) for m in range(n_members)}
    for c in cohorts:
        cohort = [m for m, w in join_week.items() if w == c.start]
        assert c.size == len(cohort)
        expected = []
        k = 0
        while c.start + timedelta(weeks=k, days=6) <= as_of:
            week = c.start + timedelta(weeks=k)
            expected.append(sum((m, week) in active_weeks for m in cohort) / len(cohort))
            k += 1
        assert c.retention == pytest.approx(tuple(expected))
