"""Text, JSON and HTML rendering of a Report, and the small-group privacy rule."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
import struct
import subprocess
import sys
import zlib
from dataclasses import replace
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from analytics import privacy
from analytics.render import (
    FORMATS,
    SCHEMA_VERSION,
    clean_name,
    render_html,
    render_json,
    render_text,
    report_to_json,
    weeks_in_range,
    write_report,
)
from analytics.results import ChannelActivity, GrowthDay, HourOfWeek, MemberStatus, Report, WeekStats
from analytics.weeks import week_label as iso_week
from tests.report_samples import ANSI_NAME, RTL_NAME, SCRIPT_NAME, empty_report, sample_report, tiny_report

SAMPLES = {"sample": sample_report, "empty": empty_report, "tiny": tiny_report}


def _tiny_png() -> bytes:
    """A valid 1 x 1 PNG, so HTML tests need not draw real charts."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


FAKE_CHARTS = {
    "activity.png": _tiny_png(),
    "cohort_heatmap.png": _tiny_png(),
    "retention_curves.png": _tiny_png(),
    "revenue.png": _tiny_png(),
}


# ---------------------------------------------------------------------------------------------------------------
# privacy


def test_owners_see_exact_counts_members_never_see_a_group_under_five() -> None:
    assert privacy.MIN_GROUP == 5
    assert [privacy.OWNERS.count(n) for n in (0, 3, 1234)] == ["0", "3", "1,234"]
    assert [privacy.MEMBERS.count(n) for n in (0, 1, 4, 5, 1234)] == ["0", "<5", "<5", "5", "1,234"]
    assert privacy.OWNERS.share(0.5, 3) == 0.5
    assert privacy.MEMBERS.share(0.5, 3) is None  # over a group of 3
    assert privacy.MEMBERS.share(0.2, 10, 2) is None  # 20 % of 10 is two people
    assert privacy.MEMBERS.share(0.9, 10, 9) is None  # and 90 % leaves one out
    assert privacy.MEMBERS.share(0.5, 10, 5) == 0.5
    assert privacy.MEMBERS.share(0.0, 10, 0) == 0.0  # nobody: reveals no one
    assert privacy.MEMBERS.share(None, 50) is None
    assert privacy.MEMBERS.hides_change(12, 3) and not privacy.MEMBERS.hides_change(12, 0)
    assert not privacy.OWNERS.hides_change(2, 1)
    assert privacy.members_counted(0.3333, 3) == 1


# ---------------------------------------------------------------------------------------------------------------
# text


def _section(text: str, title: str) -> str:
    """The lines of one text section, from its upper-case heading to the next blank line before a heading."""
    start = text.index("\n" + title.upper())
    rest = text[start + 1 :]
    end = re.search(r"\n\n[A-Z][A-Z ]+", rest)
    return rest[: end.start()] if end else rest


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_text_never_says_none_and_fits_a_terminal(name: str) -> None:
    text = render_text(SAMPLES[name]())
    assert "None" not in text
    assert "nan" not in text.lower().replace("nance", "")
    assert max(len(line) for line in text.splitlines()) <= 100
    assert text.endswith("\n")


def test_text_key_figures_and_week_over_week_deltas() -> None:
    report = sample_report()
    text = render_text(report)
    key = _section(text, "Key figures")
    s = report.summary
    assert re.search(r"Members\s+79\b", key)
    assert re.search(rf"DAU\s+{s.dau}\b", key)
    assert re.search(rf"WAU\s+{s.wau}\b", key)
    assert re.search(rf"MAU\s+{s.mau}\b", key)
    assert f"{s.stickiness * 100:.1f}%" in key  # type: ignore[operator]
    assert "689 / 2,377" in key
    assert "1,103" in key

    # week over week comes from the last two weeks of `weekly`: W47 -> W48
    wow = _section(text, "Week over week")
    assert "2019-W47 → 2019-W48" in wow
    prev, cur = report.weekly[-2], report.weekly[-1]
    assert (prev.active, cur.active) == (38, 41)
    assert re.search(r"Active members\s+38\s+41\s+\+3, \+7\.9%", wow)
    assert re.search(r"New members\s+6\s+5\s+−1, −16\.7%", wow)
    assert re.search(r"Messages\s+611\s+689\s+\+78, \+12\.8%", wow)
    # 2 left, then 1: owners see small groups and their difference exactly
    assert re.search(r"Left\s+2\s+1\s+−1, −50\.0%", wow)


def test_text_dau_wau_mau_change_against_seven_days_earlier() -> None:
    report = sample_report()
    by_day = {d.day: d for d in report.daily}
    now, before = by_day[report.as_of], by_day[date(2019, 11, 24)]
    change = now.wau - before.wau
    key = _section(render_text(report), "Key figures")
    sign = "+" if change > 0 else "−"
    assert f"{sign}{abs(change)}, {sign}{abs(change) / before.wau * 100:.1f}%" in key


def test_text_shows_small_groups_exactly_to_owners() -> None:
    report = sample_report()
    text = render_text(report)
    assert "<5" not in text
    cohorts = _section(text, "Cohort retention")
    small = next(c for c in report.cohorts if c.cohort == "2019-W46")
    row = next(line for line in cohorts.splitlines() if line.strip().startswith("2019-W46"))
    shares = [f"{r * 100:.0f}%" for r in small.retention]
    assert row.split()[1:] == ["3", f"{small.activation_rate * 100:.1f}%", *shares]  # type: ignore[operator]
    assert re.search(r"at risk\s+3\b", _section(text, "Segments"))
    assert "At risk:  3" in text
    assert "Inactive: 9" in text
    weekly = _section(text, "Weekly activity")
    w39 = next(line for line in weekly.splitlines() if line.strip().startswith("2019-W39"))
    assert w39.split()[2:] == ["12", "14", "0", "58", "21", "2", "3"]
    w44 = next(line for line in weekly.splitlines() if line.strip().startswith("2019-W44"))
    assert w44.split()[2:] == ["0"] * 7
    assert re.search(r"Testing with pytest\s+EUR\s+3\s+3\b", text)  # a course with 3 buyers


def test_text_commerce_per_course() -> None:
    text = _section(render_text(sample_report()), "Commerce")
    assert re.search(r"Async Python in practice\s+EUR\s+20\s+19\s+2\s+1,032\.00 EUR\s+10\.0%\s+−1\.71", text)
    assert re.search(r"Async Python in practice\s+XTR\s+9\s+9\s+0\s+4,500 Stars\s+0\.0%\s+–", text)
    assert "at 49.00 EUR × 14, 79.00 EUR × 6" in text
    assert "Net revenue to date: 1,119.00 EUR · 4,500 Stars" in text
    assert "−30.00 EUR" in text  # the week refunds exceeded sales


def test_text_defangs_hostile_names() -> None:
    text = render_text(sample_report())
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "?[31mred?[0m alert" in text
    assert "AAAAAAAAAAAAAAAAAAAAAAA…" in text  # 60 characters cut to the name column
    assert clean_name(RTL_NAME) == "mallory?gnp.exe"
    assert clean_name(ANSI_NAME).startswith("?[31m")
    assert clean_name("tab\there\nnew") == "tab here new"
    assert clean_name("👩\u200d💻") == "👩\u200d💻"


def test_text_of_an_empty_community() -> None:
    text = render_text(empty_report())
    assert re.search(r"Members\s+0\b", text)
    assert re.search(r"Stickiness\s+–", text)
    assert "Needs two weeks of data." in text
    assert "No join cohorts yet." in text
    assert "No courses or sales." in text
    assert "Inactive: 0" in text


def test_every_output_says_first_when_data_ends_early_or_the_day_is_not_over() -> None:
    report = replace(sample_report(), data_ends=date(2019, 11, 28))  # as of Sunday 2019-12-01
    notice = "Data ends 2019-11-28; figures after that are not measured."
    text = render_text(report)
    assert text.splitlines()[2] == f"⚠ {notice}"
    # nothing compared
    assert "change vs 7 days earlier" in text and not re.search(r"DAU\s+\d+\s+([+−]|no change)", text)
    page = render_html(report, {})
    assert page.index(notice) < page.index("Key figures")
    data = _data(report)
    assert data["notices"] == [notice]
    assert (data["data_ends"], data["last_complete_day"]) == ("2019-11-28", "2019-11-28")

    today = replace(sample_report(), last_complete_day=date(2019, 11, 30))
    assert "2019-12-01 is not over yet: its figures are so far, and charts end on 2019-11-30." in render_text(today)
    assert _data(sample_report())["notices"] == [] and _data(sample_report())["data_ends"] is None


def test_text_marks_a_week_in_progress() -> None:
    report = tiny_report()  # as of a Wednesday, without the week's measured days: no half-week comparison
    assert "Needs two weeks of data." in render_text(report)  # and no whole week before W10 to compare instead
    same_days = WeekStats("2024-W10", date(2024, 3, 4), 3, 3, 0, 11, 2, 1, 1)
    text = render_text(replace(report, week_so_far=report.weekly[-1], previous_week_same_days=same_days))
    wow = _section(text, "Week over week")
    assert "2024-W11 so far (3 days) vs the same 3 days of 2024-W10" in wow
    assert re.search(r"Messages\s+11\s+14\s+\+3, \+27\.3%", wow)  # 14 so far vs 11 in Mon-Wed of W10
    assert re.search(r"Members\s+3\b", text)
    assert re.search(r"Stickiness\s+53\.3%", text)


# ---------------------------------------------------------------------------------------------------------------
# JSON

REQUIRED = {
    "schema_version",
    "community",
    "timezone",
    "as_of",
    "members",
    "weekly",
    "cohorts",
    "dau_wau_mau",
    "activity",
    "activation_rate",
    "inactive",
    "at_risk",
    "segments",
    "top_members",
    "commerce",
    "subscriptions",
    "data_ends",
    "last_complete_day",
    "notices",
    "previous_week_same_days",
    "week_so_far",
    "hour_of_week",
    "channels",
    "growth",
    "questions",
    "surveys",
}


def _data(report: Report) -> dict[str, Any]:
    """The report's JSON as a consumer reads it."""
    data: dict[str, Any] = json.loads(render_json(report))
    return data


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_share(value: object) -> bool:
    return value is None or (isinstance(value, float | int) and 0 <= value <= 1)


def _is_iso_date(value: object) -> bool:
    return isinstance(value, str) and date.fromisoformat(value).isoformat() == value


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_json_round_trips_with_every_required_key(name: str) -> None:
    report = SAMPLES[name]()
    text = render_json(report)
    data = json.loads(text)
    assert data == report_to_json(report)
    assert set(data) == REQUIRED
    assert data["schema_version"] == SCHEMA_VERSION == 2
    assert data["community"] == report.community
    assert _is_iso_date(data["as_of"])
    assert _is_count(data["members"])
    assert text == render_json(report)  # deterministic
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    for week in data["weekly"]:
        assert set(week) == {
            "week",
            "start",
            "active",
            "new",
            "left",
            "messages",
            "reactions",
            "communicators",
            "active_channels",
        }
        assert re.fullmatch(r"\d{4}-W\d{2}", week["week"])
        assert _is_iso_date(week["start"])
        assert all(_is_count(week[k]) for k in ("active", "new", "left", "communicators"))
        assert all(isinstance(week[k], int) for k in ("messages", "reactions", "active_channels"))

    dwm = data["dau_wau_mau"]
    assert set(dwm) == {"dau", "wau", "mau", "stickiness", "daily"}
    assert all(_is_count(dwm[k]) for k in ("dau", "wau", "mau"))
    assert _is_share(dwm["stickiness"])
    assert len(dwm["daily"]) == len(report.daily)
    for day in dwm["daily"]:
        assert set(day) == {"day", "dau", "wau", "mau"}
        assert _is_iso_date(day["day"])

    for cohort in data["cohorts"]:
        assert set(cohort) == {"cohort", "start", "size", "retention", "activation_rate", "second_week_retention"}
        assert _is_count(cohort["size"])
        assert all(_is_share(r) for r in cohort["retention"])

    for key in ("inactive", "at_risk"):
        assert set(data[key]) == {"count", "member_ids"}
        assert _is_count(data[key]["count"])
        assert all(isinstance(i, int) for i in data[key]["member_ids"])
    assert all(_is_count(v) for v in data["segments"].values())
    assert _is_share(data["activation_rate"])


def test_json_lists_every_week_in_range_zero_weeks_included() -> None:
    data = _data(sample_report())
    weeks = [w["week"] for w in data["weekly"]]
    assert weeks == [f"2019-W{n}" for n in range(37, 49)]
    w44 = data["weekly"][7]
    assert w44 == {
        "week": "2019-W44",
        "start": "2019-10-28",
        "active": 0,
        "new": 0,
        "left": 0,
        "messages": 0,
        "reactions": 0,
        "communicators": 0,
        "active_channels": 0,
    }


def test_json_fills_a_week_the_metric_code_left_out() -> None:
    report = sample_report()
    gappy = replace(report, weekly=tuple(w for w in report.weekly if w.week != "2019-W44"))
    assert [w["week"] for w in _data(gappy)["weekly"]] == [w["week"] for w in _data(report)["weekly"]]
    assert len(weeks_in_range(gappy)) == 12
    assert iso_week(date(2021, 1, 1)) == "2020-W53"


def test_json_gives_owners_exact_figures_for_small_groups() -> None:
    report = sample_report()
    text = render_json(report)
    assert "<5" not in text
    data = json.loads(text)
    small = next(c for c in data["cohorts"] if c["cohort"] == "2019-W46")
    cohort = next(c for c in report.cohorts if c.cohort == "2019-W46")
    assert small["size"] == 3
    assert small["retention"] == [round(r, 4) for r in cohort.retention]
    assert small["activation_rate"] == cohort.activation_rate
    assert data["segments"]["at_risk"] == 3
    assert data["at_risk"] == {"count": 3, "member_ids": [201, 202, 203]}
    assert data["inactive"] == {"count": 9, "member_ids": list(range(101, 110))}
    assert data["weekly"][2]["communicators"] == 2
    assert [w["left"] for w in data["weekly"]] == [w.left for w in report.weekly]

    commerce = data["commerce"]
    testing = next(c for c in commerce["courses"] if c["course"] == "testing-101")
    assert testing["buyers"] == 3 and testing["sales"] == 3 and testing["net"] == 87.0
    small_conv = next(c for c in commerce["cohort_conversion"] if c["cohort"] == "2019-W46")
    assert small_conv == {"cohort": "2019-W46", "size": 3, "buyers": 1, "conversion": 0.3333}


def test_json_of_a_tiny_community_is_exact() -> None:
    data = _data(tiny_report())
    assert data["members"] == 3
    assert data["dau_wau_mau"]["stickiness"] == 0.5333
    assert data["activity"]["messages_per_active_member_mean"] == 13.0
    assert data["activity"]["messages_28d"] == 39
    assert data["commerce"]["conversion"] == 0.0
    assert data["segments"] == {
        "newcomers": 3,
        "at_risk": 0,
        "dormant": 0,
        "lurkers": 0,
        "champions": 0,
        "regulars": 0,
    }
    assert [d["dau"] for d in data["dau_wau_mau"]["daily"]] == [2, 3, 1, 0, 2, 0, 0, 3, 2, 1]


def test_json_rounds_and_formats_values() -> None:
    report = sample_report()
    data = _data(report)
    assert data["as_of"] == "2019-12-01"
    assert data["dau_wau_mau"]["stickiness"] == round(report.summary.stickiness or 0, 4)
    assert data["activity"]["messages_per_active_member_mean"] == 40.98
    courses = data["commerce"]["courses"]
    assert courses[0]["price_points"] == [{"price": 49.0, "sales": 14}, {"price": 79.0, "sales": 6}]
    assert courses[0]["arc_elasticity"] == -1.71
    assert courses[1]["currency"] == "XTR" and courses[1]["net"] == 4500
    weeks = data["commerce"]["revenue_weeks"]
    assert [(w["start"], w["currency"]) for w in weeks] == sorted((w["start"], w["currency"]) for w in weeks)
    assert next(w for w in weeks if w["week"] == "2019-W46" and w["currency"] == "EUR")["net"] == -30.0


def test_json_turns_nan_into_null() -> None:
    report = sample_report()
    odd = replace(report, summary=replace(report.summary, stickiness=math.nan), activation_rate=math.inf)
    data = json.loads(render_json(odd))
    assert data["dau_wau_mau"]["stickiness"] is None
    assert data["activation_rate"] is None


def test_json_without_commerce_is_null() -> None:
    assert _data(empty_report())["commerce"] is None


# ---------------------------------------------------------------------------------------------------------------
# HTML


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


class _Table(HTMLParser):
    """The body rows of the table inside the element with one id, as cell texts and cell attributes."""

    def __init__(self, block_id: str) -> None:
        super().__init__()
        self.block_id = block_id
        self.depth = 0  # open div depth inside the block; 0 = outside
        self.in_body = False
        self.rows: list[list[str]] = []
        self.attrs: list[list[dict[str, str | None]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "div" and (self.depth or dict(attrs).get("id") == self.block_id):
            self.depth += 1
        elif self.depth and tag == "tbody":
            self.in_body = True
        elif self.depth and self.in_body and tag == "tr":
            self.rows.append([])
            self.attrs.append([])
        elif self.depth and self.in_body and tag in ("td", "th"):
            self.cell = []
            self.attrs[-1].append(dict(attrs))
        elif self.cell is not None and tag == "span" and dict(attrs).get("class") == "child":
            self.cell.append("↳ ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self.depth:
            self.depth -= 1
        elif tag == "tbody":
            self.in_body = False
        elif tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def _table(page: str, block_id: str) -> list[list[str]]:
    parser = _Table(block_id)
    parser.feed(page)
    return parser.rows


def _section_order(page: str) -> list[str]:
    return [attrs["id"] or "" for tag, attrs in _tags(page) if tag == "section"]


def test_html_is_one_self_contained_page() -> None:
    page = render_html(sample_report(), FAKE_CHARTS)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("data:image/png;base64,") == 4
    tags = _tags(page)
    for tag, attrs in tags:
        for attr in ("src", "href"):
            value = attrs.get(attr)
            assert value is None or value.startswith("data:"), (tag, attr, value)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert [t for t, _ in tags].count("img") == 4
    assert [t for t, _ in tags].count("style") == 1
    assert "script" not in {t for t, _ in tags}
    images = [attrs["src"] for tag, attrs in tags if tag == "img"]
    assert all(base64.b64decode((src or "").split(",", 1)[1]) == _tiny_png() for src in images)
    # each chart keeps a legible width on a phone, inside its own scrolling box
    assert all(attrs.get("class") == "chart-scroll" for tag, attrs in tags if tag == "div" and "chart" in str(attrs))
    assert ".image-chart img { display: block; width: 100%; min-width: 680px;" in page


def test_html_escapes_untrusted_names() -> None:
    page = render_html(sample_report(), FAKE_CHARTS)
    assert SCRIPT_NAME not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "script" not in {t for t, _ in _tags(page)}
    assert "\x1b" not in page and "\u202e" not in page
    evil = replace(sample_report(), community='"><img src=x onerror=alert(1)>')
    page = render_html(evil, {})
    assert "<img src=x" not in page
    assert not [t for t, _ in _tags(page) if t == "img"]


def test_html_has_the_tables() -> None:
    page = render_html(sample_report(), FAKE_CHARTS)
    for heading in ("Weekly activity", "Retention", "Top members", "Inactive: 9", "At risk: 3", "By course"):
        assert heading in page
    assert "2019-W44" in page and "2019-W46" in page
    assert "&lt;5" not in page and "hidden" not in page
    assert "1,032.00 EUR" in page and "4,500 Stars" in page
    assert "None" not in page
    report = sample_report()
    assert [row[0] for row in _table(page, "at_risk")] == [m.name for m in report.at_risk]
    assert len(_table(page, "inactive")) == len(report.inactive) == 9  # a short list is shown whole


def test_html_shows_revenue_right_after_the_key_figures() -> None:
    order = _section_order(render_html(sample_report(), FAKE_CHARTS))
    assert order[:3] == ["key-figures", "revenue", "activity"]
    assert order.index("revenue") < order.index("activity") < order.index("cohorts") < order.index("members")
    for section in ("hour-of-week", "channels", "growth"):
        assert order.index("activity") < order.index(section) < order.index("cohorts")
    page = render_html(sample_report(), FAKE_CHARTS)
    revenue = page[page.index('id="revenue"') : page.index('id="activity"')]
    assert "1,032.00 EUR" in revenue and revenue.count("data:image/png;base64,") == 1  # the revenue chart


def _with_members(n: int) -> Report:
    inactive = tuple(MemberStatus(1000 + i, f"member {i:02d}", "telegram", 20 + i) for i in range(n))
    return replace(sample_report(), inactive=inactive)


def test_html_caps_a_long_list_at_fifty_and_points_to_the_csv(tmp_path: Path) -> None:
    report = _with_members(60)
    paths = write_report(report, tmp_path, "html", charts=False)
    assert [p.name for p in paths] == ["report.html", "inactive.csv", "at_risk.csv", "channels.csv"]
    page = paths[0].read_text(encoding="utf-8")
    rows = _table(page, "inactive")
    assert [row[0] for row in rows] == [f"member {i:02d}" for i in range(50)]
    assert rows[0][1:3] == ["telegram", "20 days ago"]
    assert "Inactive: 60" in page and "50 of 60 shown" in page
    hrefs = [attrs["href"] for tag, attrs in _tags(page) if tag == "a"]
    assert hrefs == ["inactive.csv", "at_risk.csv"]  # no channels in the sample: no channel CSV link
    with (tmp_path / "inactive.csv").open(encoding="utf-8", newline="") as handle:
        listed = list(csv.DictReader(handle))
    assert len(listed) == 60
    assert [r["name"] for r in listed] == [f"member {i:02d}" for i in range(60)]
    assert listed[-1] == {
        "member_id": "1059",
        "name": "member 59",
        "platform": "telegram",
        "days_since_active": "79",
        "segment": "",
        "score": "",
        "messages_28d": "0",
    }
    with (tmp_path / "at_risk.csv").open(encoding="utf-8", newline="") as handle:
        assert [r["name"] for r in csv.DictReader(handle)] == [m.name for m in report.at_risk]


def test_html_printed_without_files_says_how_to_get_the_whole_list() -> None:
    page = render_html(_with_members(51), {})
    assert "50 of 51 shown" in page and "--out DIR" in page
    assert not [t for t, _ in _tags(page) if t == "a"]  # no link to a file that was not written
    assert len(_table(page, "inactive")) == 50


def test_csv_lists_are_safe_in_a_spreadsheet(tmp_path: Path) -> None:
    hostile = (MemberStatus(1, '=HYPERLINK("http://x")', "discord", 40), MemberStatus(2, SCRIPT_NAME, "discord", 41))
    write_report(replace(sample_report(), inactive=hostile), tmp_path, "html", charts=False)
    with (tmp_path / "inactive.csv").open(encoding="utf-8", newline="") as handle:
        names = [r["name"] for r in csv.DictReader(handle)]
    assert names == ['\'=HYPERLINK("http://x")', SCRIPT_NAME]  # a formula never runs; the CSV is data, not HTML


def _hours() -> tuple[HourOfWeek, ...]:
    busy = {(2, 14): (229, 5), (0, 9): (10, 1), (6, 23): (57, 0)}
    return tuple(HourOfWeek(d, h, *busy.get((d, h), (0, 0))) for d in range(7) for h in range(24))


def test_html_shows_activity_by_hour_of_week_as_a_shaded_table() -> None:
    page = render_html(replace(sample_report(), hour_of_week=_hours()), {})
    parser = _Table("hours")
    parser.feed(page)
    assert [row[0] for row in parser.rows] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert all(len(row) == 25 for row in parser.rows)  # the weekday and 24 hours
    assert parser.rows[2][1 + 14] == "229" and parser.rows[0][1 + 9] == "10" and parser.rows[6][1 + 23] == "57"
    assert sum(1 for row in parser.rows for cell in row[1:] if cell) == 3  # quiet hours are blank
    wed = parser.attrs[2][1 + 14]
    assert wed["title"] == "Wed 14:00: 229 messages, 5 reactions"
    assert "rgba(31, 95, 191, 1.00)" in (wed["style"] or "")
    assert f"rgba(31, 95, 191, {57 / 229:.2f})" in (parser.attrs[6][1 + 23]["style"] or "")
    assert "rgba(31, 95, 191, 0.00)" in (parser.attrs[1][1]["style"] or "")
    assert "Messages by weekday and hour (Europe/Berlin)" in page
    assert "Busiest hour: Wed 14:00, 229 of 296 messages" in page
    assert "No data in this range." not in page.split('id="hour-of-week"')[1].split("</section>")[0]


def _channels() -> tuple[ChannelActivity, ...]:
    return (
        ChannelActivity(1, "general", None, 120, 30, 100, (50, 70)),
        ChannelActivity(2, "help", None, 80, 20, 0, (0, 80)),
        ChannelActivity(3, "<img src=x onerror=alert(1)>", "help", 15, 4, 3, (0, 15)),
        ChannelActivity(4, "old thread", "archived", 5, 2, 5, (5, 0)),
        ChannelActivity(5, "off-topic", None, 4, 3, 8, (4, 0)),
    )


def test_html_lists_channels_with_threads_under_their_parent(tmp_path: Path) -> None:
    report = replace(sample_report(), channels=_channels())
    paths = write_report(report, tmp_path, "html", charts=False)
    page = paths[0].read_text(encoding="utf-8")
    assert _table(page, "channel-table") == [
        ["general", "120", "30", "100", "+20, +20%", "▆█"],
        ["help", "80", "20", "0", "+80", "▁█"],
        ["↳ <img src=x onerror=alert(1)>", "15", "4", "3", "+12, +400%", "▁█"],
        ["off-topic", "4", "3", "8", "−4, −50%", "█▁"],
        ["↳ old thread", "5", "2", "5", "no change", "█▁"],  # its parent had no messages in the range
    ]
    assert "<img src=x" not in page
    assert all((attrs["src"] or "").startswith("data:image/png;base64,") for t, attrs in _tags(page) if t == "img")
    with (tmp_path / "channels.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["channel"], r["parent"], r["messages"], r["weekly_messages"]) for r in rows] == [
        ("general", "", "120", "50 70"),
        ("help", "", "80", "0 80"),
        ("<img src=x onerror=alert(1)>", "help", "15", "0 15"),
        ("off-topic", "", "4", "4 0"),
        ("old thread", "archived", "5", "5 0"),
    ]
    assert "channels.csv" in [attrs["href"] for tag, attrs in _tags(page) if tag == "a"]


def test_html_shows_member_growth_by_week() -> None:
    start = date(2019, 11, 18)  # a Monday; two weeks up to the report's Sunday
    members, days = 60, []
    for i in range(14):
        joins, leaves = i % 3, 1 if i % 5 == 0 else 0
        members += joins - leaves
        days.append(GrowthDay(start + timedelta(days=i), joins, leaves, members))
    page = render_html(replace(sample_report(), growth=tuple(days)), {})
    first, second = days[:7], days[7:]
    expected = [
        [
            iso_week(week[0].day),
            str(sum(d.joins for d in week)),
            str(sum(d.leaves for d in week)),
            str(sum(d.joins - d.leaves for d in week)),
            str(week[-1].members),
        ]
        for week in (first, second)
    ]
    assert _table(page, "growth-table") == expected
    assert expected[1][0] == "2019-W48"


def test_html_new_sections_say_when_there_is_no_data() -> None:
    page = render_html(empty_report(), {})
    for section in ("hour-of-week", "channels", "growth"):
        body = page.split(f'id="{section}"')[1].split("</section>")[0]
        assert "No data in this range." in body, section


def test_html_of_an_empty_community_without_charts() -> None:
    page = render_html(empty_report(), {})
    assert "data:image/png" not in page
    assert "No join cohorts yet." in page
    assert "None" not in page


def test_html_shows_unknown_charts_at_the_end() -> None:
    page = render_html(empty_report(), {"extra.png": _tiny_png()})
    assert "More charts" in page and page.count("data:image/png;base64,") == 1
    assert _section_order(page)[-1] == "more-charts"


# ---------------------------------------------------------------------------------------------------------------
# files


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_report_writes_the_report_and_the_charts(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out" / fmt
    paths = write_report(empty_report(), out, fmt)  # type: ignore[arg-type]
    name = {"text": "report.txt", "json": "report.json", "html": "report.html"}[fmt]
    lists = ["inactive.csv", "at_risk.csv", "channels.csv"] if fmt == "html" else []
    assert [p.name for p in paths] == [name, "activity.png", "cohort_heatmap.png", "retention_curves.png", *lists]
    assert all(p.parent == out and p.stat().st_size > 0 for p in paths)
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in paths[1:4])
    body = paths[0].read_text(encoding="utf-8")
    if fmt == "json":
        assert json.loads(body)["community"] == "brand-new"
    if fmt == "html":
        assert body.count("data:image/png;base64,") == 3
        assert [p.read_text(encoding="utf-8").count("\n") for p in paths[4:]] == [1, 1, 1]  # headers only


def test_write_report_without_chart_files(tmp_path: Path) -> None:
    report = sample_report()
    assert write_report(report, tmp_path, "text", charts=False) == [tmp_path / "report.txt"]
    assert (tmp_path / "report.txt").read_text(encoding="utf-8") == render_text(report)
    paths = write_report(report, tmp_path, "html", charts=False)
    assert paths == [tmp_path / name for name in ("report.html", "inactive.csv", "at_risk.csv", "channels.csv")]
    assert paths[0].read_text(encoding="utf-8").count("data:image/png;base64,") == 4  # the page still embeds them


def test_write_report_rejects_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        write_report(sample_report(), tmp_path, "pdf")  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_analytics_rendering_imports_neither_bot_nor_storage_nor_pyplot() -> None:
    code = (
        "import sys, analytics.render, analytics.charts, analytics.privacy; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('bot', 'storage') or m == 'matplotlib.pyplot']; "
        "print(bad); raise SystemExit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_report_samples_are_consistent() -> None:
    report: Report = sample_report()
    assert len(report.weekly) == 12 and report.as_of.weekday() == 6
    assert report.daily[-1].wau == report.weekly[-1].active == report.summary.wau  # a Sunday: WAU is the ISO week
    assert sum(w.new for w in report.weekly) - sum(w.left for w in report.weekly) == report.members
    assert sum(report.segments.values()) == report.members
    assert {c.size for c in report.cohorts} >= {3}
