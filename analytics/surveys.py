"""Survey results: Net Promoter Score with its 95% interval, response rates, comments and native poll counts.

Pure functions of the two frames ``storage/surveys.py`` reads (:class:`SurveyFrames`); the formulas are in
``docs/metrics.md`` ("Surveys and satisfaction"). Everything here is for owners: comments are members' own words
and are never shown to members, and no member is named next to a score or a comment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

Z95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95% interval."""

PROMOTER_MIN = 9
DETRACTOR_MAX = 6
BANDS = ("promoter", "passive", "detractor")


@dataclass(frozen=True, slots=True)
class SurveyFrames:
    """What survey results are computed from.

    Attributes:
        surveys: One row per survey: ``survey_id``, ``kind`` (``nps``/``poll``), ``origin``
            (``channel``/``dm``/``after_purchase``), ``question``, ``options`` (a tuple of a poll's answers),
            ``course`` (course key or None), ``created_at`` (UTC), ``audience`` (members asked: the members of the
            community when a channel post went up; for DMs, the ones delivered).
        answers: One row per member and survey: ``survey_id``, ``member_id``, ``score`` (0–10 or NA), ``option``
            (a poll answer's index or NA), ``comment`` (None unless the member wrote one), ``answered_at`` (UTC).
    """

    surveys: pd.DataFrame
    answers: pd.DataFrame


@dataclass(frozen=True, slots=True)
class NpsFigure:
    """NPS over a set of answers, with its 95% interval and response rate.

    Attributes:
        responses: Scores given.
        promoters: Scores of 9 or 10.
        passives: Scores of 7 or 8.
        detractors: Scores of 0 to 6.
        nps: Promoters' share minus detractors' share, in points (-100 to 100); None without responses.
        low: The 95% interval's lower end, in points (clipped to -100); None without responses.
        high: Its upper end (clipped to 100); None without responses.
        asked: Members the questions reached (see :class:`SurveyFrames`); 0 when unknown.
        response_rate: ``responses / asked``; None when ``asked`` is 0.
    """

    responses: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    low: float | None
    high: float | None
    asked: int = 0
    response_rate: float | None = None


@dataclass(frozen=True, slots=True)
class CourseNps:
    """NPS of the questions about one course (``course`` None: the questions about the whole community)."""

    course: str | None
    figure: NpsFigure


@dataclass(frozen=True, slots=True)
class NpsMonth:
    """NPS of the scores given in one calendar month (community time), ``month`` as ``YYYY-MM``."""

    month: str
    figure: NpsFigure


@dataclass(frozen=True, slots=True)
class CommentGroup:
    """The comments written with scores of one band (promoter, passive, detractor) about one course, newest first."""

    course: str | None
    band: str
    comments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PollResult:
    """A native poll's votes per answer (members' current votes: a changed vote counts once, where it ended)."""

    survey_id: int
    question: str
    course: str | None
    created_at: datetime
    options: tuple[str, ...]
    votes: tuple[int, ...]
    asked: int
    response_rate: float | None


@dataclass(frozen=True, slots=True)
class SurveyResults:
    """Every survey figure of the report (owners only)."""

    overall: NpsFigure
    by_course: tuple[CourseNps, ...]
    by_month: tuple[NpsMonth, ...]
    comments: tuple[CommentGroup, ...]
    polls: tuple[PollResult, ...]
    nps_surveys: int

    def to_json(self) -> dict[str, object]:
        """The ``surveys`` section of the report JSON (schema in ``docs/metrics.md``)."""
        return {
            "nps_surveys": self.nps_surveys,
            "overall": _figure_json(self.overall),
            "by_course": [{"course": c.course, **_figure_json(c.figure)} for c in self.by_course],
            "by_month": [{"month": m.month, **_figure_json(m.figure)} for m in self.by_month],
            "comments": [{"course": g.course, "band": g.band, "comments": list(g.comments)} for g in self.comments],
            "polls": [
                {
                    "survey_id": p.survey_id,
                    "question": p.question,
                    "course": p.course,
                    "created_at": p.created_at.isoformat(),
                    "options": [{"text": text, "votes": votes} for text, votes in zip(p.options, p.votes, strict=True)],
                    "asked": p.asked,
                    "response_rate": _round(p.response_rate, 4),
                }
                for p in self.polls
            ],
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _figure_json(figure: NpsFigure) -> dict[str, object]:
    return {
        "responses": figure.responses,
        "promoters": figure.promoters,
        "passives": figure.passives,
        "detractors": figure.detractors,
        "nps": _round(figure.nps, 1),
        "nps_low": _round(figure.low, 1),
        "nps_high": _round(figure.high, 1),
        "asked": figure.asked,
        "response_rate": _round(figure.response_rate, 4),
    }


def band(score: int) -> str:
    """``promoter`` (9–10), ``passive`` (7–8) or ``detractor`` (0–6)."""
    if score >= PROMOTER_MIN:
        return "promoter"
    return "detractor" if score <= DETRACTOR_MAX else "passive"


def nps(scores: pd.Series, *, asked: int = 0) -> NpsFigure:
    """NPS of 0–10 scores with a 95% normal-approximation interval.

    Each answer is +1 (promoter), 0 (passive) or -1 (detractor); NPS is their mean, and its variance per answer is
    ``p_p + p_d - (p_p - p_d)^2`` (the variance of that three-valued variable), so
    ``se = sqrt((p_p + p_d - (p_p - p_d)^2) / n)`` and the interval is ``NPS ± 1.96 se``, in points, clipped to
    ±100.

    Args:
        scores: Scores from 0 to 10 (missing values are ignored).
        asked: Members asked, for the response rate (0: unknown).

    Returns:
        The figure; ``nps``, ``low`` and ``high`` are None without scores.
    """
    values = pd.to_numeric(scores, errors="coerce").dropna()
    n = len(values)
    promoters = int((values >= PROMOTER_MIN).sum())
    detractors = int((values <= DETRACTOR_MAX).sum())
    rate = n / asked if asked > 0 else None
    if n == 0:
        return NpsFigure(0, 0, 0, 0, None, None, None, asked, rate)
    p_p, p_d = promoters / n, detractors / n
    score = p_p - p_d
    se = math.sqrt(max(0.0, p_p + p_d - score**2) / n)
    low, high = max(-1.0, score - Z95 * se), min(1.0, score + Z95 * se)
    return NpsFigure(
        n, promoters, n - promoters - detractors, detractors, score * 100, low * 100, high * 100, asked, rate
    )


def _empty_answers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "survey_id": pd.Series([], dtype="int64"),
            "score": pd.Series([], dtype="Int64"),
            "comment": pd.Series([], dtype="object"),
            "answered_at": pd.Series([], dtype="datetime64[ns, UTC]"),
            "course": pd.Series([], dtype="object"),
        }
    )


def survey_results(frames: SurveyFrames, *, timezone: str = "UTC", until: datetime | None = None) -> SurveyResults:
    """NPS overall, per course and per month, comments by course and band, and poll counts.

    Args:
        frames: The surveys and answers.
        timezone: The community's zone (months are calendar months there).
        until: Leave out surveys created and answers given at or after this instant (the report's end).

    Returns:
        The results; figures over no answers have None NPS.
    """
    surveys = frames.surveys
    answers = frames.answers
    if until is not None:
        cutoff = pd.Timestamp(until)
        surveys = surveys[surveys["created_at"] < cutoff]
        answers = answers[answers["answered_at"] < cutoff]
    answers = answers[answers["survey_id"].isin(surveys["survey_id"])]
    nps_surveys = surveys[surveys["kind"] == "nps"]
    nps_answers = answers[answers["survey_id"].isin(nps_surveys["survey_id"]) & answers["score"].notna()]
    nps_answers = nps_answers.merge(nps_surveys[["survey_id", "course"]], on="survey_id", how="left")
    if nps_answers.empty:
        nps_answers = _empty_answers()
    overall = nps(nps_answers["score"], asked=int(nps_surveys["audience"].sum()))
    by_course: list[CourseNps] = []
    keys = nps_surveys["course"].fillna("").astype(str)
    answer_keys = nps_answers["course"].fillna("").astype(str)
    for key in sorted(set(keys)):
        asked = int(nps_surveys.loc[keys == key, "audience"].sum())
        by_course.append(CourseNps(key or None, nps(nps_answers.loc[answer_keys == key, "score"], asked=asked)))
    by_month: list[NpsMonth] = []
    if not nps_answers.empty:
        months = nps_answers["answered_at"].dt.tz_convert(timezone).dt.strftime("%Y-%m")
        for month in sorted(set(months)):
            by_month.append(NpsMonth(month, nps(nps_answers.loc[months == month, "score"])))
    comments: list[CommentGroup] = []
    written = nps_answers[nps_answers["comment"].notna() & (nps_answers["comment"].astype(str).str.strip() != "")]
    if not written.empty:
        written = written.assign(
            band=[band(int(s)) for s in written["score"]], key=written["course"].fillna("").astype(str)
        ).sort_values("answered_at", ascending=False, kind="stable")
        for key in sorted(set(written["key"])):
            for name in BANDS:
                group = written[(written["key"] == key) & (written["band"] == name)]
                if not group.empty:
                    comments.append(CommentGroup(key or None, name, tuple(str(c) for c in group["comment"])))
    polls: list[PollResult] = []
    for row in surveys[surveys["kind"] == "poll"].to_dict("records"):
        options = tuple(str(o) for o in row["options"])
        chosen = answers.loc[(answers["survey_id"] == row["survey_id"]) & answers["option"].notna(), "option"]
        counts = chosen.astype(int).value_counts()
        votes = tuple(int(counts.get(index, 0)) for index in range(len(options)))
        asked = int(row["audience"])
        course = row["course"]
        polls.append(
            PollResult(
                survey_id=int(row["survey_id"]),
                question=str(row["question"]),
                course=None if course is None or pd.isna(course) else str(course),
                created_at=pd.Timestamp(row["created_at"]).to_pydatetime(),
                options=options,
                votes=votes,
                asked=asked,
                response_rate=sum(votes) / asked if asked > 0 else None,
            )
        )
    return SurveyResults(
        overall=overall,
        by_course=tuple(by_course),
        by_month=tuple(by_month),
        comments=tuple(comments),
        polls=tuple(polls),
        nps_surveys=len(nps_surveys),
    )
