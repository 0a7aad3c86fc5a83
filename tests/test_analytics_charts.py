"""PNG charts of a Report: what each chart shows (its data step, tested on the documented rules), and the drawing:
valid PNGs sized for a phone, deterministic, safe on empty and tiny communities."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, timedelta

import matplotlib.image as mpimg
import numpy as np
import pytest

from analytics import charts
from analytics.privacy import MEMBERS, OWNERS, SMALL
from analytics.results import Cohort, DayActivity, Report, RevenueWeek
from tests.report_samples import empty_report, sample_report, sample_subscriptions, tiny_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WIDTH, HEIGHT = 1200, 675  # 8 x 4.5 inches at 150 dpi


def _chunks(png: bytes) -> Iterator[tuple[bytes, bytes]]:
    assert png[:8] == PNG_SIGNATURE
    at = 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind = png[at + 4 : at + 8]
        yield kind, png[at + 8 : at + 8 + length]
        at += 12 + length


def _size(png: bytes) -> tuple[int, int]:
    kind, data = next(_chunks(png))
    assert kind == b"IHDR"
    width, height = struct.unpack(">II", data[:8])
    return width, height


def _pixels(png: bytes) -> np.ndarray:
    image: np.ndarray = mpimg.imread(io.BytesIO(png), format="png")
    return image


def sample_with_subscriptions() -> Report:
    report = sample_report()
    return replace(report, subscriptions=sample_subscriptions(report))


@pytest.fixture(scope="module")
def sample_charts() -> dict[str, bytes]:
    return charts.render_charts(sample_with_subscriptions())


def test_sample_report_has_all_five_charts(sample_charts: dict[str, bytes]) -> None:
    assert list(sample_charts) == [
        "activity.png",
        "cohort_heatmap.png",
        "retention_curves.png",
        "revenue.png",
        "subscriptions.png",
    ]
    assert list(sample_charts) == list(charts.CHART_TITLES)
    assert "subscriptions.png" not in charts.render_charts(sample_report())  # no subscriptions, no chart


def test_charts_are_valid_pngs_sized_for_a_phone(sample_charts: dict[str, bytes]) -> None:
    for name, png in sample_charts.items():
        assert png.startswith(PNG_SIGNATURE), name
        assert _size(png) == (WIDTH, HEIGHT), name
        pixels = _pixels(png)
        assert pixels.shape[:2] == (HEIGHT, WIDTH), name
        assert pixels.std() > 0.05, f"{name} looks blank"
        assert [kind for kind, _ in _chunks(png)][-1] == b"IEND"


def test_charts_carry_no_timestamp_or_software_and_are_deterministic(sample_charts: dict[str, bytes]) -> None:
    for name, png in sample_charts.items():
        kinds = {kind for kind, _ in _chunks(png)}
        assert b"tIME" not in kinds, name
        text = b"".join(data for kind, data in _chunks(png) if kind in (b"tEXt", b"iTXt", b"zTXt"))
        assert b"Software" not in text and b"matplotlib" not in text.lower(), name
    again = charts.render_charts(sample_with_subscriptions())
    assert again == sample_charts


@pytest.mark.parametrize("make", [empty_report, tiny_report], ids=["empty", "tiny"])
def test_empty_and_tiny_communities_get_explanatory_figures(make: object) -> None:
    report: Report = make()  # type: ignore[operator]
    rendered = charts.render_charts(report)
    assert {"activity.png", "cohort_heatmap.png", "retention_curves.png"} <= set(rendered)
    for name, png in rendered.items():
        assert _size(png) == (WIDTH, HEIGHT), name
        pixels = _pixels(png)
        assert pixels.shape[:2] == (HEIGHT, WIDTH)
        assert pixels[..., :3].min() < 0.5, f"{name} has no text at all"


def test_revenue_chart_needs_commerce() -> None:
    assert charts.revenue_chart(empty_report()) is None
    assert "revenue.png" not in charts.render_charts(empty_report())
    no_sales = charts.revenue_chart(tiny_report())  # a ledger with no sales in range: says so
    assert no_sales is not None and _size(no_sales) == (WIDTH, HEIGHT)


def test_revenue_chart_grows_with_more_currencies() -> None:
    report = sample_report()
    assert report.commerce is not None
    usd = tuple(replace(w, currency="USD") for w in report.commerce.revenue_weeks if w.currency == "EUR")
    three = replace(report, commerce=replace(report.commerce, revenue_weeks=report.commerce.revenue_weeks + usd))
    png = charts.revenue_chart(three)
    assert png is not None
    width, height = _size(png)
    assert width == WIDTH and height > HEIGHT


def test_activity_chart_of_a_single_day_and_of_partly_hidden_days() -> None:
    report = tiny_report()
    one_day = replace(report, daily=(DayActivity(report.as_of, 6, 7, 9),))
    assert _size(charts.activity_chart(one_day)) == (WIDTH, HEIGHT)
    mixed = replace(report, daily=tuple(replace(d, dau=d.dau + 4, wau=9, mau=12) for d in report.daily))
    assert _size(charts.activity_chart(mixed)) == (WIDTH, HEIGHT)


def test_user_text_in_titles_is_not_mathtext() -> None:
    # an unbalanced "$" would make mathtext raise if titles were parsed
    report = replace(sample_report(), community="costs $5 and $ \\frac{")
    assert charts.activity_chart(report).startswith(PNG_SIGNATURE)
    assert charts.placeholder("$x", "$ no $", "$$").startswith(PNG_SIGNATURE)


def test_cohort_charts_with_one_visible_and_one_hidden_cohort() -> None:
    report = replace(
        tiny_report(),
        cohorts=(
            Cohort("2024-W10", date(2024, 3, 4), 8, (1.0, 0.75), 0.5, 0.75),
            Cohort("2024-W11", date(2024, 3, 11), 3, (1.0,), None, None),
        ),
    )
    assert _size(charts.cohort_heatmap(report)) == (WIDTH, HEIGHT)
    assert _size(charts.retention_curves(report)) == (WIDTH, HEIGHT)


def test_long_history_is_cut_to_what_fits() -> None:
    start = date(2023, 1, 2)
    cohorts = tuple(
        Cohort(f"c{i}", start + timedelta(weeks=i), 20 if i % 5 else 3, tuple(0.5 for _ in range(40 - i)), None, None)
        for i in range(40)
    )
    report = replace(sample_report(), cohorts=cohorts)
    assert _size(charts.cohort_heatmap(report)) == (WIDTH, HEIGHT)
    assert _size(charts.retention_curves(report)) == (WIDTH, HEIGHT)


def test_charts_render_from_several_threads() -> None:
    report = sample_report()
    expected = charts.activity_chart(report)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: charts.activity_chart(report), range(4)))
    assert all(png == expected for png in results)


# --- the data steps: which days, cohorts and weeks are shown, and what is masked for members --------------------

MON = date(2024, 1, 1)


def _cohort(i: int, size: int, weeks: int) -> Cohort:
    """Join cohort ``i`` (weekly from MON): everyone active in the join week, half of them in each later week."""
    retention = tuple(1.0 if k == 0 else 0.5 for k in range(weeks))
    return Cohort(f"c{i:02d}", MON + timedelta(weeks=i), size, retention, None, None)


def test_activity_data_ends_on_the_last_measured_day_and_hides_counts_of_1_to_4_from_members() -> None:
    days = (
        DayActivity(date(2024, 3, 11), 0, 5, 9),
        DayActivity(date(2024, 3, 12), 4, 6, 9),
        DayActivity(date(2024, 3, 13), 7, 8, 12),  # today, not over yet: never plotted
    )
    report = replace(tiny_report(), as_of=date(2024, 3, 13), last_complete_day=date(2024, 3, 12), daily=days)
    owners = charts.activity_data(report, OWNERS)
    assert isinstance(owners, charts.ActivityData)
    assert owners.days == (date(2024, 3, 11), date(2024, 3, 12))
    assert (owners.dau, owners.wau, owners.mau) == ((0, 4), (5, 6), (9, 9))
    assert not owners.hidden and owners.top == 9
    members = charts.activity_data(report, MEMBERS)
    assert isinstance(members, charts.ActivityData)
    assert members.dau == (0, None)  # zero is shown, 4 is not
    assert (members.wau, members.mau) == ((5, 6), (9, 9))
    assert members.hidden  # the grey "fewer than 5" band


def test_activity_data_explains_an_empty_or_entirely_hidden_chart() -> None:
    report = tiny_report()  # three members at most: every count is 1 to 3
    assert charts.activity_data(replace(report, daily=())) == charts.Placeholder(
        f"{report.community}: active members", "No activity yet"
    )
    quiet = replace(report, daily=tuple(DayActivity(d.day, 0, 0, 0) for d in report.daily))
    assert isinstance(charts.activity_data(quiet), charts.Placeholder)
    hidden = charts.activity_data(report, MEMBERS)
    assert isinstance(hidden, charts.Placeholder) and hidden.message == "Fewer than 5 active members so far"
    assert isinstance(charts.activity_data(report, OWNERS), charts.ActivityData)  # owners see the small counts


def test_heatmap_data_shows_the_last_12_cohorts_by_weeks_0_to_11_and_masks_small_ones_for_members() -> None:
    # 14 weekly cohorts; cohort i observed for 15 - i weeks; c12 has 3 members.
    cohorts = tuple(_cohort(i, 3 if i == 12 else 10, 15 - i) for i in range(14))
    report = replace(sample_report(), cohorts=tuple(reversed(cohorts)))  # the data step orders them
    owners = charts.cohort_heatmap_data(report, OWNERS)
    assert isinstance(owners, charts.HeatmapData)
    assert [row.cohort for row in owners.rows] == [f"c{i:02d}" for i in range(2, 14)]  # oldest first
    assert owners.columns == 12 and owners.note == "Showing the last 12 of 14 join weeks and weeks 0 to 11"
    assert [len(row.texts) for row in owners.rows] == [12, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2]  # unobserved: no cell
    small = owners.rows[10]
    assert (small.label, small.hidden, small.texts) == ("c12 (n=3)", False, ("100%", "50%", "50%"))

    members = charts.cohort_heatmap_data(report, MEMBERS)
    assert isinstance(members, charts.HeatmapData)
    hidden = [row for row in members.rows if row.hidden]
    assert [row.cohort for row in hidden] == ["c12"]
    assert hidden[0].label == f"c12 (n{SMALL})"
    assert hidden[0].percents == (None, None, None) and hidden[0].texts == (SMALL, SMALL, SMALL)
    assert members.rows[0] == owners.rows[0]  # cohorts of 5 or more read the same for everyone


def test_heatmap_data_of_a_young_community_and_of_only_small_cohorts() -> None:
    young = replace(sample_report(), cohorts=(_cohort(0, 8, 2),))
    data = charts.cohort_heatmap_data(young)
    assert isinstance(data, charts.HeatmapData)
    assert data.columns == 4 and data.note == ""  # at least 4 columns; weeks 2 and 3 are blank
    assert data.rows[0].texts == ("100%", "50%")
    only_small = replace(sample_report(), cohorts=(_cohort(0, 4, 3), _cohort(1, 2, 2)))
    assert isinstance(charts.cohort_heatmap_data(only_small, MEMBERS), charts.Placeholder)
    assert isinstance(charts.cohort_heatmap_data(only_small, OWNERS), charts.HeatmapData)
    assert isinstance(charts.cohort_heatmap_data(replace(young, cohorts=())), charts.Placeholder)


def test_curves_data_shows_the_6_most_recent_cohorts_it_may_and_names_the_small_ones_in_between() -> None:
    # c00, c03 and c07 have 3 members; c09 has no observed week yet.
    cohorts = tuple(_cohort(i, 3 if i in (0, 3, 7) else 10, 0 if i == 9 else 10 - i) for i in range(10))
    report = replace(sample_report(), cohorts=cohorts)
    members = charts.retention_curves_data(report, MEMBERS)
    assert isinstance(members, charts.CurvesData)
    assert [c.cohort for c in members.curves] == ["c01", "c02", "c04", "c05", "c06", "c08"]
    assert members.skipped == ("c03", "c07")  # c00 is older than every curve shown: not named
    assert members.curves[-1] == charts.Curve("c08", "c08 (n=10)", (100.0, 50.0))
    owners = charts.retention_curves_data(report, OWNERS)
    assert isinstance(owners, charts.CurvesData)
    assert [c.cohort for c in owners.curves] == ["c03", "c04", "c05", "c06", "c07", "c08"]
    assert owners.skipped == ()
    only_small = replace(report, cohorts=(_cohort(0, 3, 2),))
    assert isinstance(charts.retention_curves_data(only_small, MEMBERS), charts.Placeholder)


def test_revenue_data_has_one_panel_per_currency_with_its_weeks_in_order_and_total() -> None:
    report = tiny_report()  # weeks of 4 and 11 March 2024; a ledger without sales
    assert charts.revenue_data(replace(report, commerce=None)) is None
    assert isinstance(charts.revenue_data(report), charts.Placeholder)
    assert report.commerce is not None
    weeks = (
        RevenueWeek("2024-W11", date(2024, 3, 11), "XTR", 500.0, 0.0, 500.0),
        RevenueWeek("2024-W12", date(2024, 3, 18), "EUR", 49.0, 98.0, -49.0),
        RevenueWeek("2024-W10", date(2024, 3, 4), "EUR", 98.0, 0.0, 98.0),
    )
    data = charts.revenue_data(replace(report, commerce=replace(report.commerce, revenue_weeks=weeks)))
    assert isinstance(data, charts.RevenueData)
    assert data.panels == (
        charts.RevenuePanel("EUR", ((date(2024, 3, 4), 98.0), (date(2024, 3, 18), -49.0)), 49.0),
        charts.RevenuePanel("XTR", ((date(2024, 3, 11), 500.0),), 500.0),
    )
    assert (data.first, data.last) == (date(2024, 3, 4), date(2024, 3, 25))  # through the Sunday of the last week
    assert data.any_negative  # refunds exceeded sales in week 12
