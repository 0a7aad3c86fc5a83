"""The dashboard's chart data: what each figure plots, before Plotly draws it."""

from __future__ import annotations

from datetime import date, timedelta

from analytics.results import GrowthDay
from bot.web.pages.charts import growth_figure


def _growth(joins: list[int], leaves: list[int], members: list[int]) -> list[GrowthDay]:
    start = date(2024, 3, 4)
    rows = enumerate(zip(joins, leaves, members, strict=True))
    return [GrowthDay(start + timedelta(days=i), j, lv, m) for i, (j, lv, m) in rows]


def test_member_growth_puts_both_zeros_on_one_line_and_never_ticks_a_negative_member_count() -> None:
    figure = growth_figure(_growth([4, 0, 2], [0, 2, 1], [120, 118, 119]))
    assert figure is not None
    layout = figure["layout"]
    left, right = layout["yaxis"]["range"], layout["yaxis2"]["range"]
    # Zero sits at the same height on both axes: the same share of each axis lies below it.
    assert left[0] < 0 < left[1]
    assert abs(-left[0] / (left[1] - left[0]) - -right[0] / (right[1] - right[0])) < 1e-9
    ticks = layout["yaxis2"]["tickvals"]
    assert ticks[0] == 0 and all(t >= 0 for t in ticks) and ticks[-1] <= right[1]
    assert ticks == [0, 50, 100]
    # Leaves are drawn below zero, joins above it.
    joins, leaves = figure["data"][0], figure["data"][1]
    assert joins["y"] == [4, 0, 2] and leaves["y"] == [0, -2, -1]


def test_member_growth_without_leaves_starts_both_axes_at_zero() -> None:
    figure = growth_figure(_growth([1, 1], [0, 0], [1, 2]))
    assert figure is not None
    assert figure["layout"]["yaxis"]["range"][0] == 0
    assert figure["layout"]["yaxis2"]["range"][0] == 0
    assert figure["layout"]["yaxis2"]["tickvals"] == [0, 1, 2]


def test_no_growth_days_no_chart() -> None:
    assert growth_figure([]) is None
