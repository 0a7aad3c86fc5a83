"""The daily history a report loads: enough for its first days' WAU/MAU, and last activity before it (issue 12)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine

from analytics.render import data_notices, week_comparison
from analytics.report import history_start
from bot.reporting import ReportRequest, build_community_report, inactive_members_as_of
from storage.ingest import IngestStore
from tests.conftest import COMMUNITY, Events

pytestmark = pytest.mark.storage

NOW = datetime(2020, 6, 1, tzinfo=UTC)


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def test_history_starts_27_days_before_the_range_or_120_days_before_as_of() -> None:
    # 20 weeks up to Mon 2018-12-31 start on Mon 2018-08-20; its MAU needs 2018-07-24 on.
    assert history_start(date(2018, 12, 31), 20) == date(2018, 7, 24)
    # A short range: the 120-day look-back is earlier.
    assert history_start(date(2018, 12, 31), 2) == date(2018, 9, 2)


def test_wau_and_mau_of_the_first_days_count_activity_before_the_range(store: IngestStore) -> None:
    ev = Events()
    # Ten members active only on 1 Aug, five only on 15 Aug: 19 and 5 days before the range's first day.
    store.write_batch(
        [ev.message(f"a{i}", at=noon(date(2018, 8, 1))) for i in range(10)]
        + [ev.message(f"b{i}", at=noon(date(2018, 8, 15))) for i in range(5)]
    )
    report, _ = build_community_report(
        store.engine, ReportRequest(COMMUNITY, as_of=date(2018, 12, 31), weeks=20), now=NOW
    )
    first = report.daily[0]
    assert first.day == date(2018, 8, 20)
    assert (first.dau, first.wau, first.mau) == (0, 5, 15)
    by_day = {d.day: d for d in report.daily}
    assert (by_day[date(2018, 8, 21)].wau, by_day[date(2018, 8, 22)].wau) == (5, 0)  # 15 .. 21 Aug, then not
    assert (by_day[date(2018, 8, 28)].mau, by_day[date(2018, 8, 29)].mau) == (15, 5)  # 1 .. 28 Aug, then not
    assert (by_day[date(2018, 9, 11)].mau, by_day[date(2018, 9, 12)].mau) == (5, 0)


def test_a_member_silent_before_the_history_and_active_again_later_is_not_never_active(store: IngestStore) -> None:
    ev = Events()
    store.write_batch(
        [
            ev.message("back", at=noon(date(2019, 2, 27))),
            ev.message("back", at=noon(date(2019, 12, 20))),  # after the report day
            ev.message("never-back", at=noon(date(2019, 2, 27))),
            ev.message("recent", at=noon(date(2019, 11, 1))),
        ]
    )
    as_of = date(2019, 12, 8)
    report, _ = build_community_report(store.engine, ReportRequest(COMMUNITY, as_of=as_of), now=NOW)
    silent = {m.name: m.days_since_active for m in report.inactive}
    expected = (as_of - date(2019, 2, 27)).days
    assert silent == {"Back": expected, "Never-Back": expected, "Recent": (as_of - date(2019, 11, 1)).days}
    listed = inactive_members_as_of(store.engine, COMMUNITY, as_of=as_of, inactive_after_days=14)
    assert [(m.name, m.days_since_active) for m in listed] == [(m.name, m.days_since_active) for m in report.inactive]


def test_last_activity_comes_from_days_up_to_the_report_day_only(engine: Engine) -> None:
    store = IngestStore(engine)
    store.register_community(COMMUNITY, "UTC")
    ev = Events()
    first = date(2019, 1, 7)
    store.write_batch([ev.message("m", at=noon(first + timedelta(days=k * 50))) for k in range(6)])
    for k in range(1, 6):
        as_of = first + timedelta(days=k * 50 - 1)  # the day before each later message
        report, _ = build_community_report(engine, ReportRequest(COMMUNITY, as_of=as_of, weeks=1), now=NOW)
        assert [m.days_since_active for m in report.inactive] == [49], as_of


def test_a_report_after_the_data_ends_says_so_and_today_is_not_over(store: IngestStore) -> None:
    ev = Events()
    store.write_batch([ev.message(f"m{i}", at=noon(date(2019, 12, 2) + timedelta(days=i % 9))) for i in range(30)])
    # Berlin: 10:00 UTC on 11 Dec is the morning of 11 Dec; the data ends on 10 Dec.
    now = datetime(2019, 12, 11, 10, tzinfo=UTC)
    report, _ = build_community_report(store.engine, ReportRequest(COMMUNITY, as_of=date(2019, 12, 11)), now=now)
    assert report.data_ends == date(2019, 12, 10)
    assert report.last_complete_day == date(2019, 12, 10)
    assert data_notices(report)[0] == "Data ends 2019-12-10; figures after that are not measured."
    compared = week_comparison(report)
    assert compared is not None and compared[2] == "2019-W50 so far (2 days) vs the same 2 days of 2019-W49"
    earlier, so_far = compared[0], compared[1]
    # Mon-Tue of each week: 2, 3 and 9, 10 December (the message days cycle through 2 .. 10 December).
    assert (earlier.messages, so_far.messages) == (8, 6)
    report, _ = build_community_report(store.engine, ReportRequest(COMMUNITY, as_of=date(2019, 12, 10)), now=now)
    assert (report.data_ends, report.last_complete_day, data_notices(report)) == (None, date(2019, 12, 10), [])
