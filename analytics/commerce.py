"""Commerce: revenue net of refunds, the per-course R = P × N × T model, conversion, buyer retention, prices.

The report's figures (:func:`commerce_summary`) work on a purchases frame by local day; the chat's revenue per time
window (:func:`revenue_by_course`, for ``/report``, ``/revenue`` and the digest) works on ledger rows by instant.

Purchases count from their local purchase day (community time zone) when it is on or before ``as_of``; a refund
counts when its local day is on or before ``as_of`` (a later refund is not known yet). Amounts are in major units
and never mixed across currencies: every money figure is per currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analytics.activity import ActivityRows, as_rows, int_column, positions
from analytics.results import (
    CohortConversion,
    CommerceSummary,
    CourseSales,
    LtvCohort,
    PricePoint,
    RevenueLine,
    RevenueWeek,
)
from analytics.weeks import (
    NO_DAY,
    IntArray,
    day_number,
    local_day_numbers,
    monday_numbers,
    week_label,
    week_starts,
)

BUYER_RETENTION_DAYS = 30
"""A buyer is retained when active on any of the 30 days after the day of their first purchase."""

PRICE_DECIMALS = 2
"""Prices are compared rounded to cents (hundredths of the major unit)."""


def arc_elasticity(price_1: float, quantity_1: float, price_2: float, quantity_2: float) -> float | None:
    """The arc (midpoint) price elasticity of demand between two price points.

    ``E = ((Q2 − Q1) / ((Q2 + Q1) / 2)) / ((P2 − P1) / ((P2 + P1) / 2))``; symmetric in the two points.

    Returns:
        The elasticity, or None when the prices are equal or both quantities are zero.
    """
    quantity_mid = (quantity_1 + quantity_2) / 2
    price_mid = (price_1 + price_2) / 2
    if price_1 == price_2 or quantity_mid == 0 or price_mid == 0:
        return None
    return ((quantity_2 - quantity_1) / quantity_mid) / ((price_2 - price_1) / price_mid)


def _buyers(member_ids: pd.Series[Any]) -> int:
    """Distinct buyers: distinct member ids, plus one per purchase of a forgotten member (NA)."""
    missing = member_ids.isna()
    return int(member_ids[~missing].nunique()) + int(missing.sum())


def _course_sales(group: pd.DataFrame, course: str, currency: str) -> CourseSales:
    sales = len(group)
    refunded_mask = group["refunded"].to_numpy(dtype=np.bool_)
    amounts = group["amount"].to_numpy(dtype=np.float64)
    gross = float(amounts.sum())
    refunded = float(amounts[refunded_mask].sum())
    net = gross - refunded
    refunds = int(refunded_mask.sum())
    sale_weeks = int(group["week"].nunique())

    price_points: tuple[PricePoint, ...] = ()
    elasticity: float | None = None
    by_price = group.groupby("price").agg(sales=("price", "size"), weeks=("week", "nunique")).reset_index()
    if len(by_price) >= 2:
        by_price = by_price.sort_values(["sales", "price"], ascending=[False, True])
        price_points = tuple(
            PricePoint(price=float(price), sales=int(count))
            for price, count in zip(by_price["price"], by_price["sales"], strict=True)
        )
        first, second = by_price.iloc[0], by_price.iloc[1]
        elasticity = arc_elasticity(
            float(first["price"]),
            float(first["sales"]) / float(first["weeks"]),
            float(second["price"]),
            float(second["sales"]) / float(second["weeks"]),
        )

    latest = group.sort_values("purchased_day", kind="stable")["title"].iloc[-1]
    return CourseSales(
        course=course,
        title=str(latest),
        currency=currency,
        sales=sales,
        buyers=_buyers(group["member_id"]),
        refunds=refunds,
        gross=gross,
        refunded=refunded,
        net=net,
        refund_rate=refunds / sales if sales else None,
        price=net / sales if sales else None,
        sales_per_sale_week=sales / sale_weeks if sale_weeks else None,
        sale_weeks=sale_weeks,
        price_points=price_points,
        arc_elasticity=elasticity,
    )


def _ledger(purchases: pd.DataFrame, timezone: ZoneInfo, end: int) -> pd.DataFrame:
    """The purchases up to day number ``end``, with local days, week Mondays and refund flags."""
    if len(purchases) == 0:
        return pd.DataFrame(
            {
                "member_id": pd.Series(dtype="float64"),
                "course": pd.Series(dtype="object"),
                "title": pd.Series(dtype="object"),
                "currency": pd.Series(dtype="object"),
                "amount": pd.Series(dtype="float64"),
                "price": pd.Series(dtype="float64"),
                "purchased_day": pd.Series(dtype="int64"),
                "week": pd.Series(dtype="int64"),
                "refund_day": pd.Series(dtype="int64"),
                "refunded": pd.Series(dtype="bool"),
            }
        )
    purchased = local_day_numbers(purchases["purchased_at"], timezone)
    refund_day = local_day_numbers(purchases["refunded_at"], timezone)
    keep = (purchased != NO_DAY) & (purchased <= end)
    refunded = (refund_day != NO_DAY) & (refund_day <= end)
    amount = pd.to_numeric(purchases["amount"]).astype("float64").to_numpy()
    ledger = pd.DataFrame(
        {
            "member_id": pd.to_numeric(purchases["member_id"]).astype("float64").to_numpy(),
            "course": purchases["course"].astype("object").to_numpy(),
            "title": purchases["title"].astype("object").to_numpy(),
            "currency": purchases["currency"].astype("object").to_numpy(),
            "amount": amount,
            "price": np.round(amount, PRICE_DECIMALS),
            "purchased_day": purchased,
            "week": monday_numbers(purchased),
            "refund_day": refund_day,
            "refunded": refunded,
        }
    )
    kept: pd.DataFrame = ledger.loc[keep]
    return kept.reset_index(drop=True)


def revenue_weeks(purchases: pd.DataFrame, *, timezone: ZoneInfo, start: date, as_of: date) -> list[RevenueWeek]:
    """Revenue per ISO week and currency, from the week containing ``start`` to the week containing ``as_of``.

    ``gross`` is the amount of the purchases made in the week; ``refunded`` the amount of the refunds made in the
    week (refunds are booked when they happen, so past weeks never change); ``net = gross − refunded`` (negative
    in a week with more refunds than sales). Every week is listed for every currency with a purchase or a refund
    in the range, zero weeks included.

    Args:
        purchases: The purchases frame.
        timezone: The community's time zone.
        start: Any day of the first week.
        as_of: The report day (the last week is partial unless it is a Sunday).

    Returns:
        Weeks oldest first, currencies alphabetically within a week.
    """
    mondays = week_starts(start, as_of)
    if not mondays:
        return []
    m0, end = day_number(mondays[0]), day_number(as_of)
    n_weeks = len(mondays)
    ledger = _ledger(purchases, timezone, end)
    sold = ledger[ledger["purchased_day"] >= m0]
    refunds = ledger[ledger["refunded"] & (ledger["refund_day"] >= m0)]
    currencies = sorted(set(sold["currency"].astype(str)) | set(refunds["currency"].astype(str)))
    out: list[RevenueWeek] = []
    per_currency: dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}
    for currency in currencies:
        s = sold[sold["currency"].astype(str) == currency]
        r = refunds[refunds["currency"].astype(str) == currency]
        s_days: IntArray = s["purchased_day"].to_numpy(dtype=np.int64)
        r_days: IntArray = r["refund_day"].to_numpy(dtype=np.int64)
        gross = np.bincount((s_days - m0) // 7, weights=s["amount"].to_numpy(dtype=np.float64), minlength=n_weeks)
        back = np.bincount((r_days - m0) // 7, weights=r["amount"].to_numpy(dtype=np.float64), minlength=n_weeks)
        per_currency[currency] = (gross, back)
    for i, monday in enumerate(mondays):
        for currency in currencies:
            gross, back = per_currency[currency]
            out.append(
                RevenueWeek(
                    week=week_label(monday),
                    start=monday,
                    currency=currency,
                    gross=float(gross[i]),
                    refunded=float(back[i]),
                    net=float(gross[i] - back[i]),
                )
            )
    return out


def course_sales(purchases: pd.DataFrame, *, timezone: ZoneInfo, as_of: date) -> list[CourseSales]:
    """Sales of every course and currency, all purchases up to ``as_of``.

    ``R = P × N × T`` with ``P = net / sales`` (mean price paid, net of refunds), ``N = sales / T`` (buyers per sale
    week, each purchase counting as one buyer) and ``T`` the number of ISO weeks with at least one sale; ``R``
    equals the net revenue. Where the course sold at two or more prices (rounded to cents), ``price_points`` lists
    the sales per price, most sold first, and ``arc_elasticity`` compares the two most-sold prices with ``Q`` = sales
    per sale week at that price.

    Args:
        purchases: The purchases frame.
        timezone: The community's time zone.
        as_of: The report day.

    Returns:
        One :class:`CourseSales` per course and currency, by course then currency.
    """
    ledger = _ledger(purchases, timezone, day_number(as_of))
    out: list[CourseSales] = []
    if len(ledger) == 0:
        return out
    ledger = ledger.assign(course=ledger["course"].astype(str), currency=ledger["currency"].astype(str))
    for (course, currency), group in ledger.groupby(["course", "currency"], sort=True):
        out.append(_course_sales(group, str(course), str(currency)))
    return out


LTV_MONTHS = 12
"""How many join months the revenue per member (LTV) lists: the month of the report day and the 11 before."""


def ltv_cohorts(
    purchases: pd.DataFrame, members: pd.DataFrame, *, timezone: ZoneInfo, as_of: date, months: int = LTV_MONTHS
) -> list[LtvCohort]:
    """Net revenue to date per member of each join month (LTV by join cohort), per currency.

    A cohort is the members whose join (``joined_at``, local day) falls in one calendar month; months, not weeks,
    because revenue builds up over months and a week's joiners are too few to compare. For each of the last
    ``months`` months up to ``as_of``'s with joiners and each currency of the ledger: ``net`` is the cohort's
    purchases up to ``as_of`` minus those refunded by then (one-time sales and subscription periods alike; test
    purchases are not in the ledger), ``per_member = net / members`` over every member of the cohort, buyers or
    not. Purchases of forgotten members belong to no cohort.

    Args:
        purchases: The purchases frame.
        members: The members frame.
        timezone: The community's time zone.
        as_of: The report day.
        months: How many join months to list.

    Returns:
        Cohorts oldest first, currencies alphabetically within a cohort.
    """
    end = day_number(as_of)
    ledger = _ledger(purchases, timezone, end)
    currencies = sorted(set(ledger["currency"].astype(str)))
    if not currencies or months < 1:
        return []
    first_month = (as_of.year * 12 + as_of.month - 1) - (months - 1)
    ids = int_column(members, "member_id")
    joined = local_day_numbers(members["joined_at"], timezone)
    known = (joined != NO_DAY) & (joined <= end)
    ids, joined = ids[known], joined[known]
    stamps = joined.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    month_index = stamps + 1970 * 12
    keep = month_index >= first_month
    cohort_of = pd.Series(month_index[keep], index=pd.Index(ids[keep]))
    sizes = cohort_of.value_counts()
    bought = ledger[ledger["member_id"].notna()]
    bought = bought.assign(member=bought["member_id"].astype("int64"))
    bought = bought[bought["member"].isin(cohort_of.index)]
    bought = bought.assign(
        cohort=cohort_of.reindex(bought["member"].to_numpy()).to_numpy(),
        net=np.where(bought["refunded"].to_numpy(), 0.0, bought["amount"].to_numpy()),
    )
    out: list[LtvCohort] = []
    for month in sorted(sizes.index.tolist()):
        size = int(sizes[month])
        year, month_zero = divmod(int(month), 12)
        first = date(year, month_zero + 1, 1)
        mine = bought[bought["cohort"].to_numpy() == month]
        for currency in currencies:
            rows = mine[mine["currency"].astype(str).to_numpy() == currency]
            net = float(rows["net"].sum())
            out.append(
                LtvCohort(
                    cohort=f"{first.year:04d}-{first.month:02d}",
                    start=first,
                    currency=currency,
                    members=size,
                    buyers=int(rows["member"].nunique()),
                    net=net,
                    per_member=net / size,
                )
            )
    return out


def commerce_summary(
    purchases: pd.DataFrame,
    members: pd.DataFrame,
    member_days: pd.DataFrame | ActivityRows,
    *,
    timezone: ZoneInfo,
    start: date,
    as_of: date,
) -> CommerceSummary:
    """What sells and to whom, as of ``as_of``.

    - ``members``: everyone who was a member by ``as_of`` (left members included: they could have bought);
      ``buyers``: those of them with at least one purchase (refunded ones included); ``conversion = buyers ÷
      members``. Purchases of forgotten members count in the course figures, not here.
    - ``cohort_conversion``: the same per join week, for the weeks from ``start`` to ``as_of`` with joiners.
    - ``median_days_to_first_purchase``: the median over buyers of ``first purchase day − join day`` (local days;
      a purchase before the recorded join counts as 0).
    - ``buyer_retention_30d``: among buyers whose first purchase day ``p`` satisfies ``p + 30 <= as_of``, the share
      active on any day ``p + 1 .. p + 30``.
    - ``refund_rate``: refunds ÷ purchases, all courses and currencies.

    Args:
        purchases: The purchases frame.
        members: The members frame.
        member_days: Member daily activity.
        timezone: The community's time zone.
        start: Any day of the first week (revenue weeks and cohort conversion).
        as_of: The report day.

    Returns:
        The :class:`CommerceSummary`.
    """
    end = day_number(as_of)
    ledger = _ledger(purchases, timezone, end)

    ids = int_column(members, "member_id")
    joined = local_day_numbers(members["joined_at"], timezone)
    ever = (joined == NO_DAY) | (joined <= end)
    ids, joined = ids[ever], joined[ever]

    known = ledger[ledger["member_id"].notna()]
    first_purchase = known.groupby(known["member_id"].astype("int64"))["purchased_day"].min()
    first_day = first_purchase.reindex(pd.Index(ids)).to_numpy(dtype=np.float64)
    is_buyer = ~np.isnan(first_day)
    buyers = int(is_buyer.sum())

    cohort_conversion: list[CohortConversion] = []
    mondays = week_starts(start, as_of)
    if mondays:
        m0 = day_number(mondays[0])
        in_range = (joined != NO_DAY) & (joined >= m0)
        cohort = (joined[in_range] - m0) // 7
        sizes = np.bincount(cohort, minlength=len(mondays))
        bought = np.bincount(cohort[is_buyer[in_range]], minlength=len(mondays))
        for i, monday in enumerate(mondays):
            if sizes[i]:
                cohort_conversion.append(
                    CohortConversion(
                        cohort=week_label(monday),
                        size=int(sizes[i]),
                        buyers=int(bought[i]),
                        conversion=int(bought[i]) / int(sizes[i]),
                    )
                )

    with_join = is_buyer & (joined != NO_DAY)
    waits = np.maximum(first_day[with_join] - joined[with_join], 0)
    median_wait = float(np.median(waits)) if len(waits) else None

    eligible = is_buyer & (first_day + BUYER_RETENTION_DAYS <= end)
    retention: float | None = None
    retention_eligible = int(eligible.sum())
    if eligible.any():
        buyer_ids = ids[eligible]
        bought_on = first_day[eligible].astype(np.int64)
        rows = as_rows(member_days)
        rows = rows.between(int(bought_on.min()) + 1, int(bought_on.max()) + BUYER_RETENTION_DAYS)
        position = positions(buyer_ids, rows.member)
        hit = (position >= 0) & rows.active
        offset = rows.day[hit] - bought_on[position[hit]]
        inside = (offset >= 1) & (offset <= BUYER_RETENTION_DAYS)
        retained = np.bincount(position[hit][inside], minlength=len(buyer_ids)) > 0
        retention = float(retained.mean())

    sales = len(ledger)
    return CommerceSummary(
        courses=tuple(course_sales(purchases, timezone=timezone, as_of=as_of)),
        revenue_weeks=tuple(revenue_weeks(purchases, timezone=timezone, start=start, as_of=as_of)),
        buyers=buyers,
        members=len(ids),
        conversion=buyers / len(ids) if len(ids) else None,
        cohort_conversion=tuple(cohort_conversion),
        median_days_to_first_purchase=median_wait,
        buyer_retention_30d=retention,
        refund_rate=int(ledger["refunded"].sum()) / sales if sales else None,
        buyer_retention_eligible=retention_eligible,
        ltv_cohorts=tuple(ltv_cohorts(purchases, members, timezone=timezone, as_of=as_of)),
    )


# ---------------------------------------------------------------------------------------------------------------
# Revenue in a time window, from ledger rows (the chat's /report, /revenue and the digest)


class Sale(Protocol):
    """What revenue needs of one purchase (``storage.ledger.LedgerRow`` is one)."""

    @property
    def purchase_id(self) -> int:
        """The purchase's id (counts a forgotten buyer once per purchase)."""
        ...

    @property
    def course_key(self) -> str:
        """The course bought."""
        ...

    @property
    def title(self) -> str:
        """The course's title."""
        ...

    @property
    def member_id(self) -> int | None:
        """The buyer; None once forgotten."""
        ...

    @property
    def currency(self) -> str:
        """The currency code."""
        ...

    @property
    def purchased_at(self) -> datetime:
        """When it was bought."""
        ...

    @property
    def refunded_at(self) -> datetime | None:
        """When it was refunded; None if not."""
        ...

    @property
    def amount_major(self) -> Decimal:
        """The amount in major units."""
        ...


def revenue_by_course(rows: Iterable[Sale], *, start: datetime | None, end: datetime) -> list[RevenueLine]:
    """Revenue per course and currency: sales made in [start, end), minus refunds made in [start, end).

    Args:
        rows: The ledger.
        start: The window's first instant; None for all time.
        end: The instant after the window.

    Returns:
        One line per course and currency with a sale or a refund in the window, by course then currency.
    """

    def inside(at: datetime | None) -> bool:
        return at is not None and (start is None or at >= start) and at < end

    acc: dict[tuple[str, str], _Accumulator] = {}
    for row in rows:
        sold, refunded = inside(row.purchased_at), inside(row.refunded_at)
        if not (sold or refunded):
            continue
        entry = acc.setdefault((row.course_key, row.currency), _Accumulator(row.title))
        if sold:
            entry.sales += 1
            entry.gross += row.amount_major
            # A forgotten buyer still counts once per purchase.
            entry.buyers.add(row.member_id if row.member_id is not None else f"purchase-{row.purchase_id}")
        if refunded:
            entry.refunds += 1
            entry.refunded += row.amount_major
    return [
        RevenueLine(
            course_key=course_key,
            title=entry.title,
            currency=currency,
            sales=entry.sales,
            buyers=len(entry.buyers),
            refunds=entry.refunds,
            gross=entry.gross,
            refunded=entry.refunded,
        )
        for (course_key, currency), entry in sorted(acc.items())
    ]


@dataclass(slots=True)
class _Accumulator:
    title: str
    sales: int = 0
    refunds: int = 0
    gross: Decimal = Decimal(0)
    refunded: Decimal = Decimal(0)
    buyers: set[int | str] = field(default_factory=set)


def totals_by_currency(lines: Sequence[RevenueLine]) -> dict[str, Decimal]:
    """Net revenue per currency over the lines."""
    out: dict[str, Decimal] = {}
    for line in lines:
        out[line.currency] = out.get(line.currency, Decimal(0)) + line.net
    return out
