"""The report's ``questions`` section as JSON and as text lines (docs/metrics.md, "Questions and answers")."""

from __future__ import annotations

from analytics.formatting import finite, fmt_int, fmt_number, fmt_pct
from analytics.questions import QuestionFigures, QuestionsSummary
from analytics.render.shared import SHARE_DIGITS, STAT_DIGITS
from analytics.safe_text import clean_name


def _rounded(value: float | None, digits: int) -> float | None:
    value = finite(value)
    return None if value is None else round(value, digits) + 0.0


def figures_json(f: QuestionFigures) -> dict[str, object]:
    """One set of figures as JSON-safe values."""
    return {
        "questions": f.questions,
        "answered_1h": _rounded(f.answered_1h, SHARE_DIGITS),
        "answered_24h": _rounded(f.answered_24h, SHARE_DIGITS),
        "median_minutes_to_answer": _rounded(f.median_minutes, STAT_DIGITS),
        "p90_minutes_to_answer": _rounded(f.p90_minutes, STAT_DIGITS),
        "unanswered": f.unanswered,
    }


def questions_json(summary: QuestionsSummary) -> dict[str, object]:
    """The ``questions`` section of the report JSON.

    Args:
        summary: The section.

    Returns:
        A dict of str, int, float, None, lists and dicts only.
    """
    return {
        **figures_json(summary.total),
        "weekly": [{"week_start": w.start.isoformat(), **figures_json(w.figures)} for w in summary.weeks],
        "channels": [{"channel_id": c.channel_id, "name": c.name, **figures_json(c.figures)} for c in summary.channels],
        "helpers": [
            {
                "member_id": h.member_id,
                "name": h.name,
                "answers": h.answers,
                "median_minutes_to_answer": _rounded(h.median_minutes, STAT_DIGITS),
            }
            for h in summary.helpers
        ],
        "helper_count": summary.helper_count,
        "waiting": [
            {
                "message_id": q.message_id,
                "platform": q.platform,
                "channel": q.channel,
                "asker_id": q.asker_id,
                "asked_at": q.asked_at.isoformat(),
                "waiting_hours": _rounded(q.waiting_hours, STAT_DIGITS),
            }
            for q in summary.waiting
        ],
    }


def fmt_minutes(minutes: float | None) -> str:
    """A wait in words: "45 min", "3.5 h", "2.1 days", or a dash."""
    if minutes is None:
        return fmt_number(None)
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


def figures_line(f: QuestionFigures) -> str:
    """One line: questions, answered within 1 h / 24 h, median and p90 wait, unanswered."""
    return (
        f"{fmt_int(f.questions)} questions · answered within 1 h {fmt_pct(f.answered_1h)}, within 24 h "
        f"{fmt_pct(f.answered_24h)} · median wait {fmt_minutes(f.median_minutes)} (p90 "
        f"{fmt_minutes(f.p90_minutes)}) · {fmt_int(f.unanswered)} unanswered"
    )


def helper_line(name: str, answers: int, median_minutes: float) -> str:
    """A helper: name, answers given, median response time."""
    return f"{clean_name(name)}: {fmt_int(answers)} answers, median {fmt_minutes(median_minutes)}"


TEXT_HELPERS = 5
TEXT_NAME_WIDTH = 24
_TEXT_HEADERS = ("", "Questions", "≤ 1 h", "≤ 24 h", "Median", "p90", "Unanswered")


def figure_cells(f: QuestionFigures) -> list[str]:
    """One row's figures as shown in tables: questions, answered ≤ 1 h and ≤ 24 h, median, p90, unanswered."""
    return [
        fmt_int(f.questions),
        fmt_pct(f.answered_1h),
        fmt_pct(f.answered_24h),
        fmt_minutes(f.median_minutes),
        fmt_minutes(f.p90_minutes),
        fmt_int(f.unanswered),
    ]


def _text_row(name: str, f: QuestionFigures) -> list[str]:
    shown = clean_name(name)
    if len(shown) > TEXT_NAME_WIDTH:
        shown = shown[: TEXT_NAME_WIDTH - 1] + "…"
    return [shown, *figure_cells(f)]


def questions_text(summary: QuestionsSummary) -> list[str]:
    """The terminal report's questions block: the range and each help channel in a table, then the top helpers."""
    title = "QUESTIONS  help channels (docs/metrics.md, Questions and answers)"
    out = ["", title, "─" * len(title)]
    if not summary.total.questions:
        out.append("  No questions in the help channels ([help] channels, Discord forums) in this range.")
        return out
    rows = [_text_row("All help channels", summary.total)]
    rows += [_text_row(f"#{c.name}", c.figures) for c in summary.channels]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_TEXT_HEADERS)]
    for row in [list(_TEXT_HEADERS), *rows]:
        cells = [cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        out.append(("  " + "  ".join(cells)).rstrip())
    if summary.helpers:
        out.append(f"  Top helpers ({fmt_int(summary.helper_count)} gave a first answer):")
        out += [f"    {helper_line(h.name, h.answers, h.median_minutes)}" for h in summary.helpers[:TEXT_HELPERS]]
    return out
