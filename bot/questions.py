"""Questions and answers from the database: ``[help]`` settings → ``storage.questions`` → ``analytics.questions``.

The glue the report, ``/unanswered``, ``/stats``, the digest, the dashboard and the ping job share, so that they
all apply the same definitions (docs/metrics.md, "Questions and answers") to the same messages.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine

from analytics.questions import (
    QuestionRules,
    QuestionsSummary,
    find_questions,
    in_range,
    local_midnight,
    questions_summary,
)
from bot.config import HelpSettings
from storage.questions import HelpScope, help_messages

RECENT_DAYS = 30
"""``/unanswered``, the pings and ``/stats`` look at the questions of the last 30 days: an older question nobody
answered is history, not a member waiting."""


def help_scope(settings: HelpSettings) -> HelpScope:
    """The help channels of ``[help]``."""
    return HelpScope(channels=settings.channels, exclude=settings.exclude)


def question_rules(settings: HelpSettings) -> QuestionRules:
    """The thresholds of ``[help]``."""
    return QuestionRules(
        quiet_minutes=settings.quiet_minutes,
        answer_window_hours=settings.answer_window_hours,
        unanswered_after_hours=settings.unanswered_after_hours,
    )


def load_questions(
    engine: Engine, community_id: int, settings: HelpSettings, *, start: datetime, end: datetime
) -> pd.DataFrame:
    """The questions asked in ``[start, end)`` with their first answers as seen at ``end`` (``QUESTIONS_COLUMNS``).

    Args:
        engine: The database.
        community_id: The community.
        settings: ``[help]``.
        start: First instant (UTC-aware).
        end: End instant, exclusive.

    Returns:
        The questions, oldest first.
    """
    with engine.connect() as conn:
        messages = help_messages(
            conn, community_id, help_scope(settings), start=start, end=end, quiet_minutes=settings.quiet_minutes
        )
    return in_range(find_questions(messages, question_rules(settings)), start, end)


def recent_questions(engine: Engine, community_id: int, settings: HelpSettings, *, now: datetime) -> pd.DataFrame:
    """The questions of the last :data:`RECENT_DAYS` days up to ``now``."""
    return load_questions(engine, community_id, settings, start=now - timedelta(days=RECENT_DAYS), end=now)


def questions_section(
    engine: Engine,
    community_id: int,
    settings: HelpSettings,
    *,
    timezone: ZoneInfo,
    first_week: date,
    as_of: date,
    top_n: int,
) -> QuestionsSummary:
    """The report's questions section over the ISO weeks from ``first_week`` through the local day ``as_of``.

    Args:
        engine: The database.
        community_id: The community.
        settings: ``[help]``.
        timezone: The community's time zone.
        first_week: The range's first Monday.
        as_of: The range's last local day.
        top_n: How many helpers and waiting questions to name.

    Returns:
        The section.
    """
    start = local_midnight(first_week, timezone)
    end = local_midnight(as_of + timedelta(days=1), timezone)
    with engine.connect() as conn:
        messages = help_messages(
            conn, community_id, help_scope(settings), start=start, end=end, quiet_minutes=settings.quiet_minutes
        )
    return questions_summary(
        messages, question_rules(settings), timezone=timezone, first_week=first_week, as_of=as_of, top_n=top_n
    )
