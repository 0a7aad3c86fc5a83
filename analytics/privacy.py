"""Who sees an output decides how exact it is: owners see every figure, members never see a group under five.

Result types (``analytics.results``) hold exact counts. Every output has an :class:`Audience`:

* :data:`OWNERS` — owners and admins: the CLI report (text, JSON, HTML, charts), ``/report``, ``/inactive``,
  ``/revenue``, the owners' digest. They run the community and may see each member anyway, so they get exact
  figures: a course community of 30 members would otherwise see "<5" in most cohorts.
* :data:`MEMBERS` — outputs members can see: the digest posted to the community chat, public leaderboards. There
  no group of 1 to 4 members is shown, and neither is any figure from which such a count can be worked out:

  - a *count of members* from 1 to 4 shows as ``"<5"`` (0 is shown: an empty group reveals no one);
  - a *share* is hidden when its group (the denominator) is 1 to 4, or when the members it counts, or the rest of
    the group, are 1 to 4 (20 % of a cohort of 10 is two people);
  - a *difference* of two counts (a week-over-week change) is hidden when either count is hidden.

Counts of events (messages, reactions, sales, refunds) and amounts of money are not groups of members and are
shown exactly to both. Named lists (top members) name their members by design.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_GROUP = 5
"""The smallest group of members whose size, or a figure computed over it, members may see."""

SMALL = "<5"
"""How a hidden count is shown."""


def is_small(n: int | None) -> bool:
    """Whether a group of ``n`` members is too small to show to members (1 to ``MIN_GROUP - 1``).

    Args:
        n: The number of members in the group; ``None`` (unknown) is not small.

    Returns:
        True for 1 to 4 members; False for 0, 5 or more, and ``None``.
    """
    return n is not None and 0 < n < MIN_GROUP


@dataclass(frozen=True, slots=True)
class Audience:
    """Who will see an output: owners (exact figures) or members (small groups suppressed).

    Attributes:
        public: Whether members can see the output.
    """

    public: bool

    def hides(self, n: int | None) -> bool:
        """Whether a count of ``n`` members is hidden from this audience."""
        return self.public and is_small(n)

    def count(self, n: int) -> str:
        """A count of members as shown: ``"<5"`` when hidden, else the number with thousands separators."""
        return SMALL if self.hides(n) else f"{n:,}"

    def share(self, value: float | None, group: int | None, part: int | None = None) -> float | None:
        """A share (or a statistic over a group), or ``None`` when it is undefined or hidden.

        Args:
            value: The exact share.
            group: The size of the group it is computed over (the denominator).
            part: How many members of the group it counts (the numerator), when it counts members; the share is
                then hidden also when ``part`` or ``group - part`` is hidden.

        Returns:
            ``value``, or ``None``.
        """
        if value is None:
            return None
        if self.hides(group):
            return None
        if part is not None and group is not None and (self.hides(part) or self.hides(group - part)):
            return None
        return value

    def hides_change(self, previous: int, current: int) -> bool:
        """Whether the difference of two member counts is hidden (it would reveal a hidden one)."""
        return self.hides(previous) or self.hides(current)


OWNERS = Audience(public=False)
"""Owners and admins: exact figures everywhere."""

MEMBERS = Audience(public=True)
"""Members: groups under :data:`MIN_GROUP` suppressed."""


def members_counted(share: float | None, group: int) -> int | None:
    """The number of members a share of ``group`` counts (``round(share × group)``), None when undefined."""
    return None if share is None else round(share * group)
