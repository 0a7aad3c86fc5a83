"""Questions and answers in the help channels: which messages are questions, when each was first answered, by whom.

Definitions (docs/metrics.md, "Questions and answers"), structural first:

- In a **thread** under a help channel (a Discord forum post, a thread of a help channel), the question is the
  thread's first human message; its first answer is the first later message in the thread by another human (not the
  asker, not a bot), however late.
- In a **flat** help channel (a Discord text channel's own messages, a Telegram chat or forum topic), a
  conversation starts when a human message follows ``quiet_minutes`` or more of human silence in that place (or is
  the first one). The message that starts it is a question unless it replies to someone else (a reply continues
  what it replies to). Its first answer is the earliest of:

  * the first message by another human in the same conversation, within ``answer_window_hours`` of the question
    (the heuristic: DiscordChatExporter CSV carries no reply data). A message that itself starts a new conversation
    after a silence is a new question, never an answer: counting it as one makes almost every question answered;
  * the first later message by another human that replies to the asker, before the asker's next question in that
    place (structural: the reply names its target, so no window applies).

Bots are left out entirely: they neither ask, answer nor break a silence. A question is *unanswered* when it has no
answer by the end of the range and was asked more than ``unanswered_after_hours`` before it.

Pure functions of a frame of messages (``HELP_MESSAGES_COLUMNS``) that ``storage.questions`` loads; nothing here
reads the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analytics.weeks import week_start

HELP_MESSAGES_COLUMNS: Final = (
    "message_id",
    "platform",
    "platform_message_id",
    "channel_id",
    "channel",
    "place_id",
    "in_thread",
    "link_channel",
    "member_id",
    "name",
    "is_bot",
    "created_at",
    "reply_to_member_id",
)
"""One row per message in a help channel. ``message_id``: the stored row id (ties in time are ordered by it);
``channel_id`` / ``channel``: the help channel (a forum, a text channel, a Telegram chat or topic) and its name;
``place_id``: where the conversation happens (a thread or a Telegram topic is its own place, else the channel);
``in_thread``: the place is a thread (one question per place); ``link_channel``: the platform id of the channel the
platform numbers the message in (a Discord channel or thread, a Telegram chat) and, for a Telegram topic,
``"<chat>#<topic>"``; ``created_at``: ``datetime64[ns, UTC]``; ``reply_to_member_id``: the member replied to
(``<NA>`` for none)."""

QUESTIONS_COLUMNS: Final = (
    "message_id",
    "platform",
    "platform_message_id",
    "channel_id",
    "channel",
    "link_channel",
    "in_thread",
    "asker_id",
    "asker",
    "asked_at",
    "answered_at",
    "answerer_id",
    "answerer",
)
"""One row per question: ``answered_at`` is NaT and ``answerer_id`` ``<NA>`` while it has no answer."""

HOUR: Final = pd.Timedelta(hours=1)
DAY: Final = pd.Timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class QuestionRules:
    """The ``[help]`` thresholds the definitions use.

    Attributes:
        quiet_minutes: Human silence in a flat place after which a message starts a new conversation.
        answer_window_hours: How long after a flat-channel question another member's message in the same
            conversation still counts as its answer.
        unanswered_after_hours: How long a question waits without an answer before it counts as unanswered.
    """

    quiet_minutes: int = 30
    answer_window_hours: int = 24
    unanswered_after_hours: int = 24


@dataclass(frozen=True, slots=True)
class QuestionFigures:
    """Questions asked in one week, one channel or the whole range, and how they were answered.

    Attributes:
        questions: Questions asked.
        answered_1h: Share of the questions asked at least an hour before the range's end that got their first
            answer within an hour (None when there are none).
        answered_24h: The same within 24 hours.
        median_minutes: Median time to the first answer, over the answered questions (None without any).
        p90_minutes: 90th percentile of the same (linear interpolation).
        unanswered: Questions without an answer, asked more than ``unanswered_after_hours`` before the end.
    """

    questions: int
    answered_1h: float | None
    answered_24h: float | None
    median_minutes: float | None
    p90_minutes: float | None
    unanswered: int


@dataclass(frozen=True, slots=True)
class QuestionWeek:
    """The questions of one ISO week (Monday ``start``, community time zone)."""

    start: date
    figures: QuestionFigures


@dataclass(frozen=True, slots=True)
class QuestionChannel:
    """The questions of one help channel (a forum's posts count towards the forum)."""

    channel_id: int
    name: str
    figures: QuestionFigures


@dataclass(frozen=True, slots=True)
class Helper:
    """A member who gave first answers: the "helper" segment (beside, not instead of, the activity segments)."""

    member_id: int
    name: str
    answers: int  # questions this member answered first
    median_minutes: float  # their median time to that first answer


@dataclass(frozen=True, slots=True)
class WaitingQuestion:
    """A question still waiting for an answer, with what a link to it needs."""

    message_id: int
    platform: str
    channel: str
    link_channel: str  # platform id of the channel numbering the message (with "#<topic>" for a Telegram topic)
    platform_message_id: str
    asker_id: int
    asker: str
    asked_at: datetime
    waiting_hours: float  # from the question to the end of the range


@dataclass(frozen=True, slots=True)
class QuestionsSummary:
    """The report's ``questions`` section.

    Attributes:
        total: The whole range.
        weeks: Every ISO week of the range, weeks without questions included.
        channels: Help channels with questions in the range, most questions first.
        helpers: Members who answered first, most answers first (cut to the report's top size).
        helper_count: Everyone who answered first at least once in the range (the helper segment's size).
        waiting: Unanswered questions of the range, longest waiting first (cut to the report's top size).
    """

    total: QuestionFigures
    weeks: tuple[QuestionWeek, ...]
    channels: tuple[QuestionChannel, ...]
    helpers: tuple[Helper, ...]
    helper_count: int
    waiting: tuple[WaitingQuestion, ...]


def empty_help_messages() -> pd.DataFrame:
    """A help-messages frame without rows, with the right dtypes."""
    return pd.DataFrame(
        {
            "message_id": pd.Series(dtype="int64"),
            "platform": pd.Series(dtype="object"),
            "platform_message_id": pd.Series(dtype="object"),
            "channel_id": pd.Series(dtype="int64"),
            "channel": pd.Series(dtype="object"),
            "place_id": pd.Series(dtype="int64"),
            "in_thread": pd.Series(dtype="bool"),
            "link_channel": pd.Series(dtype="object"),
            "member_id": pd.Series(dtype="int64"),
            "name": pd.Series(dtype="object"),
            "is_bot": pd.Series(dtype="bool"),
            "created_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "reply_to_member_id": pd.Series(dtype="Int64"),
        }
    )


def find_questions(messages: pd.DataFrame, rules: QuestionRules) -> pd.DataFrame:
    """Every question among ``messages`` with its first answer (``QUESTIONS_COLUMNS``), in the order asked.

    Args:
        messages: Help-channel messages (``HELP_MESSAGES_COLUMNS``). Flat places need the messages from
            ``quiet_minutes`` before the first question of interest on (to see the silence before it); threads
            need all their messages.
        rules: The thresholds.

    Returns:
        The questions, oldest first (ties by message id).
    """
    humans = messages.loc[~messages["is_bot"].astype(bool)].sort_values(["place_id", "created_at", "message_id"])
    threads = humans.loc[humans["in_thread"].astype(bool)]
    flat = humans.loc[~humans["in_thread"].astype(bool)]
    found = pd.concat([_thread_questions(threads), _flat_questions(flat, rules)], ignore_index=True)
    return found.sort_values(["asked_at", "message_id"], kind="stable").reset_index(drop=True)


def _question_rows(first: pd.DataFrame, answers: pd.DataFrame) -> pd.DataFrame:
    """Question rows from the question messages and their first answers (indexed by the question's message id)."""
    out = pd.DataFrame(
        {
            "message_id": first["message_id"].to_numpy(dtype="int64"),
            "platform": first["platform"].to_numpy(dtype=object),
            "platform_message_id": first["platform_message_id"].to_numpy(dtype=object),
            "channel_id": first["channel_id"].to_numpy(dtype="int64"),
            "channel": first["channel"].to_numpy(dtype=object),
            "link_channel": first["link_channel"].to_numpy(dtype=object),
            "in_thread": first["in_thread"].to_numpy(dtype=bool),
            "asker_id": first["member_id"].to_numpy(dtype="int64"),
            "asker": first["name"].to_numpy(dtype=object),
            "asked_at": pd.DatetimeIndex(first["created_at"]),
        }
    )
    matched = answers.reindex(out["message_id"].to_numpy())
    out["answered_at"] = pd.DatetimeIndex(matched["answered_at"].to_numpy(), tz="UTC") if len(out) else out["asked_at"]
    out["answerer_id"] = pd.array(matched["answerer_id"].to_numpy(), dtype="Int64")
    out["answerer"] = matched["answerer"].to_numpy(dtype=object)
    return out


def _no_answers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "answered_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "answerer_id": pd.Series(dtype="Int64"),
            "answerer": pd.Series(dtype="object"),
            "answer_message_id": pd.Series(dtype="int64"),
        },
        index=pd.Index([], dtype="int64", name="question_id"),
    )


def _first_answers(candidates: pd.DataFrame) -> pd.DataFrame:
    """The earliest candidate per question (``question_id``), ties by message id."""
    if not len(candidates):
        return _no_answers()
    ordered = candidates.sort_values(["question_id", "created_at", "message_id"])
    first = ordered.drop_duplicates("question_id")
    return pd.DataFrame(
        {
            "answered_at": pd.DatetimeIndex(first["created_at"]),
            "answerer_id": pd.array(first["member_id"].to_numpy(), dtype="Int64"),
            "answerer": first["name"].to_numpy(dtype=object),
            "answer_message_id": first["message_id"].to_numpy(dtype="int64"),
        },
        index=pd.Index(first["question_id"].to_numpy(dtype="int64"), name="question_id"),
    )


def _thread_questions(threads: pd.DataFrame) -> pd.DataFrame:
    """One question per thread: its first human message, answered by the first message of another human."""
    first = threads.drop_duplicates("place_id")
    asker = threads["place_id"].map(pd.Series(first["member_id"].to_numpy(), index=first["place_id"].to_numpy()))
    question = threads["place_id"].map(pd.Series(first["message_id"].to_numpy(), index=first["place_id"].to_numpy()))
    candidates = threads.loc[threads["member_id"].to_numpy() != asker.to_numpy()].assign(
        question_id=question[threads["member_id"].to_numpy() != asker.to_numpy()]
    )
    return _question_rows(first, _first_answers(candidates))


def _flat_questions(flat: pd.DataFrame, rules: QuestionRules) -> pd.DataFrame:
    """Conversation openers in flat places, answered within the conversation or by a reply to the asker."""
    if not len(flat):
        return _question_rows(flat, _no_answers())
    place = flat["place_id"].to_numpy()
    at = flat["created_at"]
    new_place = np.r_[True, place[1:] != place[:-1]]
    gap = at.diff()
    opens = new_place | (gap >= pd.Timedelta(minutes=rules.quiet_minutes)).to_numpy()
    conversation = np.cumsum(opens)
    reply_to = flat["reply_to_member_id"]
    replies_other = (reply_to.notna() & (reply_to != flat["member_id"])).to_numpy(dtype=bool)
    is_question = opens & ~replies_other
    first = flat.loc[is_question]

    # The heuristic: another human in the same conversation, within the window. A conversation has at most one
    # question (its opener), so each message finds its conversation's question by position.
    ns = _nanoseconds(at)
    positions = np.flatnonzero(is_question)
    question_of_conversation = np.full(int(conversation[-1]) + 1, -1)
    question_of_conversation[conversation[positions]] = positions
    owner = question_of_conversation[conversation]
    has_question = owner >= 0
    members = flat["member_id"].to_numpy(dtype="int64")
    safe = np.where(has_question, owner, 0)
    window = pd.Timedelta(hours=rules.answer_window_hours).value
    # A reply to a third person answers that person, not the conversation's question.
    target = reply_to.fillna(-1).to_numpy(dtype="int64")
    elsewhere = replies_other & (target != members[safe])
    in_window = has_question & (members != members[safe]) & (ns - ns[safe] <= window) & ~elsewhere
    heuristic = flat.loc[in_window].assign(question_id=flat["message_id"].to_numpy(dtype="int64")[safe[in_window]])

    # Structural: a reply to the asker answers the asker's latest question in the place before it.
    replies = flat.loc[replies_other].assign(asker_id=lambda f: f["reply_to_member_id"].astype("int64"))
    structural = pd.DataFrame()
    if len(replies) and len(first):
        asked = pd.DataFrame(
            {
                "created_at": pd.DatetimeIndex(first["created_at"]),
                "place_id": first["place_id"].to_numpy(),
                "asker_id": first["member_id"].to_numpy(dtype="int64"),
                "question_id": first["message_id"].to_numpy(dtype="int64"),
            }
        ).sort_values("created_at", kind="stable")
        joined = pd.merge_asof(
            replies.sort_values("created_at", kind="stable"),
            asked,
            on="created_at",
            by=["place_id", "asker_id"],
            direction="backward",
            allow_exact_matches=True,
        )
        structural = joined.loc[joined["question_id"].notna() & (joined["member_id"] != joined["asker_id"])]
        structural = structural.assign(question_id=structural["question_id"].astype("int64"))
    candidates = pd.concat([heuristic, structural], ignore_index=True) if len(structural) else heuristic
    return _question_rows(first, _first_answers(candidates))


def _nanoseconds(instants: pd.Series) -> np.ndarray:
    """UTC instants as integer nanoseconds since the epoch."""
    return np.asarray(pd.DatetimeIndex(instants).tz_convert("UTC").as_unit("ns").asi8)


def _minutes(waits: pd.Series) -> np.ndarray:
    return np.asarray(waits.dt.total_seconds().to_numpy(dtype=float) / 60.0)


def question_figures(questions: pd.DataFrame, *, end: datetime, rules: QuestionRules) -> QuestionFigures:
    """The figures of a set of questions, as of the instant ``end`` (answers after it are not seen).

    Args:
        questions: Rows of :func:`find_questions`.
        end: The end of the range (exclusive, UTC-aware).
        rules: The thresholds.

    Returns:
        The figures.
    """
    stop = pd.Timestamp(end)
    answered = questions["answered_at"].notna() & (questions["answered_at"] < stop)
    wait = questions["answered_at"] - questions["asked_at"]
    age = stop - questions["asked_at"]

    def share(limit: pd.Timedelta) -> float | None:
        old_enough = age >= limit
        if not old_enough.any():
            return None
        return float((answered & (wait <= limit))[old_enough].mean())

    minutes = _minutes(wait[answered])
    unanswered = ~answered & (age > pd.Timedelta(hours=rules.unanswered_after_hours))
    return QuestionFigures(
        questions=len(questions),
        answered_1h=share(HOUR),
        answered_24h=share(DAY),
        median_minutes=float(np.median(minutes)) if len(minutes) else None,
        p90_minutes=float(np.percentile(minutes, 90)) if len(minutes) else None,
        unanswered=int(unanswered.sum()),
    )


def in_range(questions: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """The questions asked in ``[start, end)``, with answers given after ``end`` taken out (not seen yet)."""
    asked = questions.loc[(questions["asked_at"] >= pd.Timestamp(start)) & (questions["asked_at"] < pd.Timestamp(end))]
    late = asked["answered_at"].notna() & (asked["answered_at"] >= pd.Timestamp(end))
    if late.any():
        asked = asked.copy()
        asked.loc[late, "answered_at"] = pd.NaT
        asked.loc[late, "answerer_id"] = pd.NA
        asked.loc[late, "answerer"] = None
    return asked


def waiting_questions(questions: pd.DataFrame, *, end: datetime, rules: QuestionRules) -> list[WaitingQuestion]:
    """The unanswered questions (no answer, asked more than ``unanswered_after_hours`` before ``end``), oldest first.

    Args:
        questions: Rows of :func:`find_questions` (as seen at ``end``: see :func:`in_range`).
        end: The instant the wait is measured to.
        rules: The thresholds.

    Returns:
        The waiting questions, longest waiting first.
    """
    stop = pd.Timestamp(end)
    age = stop - questions["asked_at"]
    rows = questions.loc[questions["answered_at"].isna() & (age > pd.Timedelta(hours=rules.unanswered_after_hours))]
    asked_at = pd.DatetimeIndex(rows["asked_at"])
    waited = (stop - asked_at).total_seconds().to_numpy(dtype=float) / 3600.0
    return [
        WaitingQuestion(
            message_id=int(message_id),
            platform=str(platform),
            channel=str(channel),
            link_channel=str(link_channel),
            platform_message_id=str(platform_message_id),
            asker_id=int(asker_id),
            asker=str(asker),
            asked_at=at.to_pydatetime(),
            waiting_hours=float(hours),
        )
        for message_id, platform, channel, link_channel, platform_message_id, asker_id, asker, at, hours in zip(
            rows["message_id"].to_numpy(dtype="int64"),
            rows["platform"].to_numpy(dtype=object),
            rows["channel"].to_numpy(dtype=object),
            rows["link_channel"].to_numpy(dtype=object),
            rows["platform_message_id"].to_numpy(dtype=object),
            rows["asker_id"].to_numpy(dtype="int64"),
            rows["asker"].to_numpy(dtype=object),
            asked_at,
            waited,
            strict=True,
        )
    ]


def helpers(questions: pd.DataFrame) -> list[Helper]:
    """Everyone who answered a question first: most answers first, then the quickest median, then by name.

    Args:
        questions: Rows of :func:`find_questions`.

    Returns:
        The helpers.
    """
    answered = questions.loc[questions["answerer_id"].notna()]
    if not len(answered):
        return []
    frame = pd.DataFrame(
        {
            "member_id": answered["answerer_id"].astype("int64").to_numpy(),
            "name": answered["answerer"].to_numpy(dtype=object),
            "minutes": _minutes(answered["answered_at"] - answered["asked_at"]),
        }
    )
    grouped = frame.groupby("member_id").agg(
        name=("name", "last"), answers=("minutes", "size"), median_minutes=("minutes", "median")
    )
    grouped = grouped.reset_index().sort_values(
        ["answers", "median_minutes", "name", "member_id"], ascending=[False, True, True, True], kind="stable"
    )
    return [
        Helper(int(member_id), str(name), int(answers), float(median))
        for member_id, name, answers, median in zip(
            grouped["member_id"].to_numpy(dtype="int64"),
            grouped["name"].to_numpy(dtype=object),
            grouped["answers"].to_numpy(dtype="int64"),
            grouped["median_minutes"].to_numpy(dtype=float),
            strict=True,
        )
    ]


def member_counts(questions: pd.DataFrame, member_id: int) -> tuple[int, int]:
    """A member's questions asked and first answers given among ``questions``."""
    asked = int((questions["asker_id"] == member_id).sum())
    answered = int((questions["answerer_id"] == member_id).fillna(False).sum())
    return asked, answered


def questions_summary(
    messages: pd.DataFrame,
    rules: QuestionRules,
    *,
    timezone: ZoneInfo,
    first_week: date,
    as_of: date,
    top_n: int = 10,
) -> QuestionsSummary:
    """The report's questions section: the ISO weeks from ``first_week`` (a Monday) through the day ``as_of``.

    The range is the local days ``first_week`` .. ``as_of`` in ``timezone``; answers after its end are not seen.

    Args:
        messages: Help-channel messages (``HELP_MESSAGES_COLUMNS``) covering the range (see :func:`find_questions`).
        rules: The thresholds.
        timezone: The community's time zone (weeks are local).
        first_week: The Monday of the range's first week.
        as_of: The range's last local day.
        top_n: How many helpers and waiting questions to list.

    Returns:
        The summary.
    """
    start = local_midnight(first_week, timezone)
    end = local_midnight(as_of + timedelta(days=1), timezone)
    asked = in_range(find_questions(messages, rules), start, end)
    local_days = asked["asked_at"].dt.tz_convert(timezone).dt.date
    mondays = local_days.map(week_start) if len(asked) else local_days
    weeks = []
    monday = first_week
    while monday <= as_of:
        weeks.append(QuestionWeek(monday, question_figures(asked.loc[mondays == monday], end=end, rules=rules)))
        monday += timedelta(weeks=1)
    channel_ids = asked["channel_id"].to_numpy(dtype="int64")
    channels = []
    for key in np.unique(channel_ids):
        group = asked.loc[channel_ids == key]
        name = str(group["channel"].to_numpy(dtype=object)[-1])
        channels.append(QuestionChannel(int(key), name, question_figures(group, end=end, rules=rules)))
    channels.sort(key=lambda c: (-c.figures.questions, c.name, c.channel_id))
    everyone = helpers(asked)
    return QuestionsSummary(
        total=question_figures(asked, end=end, rules=rules),
        weeks=tuple(weeks),
        channels=tuple(channels),
        helpers=tuple(everyone[:top_n]),
        helper_count=len(everyone),
        waiting=tuple(waiting_questions(asked, end=end, rules=rules)[:top_n]),
    )


def local_midnight(day: date, timezone: ZoneInfo) -> datetime:
    """The UTC instant a local day starts in ``timezone``."""
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone).astimezone(ZoneInfo("UTC"))


def week_figures(summary: QuestionsSummary, monday: date) -> QuestionFigures | None:
    """The figures of the week starting ``monday``, when the summary covers it."""
    return next((w.figures for w in summary.weeks if w.start == monday), None)
