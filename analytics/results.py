"""Result types of the analytics: plain, frozen values the report, the digest and commands render.

These are the contract between metric code (``analytics.activity``, ``cohorts``, ``members``, ``commerce``) and
rendering (``analytics.render``, ``analytics.charts``), and their JSON form is the report's documented schema
(docs/metrics.md). Counts are exact here; the small-group rule of what members see ("<5") is applied when rendering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from analytics.questions import QuestionsSummary
from analytics.surveys import SurveyResults


@dataclass(frozen=True, slots=True)
class WeekStats:
    """One ISO week (Monday start, community time zone)."""

    week: str  # "2019-W48"
    start: date  # the Monday
    active: int  # members active at least once in the week
    new: int  # members whose join (or first activity) falls in the week
    left: int  # leave events in the week
    messages: int
    reactions: int
    communicators: int  # members with >= 3 messages in the week
    active_channels: int  # channels with >= 1 message in the week


@dataclass(frozen=True, slots=True)
class DayActivity:
    """Rolling activity on one local day."""

    day: date
    dau: int
    wau: int  # distinct active members in the 7 days ending on ``day``
    mau: int  # distinct active members in the 28 days ending on ``day``


@dataclass(frozen=True, slots=True)
class ActivitySummary:
    """Activity as of the report day, over the trailing 28 days unless the name says otherwise."""

    dau: int
    wau: int
    mau: int
    stickiness: float | None  # mean DAU over the 28 days / MAU; None when MAU is 0
    messages_7d: int
    messages_28d: int
    reactions_28d: int
    communicators_28d: int
    active_channels_28d: int
    messages_per_active_member_mean: float | None
    messages_per_active_member_std: float | None


@dataclass(frozen=True, slots=True)
class Cohort:
    """Members who joined in one ISO week, and the share of them active in each following week."""

    cohort: str  # "2019-W40"
    start: date
    size: int
    retention: tuple[float, ...]  # k = 0 (join week), 1, 2, ... up to the last complete week observed
    activation_rate: float | None  # share who posted >= 3 messages in their first 7 days
    second_week_retention: float | None  # retention[1], when observed
    activation_eligible: int = 0  # joiners whose first 7 days are over: the activation rate's denominator


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """A member named in a list (inactive, at risk, top)."""

    member_id: int
    name: str
    platform: str
    days_since_active: int | None  # None: never active
    score: float | None = None
    segment: str | None = None
    messages_28d: int = 0


@dataclass(frozen=True, slots=True)
class PricePoint:
    """Sales of one course at one price."""

    price: float
    sales: int


@dataclass(frozen=True, slots=True)
class CourseSales:
    """Sales of one course in one currency."""

    course: str
    title: str
    currency: str
    sales: int  # purchases, refunded ones included
    buyers: int  # distinct members (forgotten members count once each)
    refunds: int
    gross: float
    refunded: float
    net: float
    refund_rate: float | None
    price: float | None  # P: mean price paid, net of refunds
    sales_per_sale_week: float | None  # N: purchases per sale week (each purchase is one buyer of the model)
    sale_weeks: int  # T: weeks with at least one sale; R = P x N x T
    price_points: tuple[PricePoint, ...] = ()
    arc_elasticity: float | None = None  # between the two most-sold price points, when there are two or more


@dataclass(frozen=True, slots=True)
class RevenueWeek:
    """Net revenue of one ISO week in one currency."""

    week: str
    start: date
    currency: str
    gross: float
    refunded: float
    net: float


@dataclass(frozen=True, slots=True)
class RevenueLine:
    """Sales of one course in one currency within a time window (refunds counted when they happened)."""

    course_key: str
    title: str
    currency: str
    sales: int
    buyers: int
    refunds: int
    gross: Decimal
    refunded: Decimal

    @property
    def net(self) -> Decimal:
        """Gross minus refunds made in the window."""
        return self.gross - self.refunded


@dataclass(frozen=True, slots=True)
class CohortConversion:
    """Buyers among the members of one join cohort."""

    cohort: str
    size: int
    buyers: int
    conversion: float | None


@dataclass(frozen=True, slots=True)
class LtvCohort:
    """Net revenue to date from the members of one join month, in one currency (lifetime value per member)."""

    cohort: str  # "2026-11": the local calendar month of the join
    start: date  # the month's first day
    currency: str
    members: int  # members who joined in the month (buyers or not)
    buyers: int  # of them, those with a purchase in this currency
    net: float  # their purchases minus refunds, as of the report day
    per_member: float | None  # net / members


@dataclass(frozen=True, slots=True)
class CommerceSummary:
    """What sells, and to whom."""

    courses: tuple[CourseSales, ...]
    revenue_weeks: tuple[RevenueWeek, ...]
    buyers: int
    members: int  # everyone who was a member by as_of, former members included (unlike Report.members)
    conversion: float | None  # buyers / members
    cohort_conversion: tuple[CohortConversion, ...]
    median_days_to_first_purchase: float | None
    buyer_retention_30d: float | None  # buyers active again within 30 days after buying (bought >= 30 days ago)
    refund_rate: float | None
    buyer_retention_eligible: int = 0  # buyers whose first purchase is >= 30 days old: the denominator
    ltv_cohorts: tuple[LtvCohort, ...] = ()  # the last 12 join months with joiners, per ledger currency


@dataclass(frozen=True, slots=True)
class SubscriptionWeek:
    """Subscriptions in one ISO week: started, churned, and active when the week ends."""

    week: str
    start: date
    new: int  # subscriptions whose first paid period started in the week
    churned: int  # paid periods whose access ended in the week without a renewal
    active: int  # subscriptions active at the week's end (the report day's end for the week in progress)


@dataclass(frozen=True, slots=True)
class CourseSubscriptions:
    """One monthly course's subscriptions as of the report day."""

    course: str
    title: str
    active: int
    new: int  # started in the report range
    churned: int  # churned in the report range
    renewals_due: int  # paid periods that ended in the range (renewal decided)
    renewal_rate: float | None  # renewed / renewals_due


@dataclass(frozen=True, slots=True)
class SubscriptionSummary:
    """Recurring revenue: who is subscribed now, what that brings per month, who comes and goes."""

    active: int  # subscriptions active at the end of the report day
    subscribers: int  # distinct members among them
    mrr: tuple[tuple[str, float], ...]  # (currency, monthly recurring revenue), by currency code
    weeks: tuple[SubscriptionWeek, ...]  # every week of the report range
    renewals_due: int  # paid periods that ended in the range and whose renewal is decided
    renewed: int
    renewal_rate: float | None  # renewed / renewals_due
    courses: tuple[CourseSubscriptions, ...] = ()


@dataclass(frozen=True, slots=True)
class HourOfWeek:
    """Activity in one hour of the week over the report range (community time zone); zero cells are listed."""

    weekday: int  # 0 = Monday
    hour: int  # 0..23, local wall clock
    messages: int
    reactions: int


@dataclass(frozen=True, slots=True)
class ChannelActivity:
    """One channel (a thread or forum topic is its own channel) with messages in the report range."""

    channel_id: int
    name: str
    parent: str | None  # the parent channel's name for a thread / forum topic, else None
    messages: int  # in the report range
    active_members: int  # distinct members who posted in it in the range
    previous_messages: int  # in the same-length range just before
    weekly_messages: tuple[int, ...]  # per ISO week of the range (the trend)


@dataclass(frozen=True, slots=True)
class GrowthDay:
    """Members joining and leaving on one local day of the report range."""

    day: date
    joins: int  # new members: whose join (or first activity) falls on the day, as WeekStats.new counts them
    leaves: int  # leave events on the day, as WeekStats.left counts them
    members: int  # members at the end of the day, as Report.members counts them


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the report shows for one community as of one day."""

    community: str
    timezone: str
    as_of: date
    members: int  # current members (joined or active, not left)
    weekly: tuple[WeekStats, ...]
    daily: tuple[DayActivity, ...]
    summary: ActivitySummary
    cohorts: tuple[Cohort, ...]
    activation_rate: float | None  # over the cohorts of the last 4 complete weeks
    inactive: tuple[MemberStatus, ...]
    at_risk: tuple[MemberStatus, ...]
    segments: dict[str, int] = field(default_factory=dict)
    top_members: tuple[MemberStatus, ...] = ()
    commerce: CommerceSummary | None = None
    activation_eligible: int = 0  # the denominator of activation_rate
    week_so_far: WeekStats | None = None
    """The week in progress over its measured days (Monday .. the last complete day with data); None when the
    last week of ``weekly`` is complete, or has no measured day yet."""
    previous_week_same_days: WeekStats | None = None
    """The week before, over the same weekdays as ``week_so_far``: what the week in progress is compared with,
    never a whole week. None with ``week_so_far``."""
    last_complete_day: date | None = None
    """The last local day that is over: ``as_of``, or the day before when ``as_of`` is today; None when unknown
    (taken as ``as_of``). Charts end there: an unfinished day is never plotted or compared."""
    data_ends: date | None = None
    """The last day with anything recorded, when that is before ``as_of`` (an import that ends earlier): figures
    after it are not measured. None when data reaches ``as_of``."""
    hour_of_week: tuple[HourOfWeek, ...] = ()
    """Messages and reactions per weekday and local hour over the report range: 168 cells, Monday 00:00 first;
    empty when the hourly rollup was not loaded."""
    channels: tuple[ChannelActivity, ...] = ()
    """Channels with messages in the report range, most messages first; empty when not loaded."""
    growth: tuple[GrowthDay, ...] = ()
    """Joins, leaves and members for every day of the report range (its first Monday to ``as_of``)."""
    subscriptions: SubscriptionSummary | None = None
    """Subscriptions of the monthly courses (docs/metrics.md, "Subscriptions"); None when none was ever paid."""
    questions: QuestionsSummary | None = None
    """Questions and answers in the help channels over the report range; None when not computed."""
    surveys: SurveyResults | None = None
    """NPS, response rates, comments and polls up to the end of ``as_of`` (``analytics.surveys``); None when the
    surveys were not loaded (reports built from frames alone)."""

    @property
    def measured_through(self) -> date:
        """The last day that is both over and covered by the stored data: charts end there."""
        days = [self.as_of, self.last_complete_day, self.data_ends]
        return min(d for d in days if d is not None)
