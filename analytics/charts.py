"""PNG charts of a report: activity trend, cohort retention (heatmap and curves), revenue and subscriptions by week.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through ``pyplot``: no global figure
registry, no GUI backend, safe to call from any thread (``savefig`` to PNG uses the Agg renderer). Every chart is
8 x 4.5 inches at 150 dpi (1200 x 675 pixels, legible on a phone) with fonts of 10 points or more, and the PNG
carries no software or time stamp, so the same report gives the same bytes.

Charts for owners (the default, :data:`analytics.privacy.OWNERS`) plot every figure. For an output members can see
(``audience=MEMBERS``: the digest posted to the community chat) the small-group rule applies: daily counts of 1 to
4 members are not plotted (a grey band marks "fewer than 5"), cohorts under 5 members are grey "<5" rows in the
heatmap and left out of the curves.
Empty reports (a community created today) get an explanatory figure instead of empty axes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from analytics.privacy import MIN_GROUP, OWNERS, SMALL, Audience
from analytics.results import Cohort, Report

WIDTH_IN = 8.0
HEIGHT_IN = 4.5
DPI = 150

TITLE_PT = 13
LABEL_PT = 11
TICK_PT = 10
NOTE_PT = 10

ACTIVITY = "activity.png"
COHORT_HEATMAP = "cohort_heatmap.png"
RETENTION_CURVES = "retention_curves.png"
REVENUE = "revenue.png"
SUBSCRIPTIONS = "subscriptions.png"

CHART_TITLES: dict[str, str] = {
    ACTIVITY: "Active members per day (DAU), 7 days (WAU) and 28 days (MAU)",
    COHORT_HEATMAP: "Cohort retention: share of each join week active k weeks later",
    RETENTION_CURVES: "Retention curves of the recent join cohorts",
    REVENUE: "Net revenue per week, by currency",
    SUBSCRIPTIONS: "Subscriptions: active at each week's end, new and churned per week",
}
"""Chart file names, in display order, and what each shows (HTML captions and alt text)."""

MAX_HEATMAP_COHORTS = 12
MAX_HEATMAP_WEEKS = 12
MAX_CURVES = 6

_DAU_COLOR = "#1f77b4"
_WAU_COLOR = "#ff7f0e"
_MAU_COLOR = "#2ca02c"
_HIDDEN_GREY = "#d9d9d9"
_NOTE_GREY = "#555555"
_POSITIVE = "#3a7dc9"
_NEGATIVE = "#d1495b"


def _figure(height: float = HEIGHT_IN) -> Figure:
    # a little more padding than the default, so edge tick labels ("Dec") do not touch the border
    layout = ConstrainedLayoutEngine(w_pad=0.12, h_pad=0.08)
    return Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout=layout)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _title(fig: Figure, text: str) -> None:
    # parse_math=False: community names are user text, and a "$" must not start mathtext
    fig.suptitle(text, fontsize=TITLE_PT, fontweight="bold", parse_math=False)


def _style_axes(ax: Axes) -> None:
    ax.tick_params(labelsize=TICK_PT)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, axis="y", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)


# matplotlib.dates ships no type hints: its three entry points are wrapped here, and every x value is a date number


def _x(day: date | datetime) -> float:
    """A day (or instant) as a matplotlib date number."""
    return float(mdates.date2num(day))  # type: ignore[no-untyped-call]


def _date_axis(ax: Axes) -> None:
    # Concise labels ("Oct", "15", "Nov"); the year goes in the axis label, not in an offset that crowds the corner
    locator = mdates.AutoDateLocator(minticks=4, maxticks=9)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, show_offset=False)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(formatter)


def _span(first: date, last: date) -> str:
    return f"{first.isoformat()} to {last.isoformat()}"


def placeholder(
    title: str, message: str, detail: str = "The chart appears once the bot has logged some activity."
) -> bytes:
    """A chart-sized PNG that says why there is nothing to draw.

    Args:
        title: The chart's title.
        message: The explanation, e.g. "No activity yet".
        detail: A second, smaller line: when the chart will appear.

    Returns:
        The PNG bytes.
    """
    fig = _figure()
    _title(fig, title)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.55, message, ha="center", va="center", fontsize=16, color=_NOTE_GREY, parse_math=False)
    ax.text(
        0.5,
        0.38,
        detail,
        ha="center",
        va="center",
        fontsize=NOTE_PT,
        color=_NOTE_GREY,
        parse_math=False,
    )
    return _png(fig)


# --- data steps: what each chart shows (pure, tested on their rules), then the drawing ------------------------------


@dataclass(frozen=True, slots=True)
class Placeholder:
    """Nothing to plot: the chart-sized figure says why (``message``) and when it will appear (``detail``)."""

    title: str
    message: str
    detail: str = "The chart appears once the bot has logged some activity."


@dataclass(frozen=True, slots=True)
class ActivityData:
    """The activity chart's series: one value per plotted day; None where a count is hidden from the audience."""

    title: str
    timezone: str
    days: tuple[date, ...]
    dau: tuple[int | None, ...]
    wau: tuple[int | None, ...]
    mau: tuple[int | None, ...]
    hidden: bool  # some count is hidden: a grey band from 0 to MIN_GROUP says so
    top: int  # the largest count (or MIN_GROUP), which sets the y axis


@dataclass(frozen=True, slots=True)
class HeatmapRow:
    """One join cohort in the heatmap: its label and one cell per observed week (up to the chart's columns)."""

    cohort: str
    label: str  # "2024-W10 (n=8)", or "2024-W10 (n<5)" when the size is hidden
    hidden: bool  # a small cohort for members: grey cells marked "<5", no shares
    percents: tuple[float | None, ...]  # % of the cohort active in week k; None when hidden
    texts: tuple[str, ...]  # what each cell says: "75%", or "<5"


@dataclass(frozen=True, slots=True)
class HeatmapData:
    """The cohort heatmap: rows oldest first, ``columns`` weeks since joining, and the note on what was cut."""

    title: str
    columns: int
    rows: tuple[HeatmapRow, ...]
    note: str  # "Showing the last 12 of 40 join weeks and weeks 0 to 11", or ""


@dataclass(frozen=True, slots=True)
class Curve:
    """One cohort's retention curve: % of the cohort active k weeks after joining."""

    cohort: str
    label: str
    percents: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class CurvesData:
    """The retention curves, oldest first, and the small cohorts left out in between (named in a note)."""

    title: str
    curves: tuple[Curve, ...]
    skipped: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RevenuePanel:
    """One currency's net revenue per ISO week (Monday, net), oldest first, and its total."""

    currency: str
    weeks: tuple[tuple[date, float], ...]
    total: float


@dataclass(frozen=True, slots=True)
class RevenueData:
    """The revenue chart: one panel per currency (sorted by code) over the weeks from ``first`` to ``last``."""

    title: str
    panels: tuple[RevenuePanel, ...]
    first: date  # the Monday of the first week shown
    last: date  # the day after the last week shown
    any_negative: bool  # some week refunded more than it sold


def _shown(n: int, audience: Audience) -> int | None:
    return None if audience.hides(n) else n


def activity_data(report: Report, audience: Audience = OWNERS) -> ActivityData | Placeholder:
    """What the activity chart plots: DAU, WAU and MAU per day up to the last complete, measured day.

    For members, counts of 1 to 4 are None (not plotted); zero and 5 or more are shown.

    Args:
        report: The report.
        audience: Who will see the chart.

    Returns:
        The series; a placeholder when there are no days, no one was ever active, or every count is hidden.
    """
    title = f"{report.community}: active members"
    # An unfinished or unmeasured day is never plotted: its counts would read as a drop.
    days = sorted((d for d in report.daily if d.day <= report.measured_through), key=lambda d: d.day)
    if not days or all(d.dau == 0 and d.wau == 0 and d.mau == 0 for d in days):
        return Placeholder(title, "No activity yet")
    if all(audience.hides(n) or n == 0 for d in days for n in (d.dau, d.wau, d.mau)):
        return Placeholder(
            title,
            f"Fewer than {MIN_GROUP} active members so far",
            f"Counts under {MIN_GROUP} are not shown; the chart appears with {MIN_GROUP} or more active members.",
        )
    return ActivityData(
        title=title,
        timezone=report.timezone,
        days=tuple(d.day for d in days),
        dau=tuple(_shown(d.dau, audience) for d in days),
        wau=tuple(_shown(d.wau, audience) for d in days),
        mau=tuple(_shown(d.mau, audience) for d in days),
        hidden=any(audience.hides(n) for d in days for n in (d.dau, d.wau, d.mau)),
        top=max([MIN_GROUP, *(d.mau for d in days), *(d.wau for d in days), *(d.dau for d in days)]),
    )


def _cohort_label(cohort: Cohort, audience: Audience) -> str:
    size = f"n{SMALL}" if audience.hides(cohort.size) else f"n={cohort.size}"
    return f"{cohort.cohort} ({size})"


def cohort_heatmap_data(report: Report, audience: Audience = OWNERS) -> HeatmapData | Placeholder:
    """What the cohort heatmap shows: the last 12 join cohorts (oldest first) by weeks 0 to 11 since joining.

    At least 4 columns (a young community's cells are not giant blocks); weeks not observed yet have no cell. For
    members, cohorts under 5 members keep their row but show "<5" instead of shares and size.

    Args:
        report: The report.
        audience: Who will see the chart.

    Returns:
        The grid; a placeholder when there are no cohorts or every shown cohort is hidden.
    """
    title = f"{report.community}: cohort retention"
    everything = sorted(report.cohorts, key=lambda c: c.start)
    cohorts = everything[-MAX_HEATMAP_COHORTS:]
    if not cohorts:
        return Placeholder(title, "No join cohorts yet", "The chart appears once members have joined.")
    if all(audience.hides(c.size) for c in cohorts):
        return Placeholder(
            title,
            f"No join cohort of {MIN_GROUP} or more members yet",
            f"Cohorts under {MIN_GROUP} members are not shown.",
        )
    longest = max(len(c.retention) for c in cohorts)
    columns = max(4, min(MAX_HEATMAP_WEEKS, longest))
    rows = []
    for cohort in cohorts:
        hidden = audience.hides(cohort.size)
        observed = cohort.retention[:columns]
        percents = tuple(None if hidden else share * 100.0 for share in observed)
        rows.append(
            HeatmapRow(
                cohort=cohort.cohort,
                label=_cohort_label(cohort, audience),
                hidden=hidden,
                percents=percents,
                texts=tuple(SMALL if p is None else f"{p:.0f}%" for p in percents),
            )
        )
    cut = []
    if len(everything) > len(cohorts):
        cut.append(f"the last {len(cohorts)} of {len(everything)} join weeks")
    if longest > columns:
        cut.append(f"weeks 0 to {columns - 1}")
    return HeatmapData(title, columns, tuple(rows), "Showing " + " and ".join(cut) if cut else "")


def retention_curves_data(report: Report, audience: Audience = OWNERS) -> CurvesData | Placeholder:
    """What the retention curves show: the 6 most recent cohorts with an observed week (for members, of 5 or more).

    Args:
        report: The report.
        audience: Who will see the chart.

    Returns:
        The curves, oldest first, and the hidden cohorts from the first shown one on; a placeholder when no cohort
        can be shown.
    """
    title = f"{report.community}: retention by join week"
    ordered = sorted(report.cohorts, key=lambda c: c.start)
    visible = [c for c in ordered if c.retention and not audience.hides(c.size)][-MAX_CURVES:]
    if not visible:
        if not ordered:
            return Placeholder(title, "No join cohorts yet", "The chart appears once members have joined.")
        return Placeholder(
            title,
            f"No join cohort of {MIN_GROUP} or more members yet",
            f"Cohorts under {MIN_GROUP} members are not shown.",
        )
    first = visible[0].start
    return CurvesData(
        title=title,
        curves=tuple(
            Curve(c.cohort, _cohort_label(c, audience), tuple(s * 100.0 for s in c.retention)) for c in visible
        ),
        skipped=tuple(c.cohort for c in ordered if audience.hides(c.size) and c.start >= first),
    )


def revenue_data(report: Report) -> RevenueData | Placeholder | None:
    """What the revenue chart shows: net revenue (sales minus refunds) per ISO week, one panel per currency.

    The weeks span the report's weeks and every week with revenue, so the panels line up with the activity.

    Args:
        report: The report.

    Returns:
        The panels; None without a commerce section; a placeholder when it has no sales.
    """
    commerce = report.commerce
    if commerce is None:
        return None
    title = f"{report.community}: net revenue per week"
    if not commerce.revenue_weeks:
        return Placeholder(title, "No sales yet", "The chart appears after the first purchase.")
    panels = []
    for currency in sorted({w.currency for w in commerce.revenue_weeks}):
        weeks = sorted((w for w in commerce.revenue_weeks if w.currency == currency), key=lambda w: w.start)
        panels.append(RevenuePanel(currency, tuple((w.start, w.net) for w in weeks), sum(w.net for w in weeks)))
    starts = [w.start for w in report.weekly] + [w.start for w in commerce.revenue_weeks]
    return RevenueData(
        title=title,
        panels=tuple(panels),
        first=min(starts),
        last=max(starts) + timedelta(days=7),
        any_negative=any(net < 0 for panel in panels for _, net in panel.weeks),
    )


# --- drawing ----------------------------------------------------------------------------------------------------


def _draw_placeholder(empty: Placeholder) -> bytes:
    return placeholder(empty.title, empty.message, empty.detail)


def _series(values: Sequence[int | None]) -> np.ndarray:
    """Counts as floats, hidden ones (None) as NaN: not plotted."""
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)


def _isolated(values: np.ndarray) -> np.ndarray:
    """Where a value is shown but neither neighbour is (a line plot would draw nothing there)."""
    shown = ~np.isnan(values)
    before = np.concatenate([[False], shown[:-1]])
    after = np.concatenate([shown[1:], [False]])
    result: np.ndarray = shown & ~before & ~after
    return result


def activity_chart(report: Report, audience: Audience = OWNERS) -> bytes:
    """DAU, WAU and MAU over the report's days up to the last complete, measured day, with dates on the x axis.

    For members, daily counts of 1 to 4 members are not plotted; a grey band from 0 to 5 says so.

    Args:
        report: The report.
        audience: Who will see the chart.

    Returns:
        PNG bytes; a "no activity yet" figure when there are no days or no one was ever active.
    """
    data = activity_data(report, audience)
    if isinstance(data, Placeholder):
        return _draw_placeholder(data)
    x = [_x(day) for day in data.days]
    marker = "o" if len(data.days) < 8 else None

    fig = _figure()
    _title(fig, data.title)
    ax = fig.add_subplot()
    _style_axes(ax)
    if data.hidden:
        ax.axhspan(0, MIN_GROUP, color=_HIDDEN_GREY, alpha=0.6, linewidth=0, label=f"fewer than {MIN_GROUP}: hidden")
    for counts, colour, width, label in (
        (data.mau, _MAU_COLOR, 2.4, "MAU (active in 28 days)"),
        (data.wau, _WAU_COLOR, 2.0, "WAU (active in 7 days)"),
        (data.dau, _DAU_COLOR, 1.4, "DAU (active that day)"),
    ):
        values = _series(counts)
        ax.plot(x, values, color=colour, linewidth=width, marker=marker, label=label)
        lonely = _isolated(values)
        if marker is None and lonely.any():  # a point between two hidden days draws no line: mark it
            ax.plot(np.asarray(x)[lonely], values[lonely], linestyle="none", marker="o", markersize=3, color=colour)

    ax.set_ylim(0, data.top * 1.3)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    margin = timedelta(days=3 if len(data.days) < 8 else 1)
    ax.set_xlim(_x(data.days[0] - margin), _x(data.days[-1] + margin))
    _date_axis(ax)
    ax.set_ylabel("members", fontsize=LABEL_PT)
    ax.set_xlabel(f"day, {_span(data.days[0], data.days[-1])} ({data.timezone})", fontsize=LABEL_PT)
    ax.legend(loc="upper left", fontsize=TICK_PT, ncol=2, frameon=False)
    return _png(fig)


def cohort_heatmap(report: Report, audience: Audience = OWNERS) -> bytes:
    """Cohorts (rows, oldest first) by weeks since joining (columns), each cell the % of the cohort active.

    Shows the last 12 cohorts and weeks 0 to 11; cells not yet observed are blank; for members, cohorts under 5
    members are grey rows marked "<5".

    Args:
        report: The report.
        audience: Who will see the chart.

    Returns:
        PNG bytes; an explanatory figure when there are no cohorts.
    """
    data = cohort_heatmap_data(report, audience)
    if isinstance(data, Placeholder):
        return _draw_placeholder(data)
    weeks = data.columns
    values = np.full((len(data.rows), weeks), math.nan)
    hidden = np.full((len(data.rows), weeks), math.nan)
    for r, row in enumerate(data.rows):
        for k, pct in enumerate(row.percents):
            if pct is None:
                hidden[r, k] = 1.0
            else:
                values[r, k] = pct

    fig = _figure()
    _title(fig, data.title)
    ax = fig.add_subplot()
    ax.tick_params(labelsize=TICK_PT, length=0)
    cmap = ListedColormap(_blues(256)).with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=100, aspect="auto", interpolation="nearest")
    grey = ListedColormap([_HIDDEN_GREY]).with_extremes(bad=(0.0, 0.0, 0.0, 0.0))
    ax.imshow(np.ma.masked_invalid(hidden), cmap=grey, vmin=0, vmax=1, aspect="auto", interpolation="nearest")

    font = TICK_PT if weeks <= 10 else 9.5
    for r, row in enumerate(data.rows):
        for k, (pct, text) in enumerate(zip(row.percents, row.texts, strict=True)):
            colour = _NOTE_GREY if pct is None else ("white" if pct >= 55 else "#1a1a1a")
            ax.text(k, r, text, ha="center", va="center", fontsize=font, color=colour)

    ax.set_xticks(range(weeks))
    ax.set_xticklabels([str(k) for k in range(weeks)])
    ax.set_yticks(range(len(data.rows)))
    ax.set_yticklabels([row.label for row in data.rows])
    ax.set_xlabel("weeks since joining (0 = the join week)", fontsize=LABEL_PT)
    ax.set_ylabel("join week (ISO)", fontsize=LABEL_PT)
    ax.xaxis.set_ticks_position("top")
    ax.xaxis.set_label_position("top")
    if data.note:
        ax.set_title(data.note, fontsize=NOTE_PT, color=_NOTE_GREY, loc="left")
    for spine in ax.spines.values():
        spine.set_edgecolor("#bbbbbb")  # frames the grid, so weeks not observed yet read as blank cells
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    bar.set_label("active in the week (% of cohort)", fontsize=LABEL_PT)
    bar.ax.tick_params(labelsize=TICK_PT)
    bar.ax.yaxis.set_major_formatter(PercentFormatter(xmax=100, decimals=0))
    if any(row.hidden for row in data.rows):
        handles = [Patch(facecolor=_HIDDEN_GREY, label=f"cohort of fewer than {MIN_GROUP} members: hidden")]
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.02),
            fontsize=TICK_PT,
            frameon=False,
        )
    return _png(fig)


def _blues(n: int) -> np.ndarray:
    """A light-to-dark blue ramp that starts visibly above white (so 0% is not mistaken for "not observed")."""
    start = np.array([0.90, 0.94, 0.98])
    end = np.array([0.03, 0.19, 0.42])
    t = np.linspace(0.0, 1.0, n)[:, None]
    rgb = start + (end - start) * t
    return np.hstack([rgb, np.ones((n, 1))])


def retention_curves(report: Report, audience: Audience = OWNERS) -> bytes:
    """One line per recent cohort (for members, of 5 or more members): % of the cohort active k weeks after joining.

    Args:
        report: The report.
        audience: Who will see the chart.

    Returns:
        PNG bytes; an explanatory figure when no cohort is large enough to show.
    """
    data = retention_curves_data(report, audience)
    if isinstance(data, Placeholder):
        return _draw_placeholder(data)
    fig = _figure()
    _title(fig, data.title)
    ax = fig.add_subplot()
    _style_axes(ax)
    colours = _curve_colours(len(data.curves))
    for curve, colour in zip(data.curves, colours, strict=True):
        weeks = list(range(len(curve.percents)))
        ax.plot(weeks, list(curve.percents), marker="o", markersize=4, linewidth=1.8, color=colour, label=curve.label)
    longest = max(len(c.percents) for c in data.curves)
    ax.set_xlim(-0.3, max(1, longest - 1) + 0.3)
    ax.set_ylim(0, 105)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=100, decimals=0))
    ax.set_xlabel("weeks since joining (0 = the join week)", fontsize=LABEL_PT)
    ax.set_ylabel("active in the week (% of cohort)", fontsize=LABEL_PT)
    if data.skipped:
        ax.set_title(
            f"Not shown (fewer than {MIN_GROUP} members): {', '.join(data.skipped)}",
            fontsize=NOTE_PT,
            color=_NOTE_GREY,
            loc="left",
        )
    ax.legend(
        title="join week",
        title_fontsize=TICK_PT,
        fontsize=TICK_PT,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
    )
    return _png(fig)


def _curve_colours(n: int) -> list[str]:
    """Distinct hues (colour-blind-safe Okabe-Ito order), one per cohort."""
    palette = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]
    return [palette[i % len(palette)] for i in range(n)]


def _money_tick(value: float, _position: float) -> str:
    return f"{value:,.0f}"


def revenue_chart(report: Report) -> bytes | None:
    """Net revenue (sales minus refunds) per ISO week as bars, one panel per currency.

    Args:
        report: The report.

    Returns:
        PNG bytes; ``None`` when the report has no commerce section; an explanatory figure when it has no sales.
    """
    data = revenue_data(report)
    if data is None:
        return None
    if isinstance(data, Placeholder):
        return _draw_placeholder(data)
    n = len(data.panels)
    height = HEIGHT_IN if n <= 2 else HEIGHT_IN + 1.6 * (n - 2)
    fig = _figure(height)
    _title(fig, data.title)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, data.panels, strict=True):
        _style_axes(ax)
        # a bar covers its ISO week, Monday to Sunday, with a small gap
        centres = [_x(datetime.combine(start, time(12)) + timedelta(days=3)) for start, _ in panel.weeks]
        nets = [net for _, net in panel.weeks]
        colours = [_POSITIVE if net >= 0 else _NEGATIVE for net in nets]
        ax.bar(centres, nets, width=6.0, color=colours, edgecolor="none")
        ax.axhline(0, color="#333333", linewidth=0.8)
        ax.set_ylabel(f"{panel.currency}", fontsize=LABEL_PT)
        ax.yaxis.set_major_formatter(FuncFormatter(_money_tick))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.text(
            0.995,
            0.97,
            f"total net {panel.total:,.0f} {panel.currency}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=NOTE_PT,
            color=_NOTE_GREY,
        )
        low, high = min([0.0, *nets]), max([0.0, *nets])
        ax.set_ylim(low * 1.15, high * 1.3 if high > 0 else 1)
    axes[-1].set_xlim(_x(data.first), _x(data.last))
    _date_axis(axes[-1])
    axes[-1].set_xlabel(
        f"ISO week, {_span(data.first, data.last - timedelta(days=1))} (one bar per week, Monday to Sunday)",
        fontsize=LABEL_PT,
    )
    handles = [Patch(facecolor=_POSITIVE, label="net revenue (sales − refunds)")]
    if data.any_negative:
        handles.append(Patch(facecolor=_NEGATIVE, label="refunds exceeded sales"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=TICK_PT, frameon=False)
    return _png(fig)


def subscriptions_chart(report: Report) -> bytes | None:
    """Subscriptions per ISO week: active at the week's end (line, top) and new and churned (bars, bottom).

    Args:
        report: The report.

    Returns:
        PNG bytes; ``None`` when the report has no subscriptions.
    """
    subs = report.subscriptions
    if subs is None or not subs.weeks:
        return None
    fig = _figure()
    _title(fig, f"{report.community}: subscriptions per week")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1))
    centres = [_x(datetime.combine(w.start, time(12)) + timedelta(days=3)) for w in subs.weeks]
    ends = [_x(w.start + timedelta(days=7)) for w in subs.weeks]
    for ax in (top, bottom):
        _style_axes(ax)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    top.plot(ends, [w.active for w in subs.weeks], color=_MAU_COLOR, linewidth=2, marker="o", markersize=4)
    top.set_ylim(0, max(1, *(w.active for w in subs.weeks)) * 1.2)
    top.set_ylabel("active", fontsize=LABEL_PT)
    top.text(
        0.005,
        0.97,
        f"{subs.active:,} active now",
        transform=top.transAxes,
        ha="left",
        va="top",
        fontsize=NOTE_PT,
        color=_NOTE_GREY,
    )
    bottom.bar(centres, [w.new for w in subs.weeks], width=6.0, color=_POSITIVE, edgecolor="none")
    bottom.bar(centres, [-w.churned for w in subs.weeks], width=6.0, color=_NEGATIVE, edgecolor="none")
    bottom.axhline(0, color="#333333", linewidth=0.8)
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{abs(value):,.0f}"))
    bottom.set_ylabel("per week", fontsize=LABEL_PT)
    first, last = subs.weeks[0].start, subs.weeks[-1].start + timedelta(days=7)
    bottom.set_xlim(_x(first), _x(last))
    _date_axis(bottom)
    bottom.set_xlabel(f"ISO week, {_span(first, last - timedelta(days=1))}", fontsize=LABEL_PT)
    handles = [
        Line2D([], [], color=_MAU_COLOR, linewidth=2, marker="o", markersize=4, label="active at week end"),
        Patch(facecolor=_POSITIVE, label="new"),
        Patch(facecolor=_NEGATIVE, label="churned (access ended, no renewal)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=TICK_PT, frameon=False)
    return _png(fig)


def render_charts(report: Report) -> dict[str, bytes]:
    """Every chart of the report, keyed by file name (``activity.png``, ...), in display order.

    Args:
        report: The report.

    Returns:
        File name to PNG bytes; ``revenue.png`` only when the report has a commerce section, ``subscriptions.png``
        only when it has subscriptions.
    """
    charts = {
        ACTIVITY: activity_chart(report),
        COHORT_HEATMAP: cohort_heatmap(report),
        RETENTION_CURVES: retention_curves(report),
    }
    revenue = revenue_chart(report)
    if revenue is not None:
        charts[REVENUE] = revenue
    subscriptions = subscriptions_chart(report)
    if subscriptions is not None:
        charts[SUBSCRIPTIONS] = subscriptions
    return charts
