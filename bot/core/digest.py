"""The weekly owner digest: last complete ISO week in one message, with an activity chart.

``/digest`` shows a preview; the scheduler (a later issue) sends the same :class:`Digest` weekly and may append
sections (nudge results) to ``text``. Building it reads the database and renders a PNG, so it is synchronous and
callers run it in a thread (``asyncio.to_thread``).

The digest is read on a phone: a headline with week-over-week changes, then short sections, then one or two
observations computed from the numbers. It stays well under Telegram's 4096 characters (each adapter's ``markup``
module still splits it if a community's names are very long). The admin version is for owners and shows
exact figures, members at risk by name and sales; the version posted to the community chat is seen by members, so
it hides groups of fewer than five and every share or change that would reveal one (``analytics.privacy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Engine

from analytics.charts import activity_chart, subscriptions_chart
from analytics.commerce import revenue_by_course, totals_by_currency
from analytics.formatting import (
    DASH,
    fmt_change,
    fmt_int,
    fmt_members,
    fmt_money,
    fmt_number,
    fmt_pct,
    fmt_totals,
    plural,
)
from analytics.privacy import MEMBERS, OWNERS, Audience
from analytics.render import clean_name, data_notices
from analytics.results import Report, SubscriptionSummary, WeekStats
from analytics.weeks import week_label, week_start
from bot.config import Settings
from bot.core.commands.questions import digest_questions
from bot.core.markup import Line, Rich, Span, bold, italic, join, rich
from bot.core.nudges import nudge_results
from bot.core.reconcile import access_problems
from bot.core.replies import Attachment
from bot.core.surveys import digest_section
from bot.core.views import activation_sentence, activation_share, fmt_conversion, local_midnight, retention_sentence
from bot.reporting import ReportRequest, build_community_report, current_member_ids
from storage.job_runs import last_job_runs
from storage.ledger import LedgerRow, ledger

DIGEST_WEEKS = 8  # the chart's span: two months shows a trend without squeezing the lines on a phone
MAX_AT_RISK_NAMES = 10
LOW_ACTIVATION = 0.3
NOTABLE_CHANGE = 0.1


@dataclass(frozen=True, slots=True)
class Digest:
    """One week's digest.

    Attributes:
        week_label: The ISO week it covers, ``"2024-W10"`` (the ``digests.week`` key).
        text: The message.
        charts: PNG attachments (the activity trend; for owners, the subscriptions when there are any).
    """

    week_label: str
    text: Rich
    charts: tuple[Attachment, ...]


def digest_week(now: datetime, settings: Settings) -> tuple[date, date]:
    """The Monday and Sunday of the last complete ISO week before ``now`` (community time zone)."""
    today = now.astimezone(settings.community.tz).date()
    sunday = week_start(today) - timedelta(days=1)
    return sunday - timedelta(days=6), sunday


def build_digest(engine: Engine, settings: Settings, community_id: int, *, now: datetime, for_admins: bool) -> Digest:
    """Build the digest of the last complete ISO week before ``now``.

    Args:
        engine: The database.
        settings: The configuration (community name and zone, digest and nudge settings, courses).
        community_id: The community's database id.
        now: The current instant.
        for_admins: Include what only admins may see (members at risk by name, sales and revenue); the other
            version is for the community chat.

    Returns:
        The digest.
    """
    monday, sunday = digest_week(now, settings)
    label = week_label(monday)
    report, _hint = build_community_report(
        engine,
        ReportRequest(
            community=settings.community.name,
            as_of=sunday,
            weeks=DIGEST_WEEKS,
            inactive_after_days=settings.nudges.inactive_after_days,
            top_n=settings.digest.top_members,
            help=settings.help,
        ),
        now=now,
    )
    tz = settings.community.tz
    sales = ledger(engine, community_id)
    # The same members as the report's "Members" on the digest's Sunday (docs/metrics.md, "Members").
    member_ids = current_member_ids(engine, settings.community.name, as_of=sunday) if sales else frozenset()
    weeks = {w.start: w for w in report.weekly}
    current = weeks.get(monday) or WeekStats(label, monday, 0, 0, 0, 0, 0, 0, 0)
    previous = weeks.get(monday - timedelta(days=7))

    audience = OWNERS if for_admins else MEMBERS
    title = rich([bold(f"{settings.community.name}: week {label}"), f" ({monday:%d %b} – {sunday:%d %b %Y})"])
    blocks = [title]
    notices = data_notices(report)  # first: data that ends before the Sunday
    if notices:
        blocks.append(rich(*([italic(f"⚠ {notice}")] for notice in notices)))
    blocks += [_headline(current, previous, audience), _engagement(report, audience)]
    top = _top(report)
    if top is not None:
        blocks.append(top)
    if for_admins:
        blocks.append(_at_risk(report))
    week_start_at, week_end_at = local_midnight(monday, tz), local_midnight(sunday + timedelta(days=1), tz)
    if for_admins and (sales or settings.courses):
        # Revenue is the owner's business: a digest posted to the community chat leaves it out.
        blocks.append(_sales(sales, week_start_at, week_end_at, member_ids))
    if for_admins and report.subscriptions is not None:
        blocks.append(_subscriptions(report.subscriptions, monday))
    if for_admins:
        questions = digest_questions(report, settings, monday)
        if questions is not None:
            blocks.append(questions)
        # Owners only: the comments are members' own words and never shown to members.
        satisfaction = digest_section(report.surveys)
        if satisfaction is not None:
            blocks.append(satisfaction)
        blocks.extend(_operations(engine, community_id, week_end_at))
    notes = observations(report, current, previous, sales, week_start_at, week_end_at, audience=audience)
    if notes:
        blocks.append(rich([bold("Worth knowing")], *(f"• {n}" for n in notes)))
    charts = [Attachment(f"digest-{label}-activity.png", activity_chart(report, audience), "image/png")]
    subscriptions_png = subscriptions_chart(report) if for_admins else None
    if subscriptions_png is not None:
        charts.append(Attachment(f"digest-{label}-subscriptions.png", subscriptions_png, "image/png"))
    return Digest(week_label=label, text=join(blocks), charts=tuple(charts))


def _operations(engine: Engine, community_id: int, week_end_at: datetime) -> list[Rich]:
    """Admins' part from the scheduler: whether nudges work, and course access the bot could not fix."""
    blocks: list[Rich] = []
    nudges = nudge_results(engine, community_id, week_end=week_end_at)
    if nudges is not None:
        blocks.append(nudges)
    last = last_job_runs(engine, community_id).get("reconcile")
    problems = access_problems(last.detail if last else None)
    if problems:
        shown = [f"• {p}" for p in problems[:MAX_AT_RISK_NAMES]]
        if len(problems) > MAX_AT_RISK_NAMES:
            shown.append(f"… and {len(problems) - MAX_AT_RISK_NAMES} more (`cohortbot jobs` shows the last check)")
        blocks.append(rich([bold("Course access to fix")], *shown))
    return blocks


def _headline(current: WeekStats, previous: WeekStats | None, audience: Audience) -> Rich:
    def row(name: str, value: str, before: int | None, now: int, members: bool) -> Line:
        # For members, a change is hidden when either week has fewer than five members (it would reveal them).
        change = "" if before is None else fmt_change(before, now, audience=audience if members else None)
        change = f" ({change} vs last week)" if change and change != DASH else ""
        return (Span(f"{name}: "), bold(value), Span(change))

    prev = previous
    count = audience.count
    return Rich(
        (
            row("Active members", count(current.active), prev.active if prev else None, current.active, True),
            row("New members", count(current.new), prev.new if prev else None, current.new, True),
            row("Left", count(current.left), prev.left if prev else None, current.left, True),
            row("Messages", fmt_int(current.messages), prev.messages if prev else None, current.messages, False),
        )
    )


def _engagement(report: Report, audience: Audience) -> Rich:
    s = report.summary
    lines: list[Sequence[Span | str] | str] = [
        [bold("Engagement")],
        f"WAU {fmt_members(s.wau, audience)} · MAU {fmt_members(s.mau, audience)} · stickiness "
        f"{fmt_pct(audience.share(s.stickiness, s.mau))} (on Sunday)",
    ]
    lines += [
        sentence
        for sentence in (retention_sentence(report, audience), activation_sentence(report, audience))
        if sentence
    ]
    return rich(*lines)


def _top(report: Report) -> Rich | None:
    """The ``[digest] top_members`` members with the highest engagement score, the score shown with its basis."""
    if not report.top_members:
        return None
    # Ranked by the score, not by messages: say so, and show it, or a list whose message counts are out of order
    # reads as unsorted.
    lines: list[Sequence[Span | str] | str] = [
        [bold("Top contributors"), " (by engagement score, which weighs recent days more)"]
    ]
    for rank, member in enumerate(report.top_members, start=1):
        count = member.messages_28d
        lines.append(
            f"{rank}. {clean_name(member.name)} · score {fmt_number(member.score, 1)} · "
            f"{plural(count, 'message')} in 28 days"
        )
    return rich(*lines)


def _at_risk(report: Report) -> Rich:
    at_risk = report.at_risk
    if not at_risk:
        return rich([bold("At risk"), ": nobody who was active has gone quiet. 🎉"])
    names = ", ".join(clean_name(m.name) for m in at_risk[:MAX_AT_RISK_NAMES])
    more = f" and {len(at_risk) - MAX_AT_RISK_NAMES} more" if len(at_risk) > MAX_AT_RISK_NAMES else ""
    return rich(
        [bold("At risk"), f": {fmt_int(len(at_risk))} active 2–6 weeks ago, silent for 2 weeks (admins only)"],
        f"{names}{more}. See /inactive.",
    )


def _sales(rows: Sequence[LedgerRow], start: datetime, end: datetime, member_ids: frozenset[int]) -> Rich:
    lines: list[Sequence[Span | str] | str] = [[bold("Sales this week")]]
    week = revenue_by_course(rows, start=start, end=end)
    if not week:
        lines.append("No sales or refunds this week.")
    for line in week:
        refunds = f", {line.refunds} refunded ({fmt_money(line.refunded, line.currency)})" if line.refunds else ""
        lines.append(f"{line.title}: {line.sales} sold, {fmt_money(line.net, line.currency)} net{refunds}")
    if week:
        lines.append(f"Net this week: {fmt_totals(totals_by_currency(week))}")
    if member_ids:
        lines.append(f"Conversion: {fmt_conversion(rows, member_ids, end=end)}.")
    return rich(*lines)


def _subscriptions(subscriptions: SubscriptionSummary, monday: date) -> Rich:
    """The monthly courses: active now, MRR, the week's new and churned, and the renewal rate of the digest's weeks."""
    s = subscriptions
    week = next((w for w in s.weeks if w.start == monday), None)
    came = f" (+{fmt_int(week.new)} new, −{fmt_int(week.churned)} churned this week)" if week else ""
    mrr = fmt_totals(dict(s.mrr)) if s.mrr else DASH
    lines: list[Sequence[Span | str] | str] = [
        [bold("Subscriptions")],
        f"Active: {fmt_int(s.active)}{came} · MRR {mrr}",
    ]
    if s.renewals_due:
        lines.append(
            f"Renewal rate {fmt_pct(s.renewal_rate)} over {plural(len(s.weeks), 'week')} "
            f"({fmt_int(s.renewed)} of {fmt_int(s.renewals_due)} renewed)"
        )
    return rich(*lines)


def observations(
    report: Report,
    current: WeekStats,
    previous: WeekStats | None,
    sales: Sequence[LedgerRow],
    week_start_at: datetime,
    week_end_at: datetime,
    *,
    audience: Audience,
) -> list[str]:
    """One or two plain-language remarks computed from the week's numbers, the most useful first.

    Remarks about money and members at risk are for owners only (``audience`` is :data:`OWNERS`).
    """
    for_admins = not audience.public
    notes: list[str] = []
    if previous is not None and previous.active and not audience.hides_change(previous.active, current.active):
        change = (current.active - previous.active) / previous.active
        if change >= NOTABLE_CHANGE:
            notes.append(f"More members were active than the week before (up {fmt_pct(change)}).")
        elif change <= -NOTABLE_CHANGE:
            notes.append(
                f"Fewer members were active than the week before (down {fmt_pct(-change)}); a question or a small "
                "challenge in the main channel often gets people talking again."
            )
    elif previous is not None and previous.messages and current.messages == 0:
        notes.append("Nobody posted this week, after an active week before.")
    elif previous is not None and previous.messages and current.messages < previous.messages / 2:
        notes.append(
            "Messages fell by more than half compared with the week before "
            f"({fmt_int(previous.messages)} to {fmt_int(current.messages)})."
        )
    activation = activation_share(report, audience)
    if activation is not None and activation < LOW_ACTIVATION:
        notes.append(
            f"Only {fmt_pct(activation)} of new members got going in their first week; a personal welcome and a first "
            "small task help newcomers start posting."
        )
    if for_admins and report.at_risk:
        notes.append(
            f"{plural(len(report.at_risk), 'previously active member')} went quiet; "
            "a personal hello from an admin brings many back."
        )
    if for_admins:
        sales_note = _sales_note(sales, week_start_at, week_end_at)
        if sales_note:
            notes.append(sales_note)
    if not notes and current.active:
        notes.append("A steady week: no big changes in activity.")
    return notes[:2]


def _sales_note(sales: Sequence[LedgerRow], week_start_at: datetime, week_end_at: datetime) -> str | None:
    """A remark when this week's sales stand out against the four weeks before."""
    four_weeks_ago = week_start_at - timedelta(weeks=4)
    sold_now = sum(1 for r in sales if week_start_at <= r.purchased_at < week_end_at)
    sold_before = sum(1 for r in sales if four_weeks_ago <= r.purchased_at < week_start_at)
    if sold_now == 0 and sold_before:
        return f"No sales this week, after {sold_before} in the four weeks before."
    # Twice the weekly average of the four weeks before (sold_before / 4) or more.
    if sold_now and sold_before and 2 * sold_now >= sold_before:
        return f"{plural(sold_now, 'sale')} this week: at least twice the weekly average of the four weeks before."
    return None
