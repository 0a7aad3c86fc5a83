"""The inputs of the analytics: small, pre-aggregated frames that storage queries produce.

Analytics never sees raw events. ``storage.report_frames`` aggregates rollup tables in SQL and hands over these frames;
tests build them by hand. Every frame holds humans only (bots are filtered out by the query). Days are local
calendar days in the community's time zone (the rollups are bucketed that way); instants are UTC-aware.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd

MEMBER_DAYS_COLUMNS = ("member_id", "day", "messages", "replies", "reactions_given", "reactions_received")
"""One row per member and local day with any activity. ``day`` is a ``datetime64[ns]`` at midnight (naive, local).
A member is *active* on a day when ``messages + reactions_given > 0``."""

MEMBERS_COLUMNS = (
    "member_id",
    "name",
    "platform",
    "joined_at",
    "left_at",
    "first_active_at",
    "last_active_at",
    "leaderboard_opt_out",
)
"""One row per (human) member. ``joined_at``: first join, or the first activity when no join was recorded
(history imports); ``left_at``: when they left if they are not a member now, else NaT; ``first_active_at`` and
``last_active_at``: NaT for members who never did anything. Instants are ``datetime64[ns, UTC]``."""

LAST_ACTIVE_COLUMNS = ("member_id", "day")
"""A member's last active local day (``datetime64[ns]`` at midnight, naive) as of some day."""

COMMUNITY_DAYS_COLUMNS = ("day", "messages", "reactions", "joins", "leaves")
"""One row per local day with any activity (human messages, live reactions, joins, leaves)."""

CHANNEL_DAYS_COLUMNS = ("channel_id", "channel", "day", "messages")
"""Messages per channel (threads and topics count as their own channel) and local day."""

HOURLY_COLUMNS = ("day", "hour", "messages", "reactions")
"""One row per local day and local hour (0-23, wall clock in the community's zone) with any activity: human
messages and live reactions given, split by hour as ``COMMUNITY_DAYS_COLUMNS`` counts them per day."""

CHANNELS_COLUMNS = ("channel_id", "name", "parent")
"""Every channel of the community: its name, and its parent channel's name for a thread or forum topic (else
None)."""

CHANNEL_MEMBERS_COLUMNS = ("channel_id", "active_members")
"""Per channel: distinct members who posted in it over ``CommunityFrames.channel_members_start .. as_of``."""

PURCHASES_COLUMNS = (
    "purchase_id",
    "member_id",
    "course",
    "title",
    "amount",
    "currency",
    "purchased_at",
    "refunded_at",
)
"""The purchases ledger: ``member_id`` is NA for purchases of forgotten members; ``amount`` is in major units
(float: euros, stars); ``refunded_at`` is NaT unless refunded."""


SUBSCRIPTION_PERIODS_COLUMNS = (
    "subscription_id",
    "member_id",
    "course",
    "title",
    "starts_at",
    "ends_at",
    "paid_until",
    "amount",
    "currency",
    "refunded_at",
)
"""One row per paid period of a subscription (test payments left out): its own ``starts_at`` .. ``ends_at``, and
``paid_until``, the subscription's current end (moved back when a platform ended it early, e.g. after a refund).
``amount`` (major units) and ``currency`` come from the period's purchase (same platform and charge id), NaN and
None when there is none; ``refunded_at`` is NaT unless that purchase was refunded. Instants are UTC."""


@dataclass(frozen=True)
class CommunityFrames:
    """Everything the analytics needs about one community, as of one local day."""

    community: str
    timezone: ZoneInfo
    as_of: date
    member_days: pd.DataFrame
    members: pd.DataFrame
    community_days: pd.DataFrame
    channel_days: pd.DataFrame
    purchases: pd.DataFrame
    buyer_days: pd.DataFrame | None = None
    """Member days (MEMBER_DAYS_COLUMNS) of buyers from before ``member_days`` begins, for the metrics that follow
    a buyer for 30 days after an older purchase; None when every such window lies inside ``member_days``."""
    last_active_before: pd.DataFrame | None = None
    """``member_id`` and ``day`` (LAST_ACTIVE_COLUMNS): the last active day, before ``member_days`` begins, of the
    members whose ``last_active_at`` is after ``as_of`` (active again later), so that a back-dated report knows
    how long they had been silent on ``as_of``; None when not loaded."""
    hourly: pd.DataFrame | None = None
    """Messages and reactions per local day and hour (HOURLY_COLUMNS) over the loaded days; None when not loaded."""
    channels: pd.DataFrame | None = None
    """Names and parent names of every channel (CHANNELS_COLUMNS); None when not loaded."""
    channel_members: pd.DataFrame | None = None
    """Active members per channel (CHANNEL_MEMBERS_COLUMNS) from ``channel_members_start`` to ``as_of``; None when not
    loaded. ``channel_days`` then reaches back over the same number of days before ``channel_members_start`` too,
    so a channel's range can be compared with the one before it."""
    channel_members_start: date | None = None
    """The first day ``channel_members`` counts (the report range's first Monday)."""
    subscription_periods: pd.DataFrame | None = None
    """Paid periods of subscriptions (SUBSCRIPTION_PERIODS_COLUMNS) that started before the end of ``as_of``; None
    when not loaded."""


def empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
    """An empty frame with the given columns (for communities with no data yet)."""
    return pd.DataFrame({name: pd.Series(dtype="object") for name in columns})
