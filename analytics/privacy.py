"""The small-group rule of rendered reports: no group of fewer than five members is shown exactly.

Result types (``analytics.results``) hold exact counts; every renderer (text, JSON, HTML, charts) passes them
through these helpers, so the rule lives in one place:

* a *count of members* from 1 to 4 is shown as ``"<5"`` (0 is shown as 0: an empty group reveals no one);
* a *share or statistic computed over* a group of 1 to 4 members (the retention of a cohort of 3, the mean over
  2 active members) is hidden: ``None`` in JSON, "<5" or "–" in text and HTML, grey in charts.

Counts of events (messages, reactions, sales, refunds) and amounts of money are not groups of members and are
shown exactly. Named lists (inactive, at risk, top members) name their members by design; their *count* still
follows the rule.
"""

from __future__ import annotations

MIN_GROUP = 5
"""The smallest group of members whose size, or a figure computed over it, is shown exactly."""

SMALL = "<5"
"""How a hidden count is shown."""


def is_small(n: int | None) -> bool:
    """Whether a group of ``n`` members is too small to show (1 to ``MIN_GROUP - 1``).

    Args:
        n: The number of members in the group; ``None`` (unknown) is not small.

    Returns:
        True for 1 to 4 members; False for 0, 5 or more, and ``None``.
    """
    return n is not None and 0 < n < MIN_GROUP


def show_count(n: int) -> str:
    """A count of members as shown in a rendered report.

    Args:
        n: An exact count of members.

    Returns:
        ``"<5"`` for 1 to 4, else the exact number (0 included), e.g. ``"12"``.
    """
    return SMALL if is_small(n) else str(n)


def json_count(n: int) -> int | str:
    """A count of members as written in the report's JSON: the number, or the string ``"<5"`` for 1 to 4.

    Args:
        n: An exact count of members.

    Returns:
        ``n`` itself, or ``"<5"``.
    """
    return SMALL if is_small(n) else n


def hide_share(group: int | None) -> bool:
    """Whether a share or statistic computed over a group of ``group`` members must be hidden.

    A share over an empty group is undefined (the metric code already gives ``None``), and a group of unknown size
    is taken at the producer's word, so only groups of 1 to 4 members hide.

    Args:
        group: The size of the group the figure is computed over (the denominator), e.g. a cohort's size.

    Returns:
        True when the figure must not be shown.
    """
    return is_small(group)


def visible_share(value: float | None, group: int | None) -> float | None:
    """A share, or ``None`` when it is undefined or computed over fewer than ``MIN_GROUP`` members.

    Args:
        value: The exact share (or any statistic over the group).
        group: The size of the group it is computed over.

    Returns:
        ``value``, or ``None`` when it must be hidden.
    """
    return None if value is None or hide_share(group) else value
