"""Hand-built ``Report`` values for the renderer and chart tests.

``sample_report()`` is a 12-week-old programmer community ("pyschool", 79 members) as of Sunday 2019-12-01:

* weeks 2019-W37 to 2019-W48, with two zero weeks before launch (W37, W38) and one mid-way (W44: the bot was
  offline), so zero weeks must be rendered, not skipped;
* nine join cohorts, one of them (2019-W46) of 3 members (exact for owners, "<5" in what members see);
* 3 members at risk, a segment of 2, and members with hostile names (HTML, terminal
  escapes, a right-to-left override);
* commerce in EUR and Telegram Stars (XTR), one course sold at two prices (so it has an arc elasticity), one
  course with 3 buyers, and a week where refunds exceed sales (negative net).

``empty_report()`` is a community created today; ``tiny_report()`` one where every group is under five.
Who is active when comes from a small seeded simulation of the cohorts' members, so daily DAU/WAU/MAU, weekly
active counts and cohort retention agree with each other and the charts look real (as of 2019-12-01: DAU 8,
WAU 41, MAU 58; weekly active 38 in W47 and 41 in W48). Everything else is literal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from analytics.results import (
    ActivitySummary,
    Cohort,
    CohortConversion,
    CommerceSummary,
    CourseSales,
    CourseSubscriptions,
    DayActivity,
    MemberStatus,
    PricePoint,
    Report,
    RevenueWeek,
    SubscriptionSummary,
    SubscriptionWeek,
    WeekStats,
)

AS_OF = date(2019, 12, 1)  # a Sunday: the last day of 2019-W48
FIRST_MONDAY = date(2019, 9, 9)  # 2019-W37
OUTAGE_WEEK = date(2019, 10, 28)  # 2019-W44: the bot was offline, nothing was logged

SCRIPT_NAME = "<script>alert(1)</script>"
ANSI_NAME = "\x1b[31mred\x1b[0m alert"
RTL_NAME = "mallory\u202egnp.exe"


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


# week start, new, left, messages, reactions, communicators, active channels ("active" comes from the simulation)
_WEEKS: tuple[tuple[date, int, int, int, int, int, int], ...] = (
    (date(2019, 9, 9), 0, 0, 0, 0, 0, 0),
    (date(2019, 9, 16), 0, 0, 0, 0, 0, 0),
    (date(2019, 9, 23), 14, 0, 58, 21, 2, 3),
    (date(2019, 9, 30), 22, 1, 412, 190, 12, 7),
    (date(2019, 10, 7), 18, 2, 604, 281, 19, 8),
    (date(2019, 10, 14), 11, 3, 655, 302, 22, 8),
    (date(2019, 10, 21), 9, 2, 618, 290, 20, 8),
    (date(2019, 10, 28), 0, 0, 0, 0, 0, 0),
    (date(2019, 11, 4), 7, 4, 547, 251, 18, 7),
    (date(2019, 11, 11), 3, 1, 530, 244, 17, 7),
    (date(2019, 11, 18), 6, 2, 611, 288, 21, 8),
    (date(2019, 11, 25), 5, 1, 689, 320, 24, 9),
)

# join cohorts: start, size, activation rate (no one joined in the outage week)
_COHORTS: tuple[tuple[date, int, float], ...] = (
    (date(2019, 9, 23), 14, 0.5714),
    (date(2019, 9, 30), 22, 0.5),
    (date(2019, 10, 7), 18, 0.4444),
    (date(2019, 10, 14), 11, 0.4545),
    (date(2019, 10, 21), 9, 0.3333),
    (date(2019, 11, 4), 7, 0.4286),
    (date(2019, 11, 11), 3, 0.6667),
    (date(2019, 11, 18), 6, 0.5),
    (date(2019, 11, 25), 5, 0.4),
)


@dataclass(frozen=True)
class _Simulation:
    days: tuple[date, ...]
    active_on: dict[date, frozenset[int]]
    cohort_members: dict[date, frozenset[int]]


@lru_cache(maxsize=1)
def _simulate(seed: int = 20191201) -> _Simulation:
    """Members join on a random day of their cohort's week (most say hello that day), are active on a day with
    their own probability (less on weekends), drift away after an exponential time; the outage week logs nothing."""
    rng = random.Random(seed)
    days = tuple(FIRST_MONDAY + timedelta(days=i) for i in range((AS_OF - FIRST_MONDAY).days + 1))
    active_on: dict[date, set[int]] = {day: set() for day in days}
    cohort_members: dict[date, frozenset[int]] = {}
    member = 0
    for start, size, _ in _COHORTS:
        ids = []
        for _ in range(size):
            member += 1
            ids.append(member)
            joined = start + timedelta(days=rng.randrange(7))
            engagement = rng.uniform(0.05, 0.45)
            stays_days = rng.expovariate(1 / 60)
            for day in days:
                if day < joined or (day - joined).days > stays_days:
                    continue
                if OUTAGE_WEEK <= day < OUTAGE_WEEK + timedelta(days=7):
                    continue
                weekend = 0.75 if day.weekday() >= 5 else 1.0
                says_hello = day == joined and rng.random() < 0.8
                if says_hello or rng.random() < engagement * weekend:
                    active_on[day].add(member)
        cohort_members[start] = frozenset(ids)
    return _Simulation(days, {day: frozenset(ids) for day, ids in active_on.items()}, cohort_members)


def _active_in_week(sim: _Simulation, monday: date) -> frozenset[int]:
    return frozenset().union(*(sim.active_on.get(monday + timedelta(days=i), frozenset()) for i in range(7)))


def _weekly() -> tuple[WeekStats, ...]:
    sim = _simulate()
    return tuple(
        WeekStats(
            week=iso_week(start),
            start=start,
            active=len(_active_in_week(sim, start)),
            new=new,
            left=left,
            messages=messages,
            reactions=reactions,
            communicators=communicators,
            active_channels=channels,
        )
        for start, new, left, messages, reactions, communicators, channels in _WEEKS
    )


def _cohorts() -> tuple[Cohort, ...]:
    sim = _simulate()
    last_monday = AS_OF - timedelta(days=AS_OF.weekday())
    cohorts = []
    for start, size, activation in _COHORTS:
        members = sim.cohort_members[start]
        weeks = (last_monday - start).days // 7 + 1
        retention = tuple(
            round(len(members & _active_in_week(sim, start + timedelta(weeks=k))) / size, 4) for k in range(weeks)
        )
        cohorts.append(
            Cohort(
                cohort=iso_week(start),
                start=start,
                size=size,
                retention=retention,
                activation_rate=activation,
                second_week_retention=retention[1] if len(retention) > 1 else None,
                activation_eligible=size if activation is not None else 0,
            )
        )
    return tuple(cohorts)


def _daily() -> tuple[DayActivity, ...]:
    sim = _simulate()
    rows = []
    for i, day in enumerate(sim.days):
        week = frozenset().union(*(sim.active_on[d] for d in sim.days[max(0, i - 6) : i + 1]))
        month = frozenset().union(*(sim.active_on[d] for d in sim.days[max(0, i - 27) : i + 1]))
        rows.append(DayActivity(day=day, dau=len(sim.active_on[day]), wau=len(week), mau=len(month)))
    return tuple(rows)


def _member(
    member_id: int,
    name: str,
    days: int | None,
    *,
    platform: str = "telegram",
    score: float | None = None,
    segment: str | None = None,
    messages: int = 0,
) -> MemberStatus:
    return MemberStatus(
        member_id=member_id,
        name=name,
        platform=platform,
        days_since_active=days,
        score=score,
        segment=segment,
        messages_28d=messages,
    )


def _commerce() -> CommerceSummary:
    def week(start: date, currency: str, gross: float, refunded: float = 0.0) -> RevenueWeek:
        return RevenueWeek(
            week=iso_week(start),
            start=start,
            currency=currency,
            gross=gross,
            refunded=refunded,
            net=gross - refunded,
        )

    courses = (
        CourseSales(
            course="async-python",
            title="Async Python in practice",
            currency="EUR",
            sales=20,
            buyers=19,
            refunds=2,
            gross=1160.0,
            refunded=128.0,
            net=1032.0,
            refund_rate=0.1,
            price=51.6,
            sales_per_sale_week=2.5,
            sale_weeks=8,
            price_points=(PricePoint(price=49.0, sales=14), PricePoint(price=79.0, sales=6)),  # most sold first
            arc_elasticity=-1.7067,
        ),
        CourseSales(
            course="async-python",
            title="Async Python in practice",
            currency="XTR",
            sales=9,
            buyers=9,
            refunds=0,
            gross=4500.0,
            refunded=0.0,
            net=4500.0,
            refund_rate=0.0,
            price=500.0,
            sales_per_sale_week=1.8,
            sale_weeks=5,
        ),
        CourseSales(
            course="testing-101",
            title="Testing with pytest",
            currency="EUR",
            sales=3,
            buyers=3,
            refunds=0,
            gross=87.0,
            refunded=0.0,
            net=87.0,
            refund_rate=0.0,
            price=29.0,
            sales_per_sale_week=1.0,
            sale_weeks=3,
        ),
    )
    # (gross, refunded) per week and currency; like the metric code, every week of the range for every currency
    sold: dict[tuple[date, str], tuple[float, float]] = {
        (date(2019, 9, 30), "EUR"): (196.0, 0.0),
        (date(2019, 10, 7), "EUR"): (245.0, 0.0),
        (date(2019, 10, 7), "XTR"): (1500.0, 0.0),
        (date(2019, 10, 14), "EUR"): (147.0, 0.0),
        (date(2019, 10, 21), "EUR"): (98.0, 49.0),
        (date(2019, 10, 21), "XTR"): (1000.0, 0.0),
        (date(2019, 11, 4), "EUR"): (158.0, 0.0),
        (date(2019, 11, 4), "XTR"): (500.0, 0.0),
        (date(2019, 11, 11), "EUR"): (49.0, 79.0),  # refunds exceed sales: negative net
        (date(2019, 11, 18), "EUR"): (187.0, 0.0),
        (date(2019, 11, 18), "XTR"): (1000.0, 0.0),
        (date(2019, 11, 25), "EUR"): (167.0, 0.0),
        (date(2019, 11, 25), "XTR"): (500.0, 0.0),
    }
    revenue = tuple(
        week(start, currency, *sold.get((start, currency), (0.0, 0.0)))
        for start, *_ in _WEEKS
        for currency in ("EUR", "XTR")
    )
    return CommerceSummary(
        courses=courses,
        revenue_weeks=revenue,
        buyers=26,
        members=79,
        conversion=0.3291,
        cohort_conversion=(
            CohortConversion(cohort="2019-W39", size=14, buyers=7, conversion=0.5),
            CohortConversion(cohort="2019-W40", size=22, buyers=9, conversion=0.4091),
            CohortConversion(cohort="2019-W41", size=18, buyers=5, conversion=0.2778),
            CohortConversion(cohort="2019-W46", size=3, buyers=1, conversion=0.3333),
        ),
        median_days_to_first_purchase=11.5,
        buyer_retention_30d=0.8125,
        refund_rate=0.0625,
        buyer_retention_eligible=16,
    )


def sample_subscriptions(report: Report) -> SubscriptionSummary:
    """Subscriptions over the sample report's weeks: growing by one or two a week, one churn every third week."""
    weeks = []
    active = 4
    for i, w in enumerate(report.weekly):
        new, churned = 1 + i % 2, 1 if i % 3 == 2 else 0
        active += new - churned
        weeks.append(SubscriptionWeek(week=w.week, start=w.start, new=new, churned=churned, active=active))
    return SubscriptionSummary(
        active=active,
        subscribers=active - 1,
        mrr=(("EUR", 29.0 * active), ("XTR", 250.0)),
        weeks=tuple(weeks),
        renewals_due=10,
        renewed=8,
        renewal_rate=0.8,
        courses=(CourseSubscriptions("club", "Monthly club", active, 12, 3, 10, 0.8),),
    )


def sample_report() -> Report:
    daily = _daily()
    last = daily[-1]
    return Report(
        community="pyschool",
        timezone="Europe/Berlin",
        as_of=AS_OF,
        members=79,
        weekly=_weekly(),
        daily=daily,
        summary=ActivitySummary(
            dau=last.dau,
            wau=last.wau,
            mau=last.mau,
            stickiness=round(sum(d.dau for d in daily[-28:]) / 28 / last.mau, 4),
            messages_7d=689,
            messages_28d=2377,
            reactions_28d=1103,
            communicators_28d=38,
            active_channels_28d=9,
            messages_per_active_member_mean=40.9828,
            messages_per_active_member_std=41.7,
        ),
        cohorts=_cohorts(),
        activation_rate=0.4286,
        activation_eligible=21,
        inactive=(
            _member(101, "Dana Scully", 35, segment="dormant"),
            _member(102, SCRIPT_NAME, 31, platform="discord", segment="dormant"),
            _member(103, "Fox Mulder", 29, segment="dormant"),
            _member(104, ANSI_NAME, 27, platform="discord"),
            _member(105, "Walter Skinner", 24),
            _member(106, "never-posted", None),
            _member(107, RTL_NAME, 21),
            _member(108, "Alex Krycek", 17),
            _member(109, "Monica Reyes", 15),
        ),
        at_risk=(
            _member(201, "John Doggett", 14, score=21.37, segment="at_risk", messages=3),
            _member(202, "Melvin Frohike", 15, score=12.9, segment="at_risk", messages=2),
            _member(203, "Ringo Langly", 19, score=8.05, platform="discord", segment="at_risk", messages=1),
        ),
        segments={"newcomers": 11, "at_risk": 3, "dormant": 14, "lurkers": 19, "champions": 6, "regulars": 26},
        top_members=(
            _member(1, "Ada Lovelace", 0, score=182.4, segment="champions", messages=212),
            _member(2, "Grace Hopper", 0, platform="discord", score=171.0, segment="champions", messages=188),
            _member(3, "Guido", 1, score=140.25, segment="champions", messages=151),
            _member(4, SCRIPT_NAME, 0, platform="discord", score=133.9, segment="champions", messages=140),
            _member(5, "Линус Торвальдс", 2, score=118.6, segment="champions", messages=122),
            _member(6, "Katherine Johnson", 0, score=101.3, segment="champions", messages=109),
            _member(7, "Barbara Liskov", 3, platform="discord", score=88.75, segment="regulars", messages=97),
            _member(8, "Tim Peters", 1, score=80.1, segment="regulars", messages=88),
            _member(9, "A" * 60, 0, score=72.0, segment="regulars", messages=80),
            _member(10, "Raymond H.", 4, score=66.45, segment="regulars", messages=71),
        ),
        commerce=_commerce(),
    )


def empty_report() -> Report:
    """A community whose bot was added today: one zero week, no days, no members."""
    as_of = date(2024, 3, 6)
    return Report(
        community="brand-new",
        timezone="UTC",
        as_of=as_of,
        members=0,
        weekly=(WeekStats("2024-W10", date(2024, 3, 4), 0, 0, 0, 0, 0, 0, 0),),
        daily=(),
        summary=ActivitySummary(
            dau=0,
            wau=0,
            mau=0,
            stickiness=None,
            messages_7d=0,
            messages_28d=0,
            reactions_28d=0,
            communicators_28d=0,
            active_channels_28d=0,
            messages_per_active_member_mean=None,
            messages_per_active_member_std=None,
        ),
        cohorts=(),
        activation_rate=None,
        inactive=(),
        at_risk=(),
    )


def tiny_report() -> Report:
    """Three members in their second week: every member count is under five, so nearly everything is hidden."""
    as_of = date(2024, 3, 13)  # a Wednesday: 2024-W11 is in progress
    days = [date(2024, 3, 4) + timedelta(days=i) for i in range(10)]
    dau = (2, 3, 1, 0, 2, 0, 0, 3, 2, 1)
    daily = tuple(DayActivity(day=d, dau=n, wau=3, mau=3) for d, n in zip(days, dau, strict=True))
    return Report(
        community="tiny",
        timezone="Asia/Tokyo",
        as_of=as_of,
        members=3,
        weekly=(
            WeekStats("2024-W10", date(2024, 3, 4), 3, 3, 0, 25, 9, 2, 1),
            WeekStats("2024-W11", date(2024, 3, 11), 3, 0, 0, 14, 4, 1, 1),
        ),
        daily=daily,
        summary=ActivitySummary(
            dau=1,
            wau=3,
            mau=3,
            stickiness=0.5333,
            messages_7d=20,
            messages_28d=39,
            reactions_28d=13,
            communicators_28d=3,
            active_channels_28d=1,
            messages_per_active_member_mean=13.0,
            messages_per_active_member_std=4.2,
        ),
        cohorts=(Cohort("2024-W10", date(2024, 3, 4), 3, (1.0,), 0.6667, None, activation_eligible=3),),
        activation_rate=0.6667,
        activation_eligible=3,
        inactive=(),
        at_risk=(_member(1, "Solo Dev", 6, score=4.5, segment="newcomers"),),
        segments={"newcomers": 3, "at_risk": 0, "dormant": 0, "lurkers": 0, "champions": 0, "regulars": 0},
        top_members=(
            _member(1, "Solo Dev", 6, score=30.2, messages=20),
            _member(2, "Pair", 0, score=28.0, messages=19),
        ),
        commerce=CommerceSummary(
            courses=(),
            revenue_weeks=(),
            buyers=0,
            members=3,
            conversion=0.0,
            cohort_conversion=(),
            median_days_to_first_purchase=None,
            buyer_retention_30d=None,
            refund_rate=None,
        ),
    )
