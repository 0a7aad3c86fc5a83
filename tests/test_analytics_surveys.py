"""NPS, its 95% interval, response rates, comments by band and poll counts, on hand-made answers worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from analytics.surveys import SurveyFrames, band, nps, survey_results


def frames(surveys: list[dict[str, object]], answers: list[dict[str, object]]) -> SurveyFrames:
    s = pd.DataFrame(
        surveys, columns=["survey_id", "kind", "origin", "question", "options", "course", "created_at", "audience"]
    )
    s["created_at"] = pd.to_datetime(s["created_at"], utc=True)
    a = pd.DataFrame(answers, columns=["survey_id", "member_id", "score", "option", "comment", "answered_at"])
    a["score"] = a["score"].astype("Int64")
    a["option"] = a["option"].astype("Int64")
    a["answered_at"] = pd.to_datetime(a["answered_at"], utc=True)
    return SurveyFrames(surveys=s, answers=a)


def survey(survey_id: int, *, course: str | None = None, audience: int = 0, kind: str = "nps") -> dict[str, object]:
    options = ("a", "b", "c") if kind == "poll" else ()
    return {
        "survey_id": survey_id,
        "kind": kind,
        "origin": "channel" if course is None else "dm",
        "question": "How likely…",
        "options": options,
        "course": course,
        "created_at": datetime(2026, 10, 1, tzinfo=UTC),
        "audience": audience,
    }


def answer(
    survey_id: int, member: int, score: int | None, *, day: str = "2026-10-15", comment: str | None = None
) -> dict[str, object]:
    return {
        "survey_id": survey_id,
        "member_id": member,
        "score": score,
        "option": None,
        "comment": comment,
        "answered_at": f"{day}T12:00:00Z",
    }


def test_nps_and_its_interval_worked_out_by_hand() -> None:
    # 5 promoters (10, 10, 9, 10, 9), 2 passives (8, 7), 3 detractors (6, 0, 3) of 10.
    figure = nps(pd.Series([10, 10, 9, 8, 7, 6, 0, 3, 10, 9]), asked=40)
    assert (figure.responses, figure.promoters, figure.passives, figure.detractors) == (10, 5, 2, 3)
    assert figure.nps == pytest.approx(20.0)
    # se = sqrt((0.5 + 0.3 - 0.2**2) / 10) = sqrt(0.076) = 0.275681; 1.96 se = 0.540325 -> ±54.0 points.
    assert figure.low == pytest.approx(-34.03, abs=0.01)
    assert figure.high == pytest.approx(74.03, abs=0.01)
    assert figure.response_rate == pytest.approx(0.25)


def test_unanimous_answers_have_no_spread_and_no_answers_have_no_score() -> None:
    all_promoters = nps(pd.Series([9, 10, 10]))
    assert (all_promoters.nps, all_promoters.low, all_promoters.high) == (100.0, 100.0, 100.0)
    assert all_promoters.response_rate is None  # nobody counted as asked
    nobody = nps(pd.Series([], dtype="Int64"), asked=12)
    assert (nobody.responses, nobody.nps, nobody.low, nobody.high, nobody.response_rate) == (0, None, None, None, 0.0)
    # One detractor: -100 with an interval that cannot go below -100.
    one = nps(pd.Series([2]))
    assert (one.nps, one.low, one.high) == (-100.0, -100.0, -100.0)


def test_bands() -> None:
    assert [band(s) for s in (0, 6, 7, 8, 9, 10)] == [
        "detractor",
        "detractor",
        "passive",
        "passive",
        "promoter",
        "promoter",
    ]


def test_results_per_course_month_comments_and_polls() -> None:
    data = frames(
        [survey(1, audience=20), survey(2, course="py-async", audience=4), survey(3, kind="poll", audience=20)],
        [
            answer(1, 1, 10, day="2026-10-03", comment="Friendly people"),
            answer(1, 2, 4, day="2026-10-30", comment="Questions go unanswered"),
            answer(1, 3, 8, day="2026-11-02"),
            answer(2, 1, 9, day="2026-11-04", comment="Great course"),
            answer(2, 4, 9, day="2026-11-05", comment="   "),
            {**answer(3, 1, None), "option": 2},
            {**answer(3, 2, None), "option": 2},
            {**answer(3, 3, None), "option": 0},
        ],
    )
    results = survey_results(data, timezone="Europe/Berlin")
    overall = results.overall
    # 3 promoters (10, 9, 9), 1 passive, 1 detractor of 5: NPS 40; asked 20 + 4.
    assert (overall.responses, overall.nps, overall.asked) == (5, pytest.approx(40.0), 24)
    assert overall.response_rate == pytest.approx(5 / 24)
    by_course = {c.course: c.figure for c in results.by_course}
    assert by_course[None].nps == pytest.approx(0.0)  # 10, 4, 8: one promoter, one detractor
    assert by_course["py-async"].nps == pytest.approx(100.0) and by_course["py-async"].response_rate == 0.5
    assert [(m.month, m.figure.responses) for m in results.by_month] == [("2026-10", 2), ("2026-11", 3)]
    comments = [(g.course, g.band, g.comments) for g in results.comments]
    assert comments == [
        (None, "promoter", ("Friendly people",)),
        (None, "detractor", ("Questions go unanswered",)),
        ("py-async", "promoter", ("Great course",)),  # a blank comment is no comment
    ]
    [poll] = results.polls
    assert poll.votes == (1, 0, 2) and poll.response_rate == pytest.approx(3 / 20)
    assert results.nps_surveys == 2
    document = results.to_json()
    assert document["overall"] == {
        "responses": 5,
        "promoters": 3,
        "passives": 1,
        "detractors": 1,
        "nps": 40.0,
        "nps_low": pytest.approx(-30.1, abs=0.1),  # se = sqrt((0.6 + 0.2 - 0.16) / 5)
        "nps_high": pytest.approx(100.0),
        "asked": 24,
        "response_rate": 0.2083,
    }


def test_answers_after_the_report_end_are_left_out() -> None:
    data = frames([survey(1, audience=10)], [answer(1, 1, 10, day="2026-10-03"), answer(1, 2, 0, day="2026-12-01")])
    results = survey_results(data, until=datetime(2026, 11, 1, tzinfo=UTC))
    assert (results.overall.responses, results.overall.nps) == (1, 100.0)
