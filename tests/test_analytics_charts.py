"""PNG charts of a Report: valid, sized for a phone, deterministic, safe on empty and tiny communities."""

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
from analytics.results import Cohort, DayActivity, Report
from tests.report_samples import empty_report, sample_report, tiny_report

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


@pytest.fixture(scope="module")
def sample_charts() -> dict[str, bytes]:
    return charts.render_charts(sample_report())


def test_sample_report_has_all_four_charts(sample_charts: dict[str, bytes]) -> None:
    assert list(sample_charts) == ["activity.png", "cohort_heatmap.png", "retention_curves.png", "revenue.png"]
    assert list(sample_charts) == list(charts.CHART_TITLES)


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
    again = charts.render_charts(sample_report())
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
