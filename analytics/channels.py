"""Channels: where the community talks, who talks there, and whether it is growing or fading."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from analytics.activity import int_column
from analytics.results import ChannelActivity
from analytics.weeks import NO_DAY, day_number, day_numbers, week_starts


def channel_activity(
    channel_days: pd.DataFrame,
    channels: pd.DataFrame,
    channel_members: pd.DataFrame,
    *,
    start: date,
    end: date,
) -> list[ChannelActivity]:
    """Every channel with messages in ``start .. end``, most messages first (ties by name, then id).

    A thread or forum topic is its own channel and names its parent. ``previous_messages`` counts the same number
    of days just before ``start``; ``weekly_messages`` has one value per ISO week from the week of ``start`` to the
    week of ``end`` (the last one partial unless ``end`` is a Sunday).

    Args:
        channel_days: Messages per channel and local day (``CHANNEL_DAYS_COLUMNS``), reaching back to the
            previous range.
        channels: Names and parent names (``CHANNELS_COLUMNS``).
        channel_members: Active members per channel over ``start .. end`` (``CHANNEL_MEMBERS_COLUMNS``).
        start: The range's first day.
        end: The range's last day.

    Returns:
        One :class:`ChannelActivity` per channel with at least one message in the range.
    """
    if not len(channel_days):
        return []
    lo, hi = day_number(start), day_number(end)
    length = hi - lo + 1
    days = day_numbers(channel_days["day"])
    ids = int_column(channel_days, "channel_id")
    counts = int_column(channel_days, "messages")
    known = days != NO_DAY
    current = known & (days >= lo) & (days <= hi)
    previous = known & (days >= lo - length) & (days < lo)
    first_monday = day_number(week_starts(start, end)[0])
    n_weeks = len(week_starts(start, end))
    present = np.unique(ids[current & (counts != 0)])
    if not len(present):
        return []
    index = pd.Index(present)
    slot = index.get_indexer(ids)
    in_current = current & (slot >= 0)
    messages = np.bincount(slot[in_current], weights=counts[in_current], minlength=len(present))
    in_previous = previous & (slot >= 0)
    before = np.bincount(slot[in_previous], weights=counts[in_previous], minlength=len(present))
    weekly = np.bincount(
        slot[in_current] * n_weeks + (days[in_current] - first_monday) // 7,
        weights=counts[in_current],
        minlength=len(present) * n_weeks,
    ).reshape(len(present), n_weeks)
    # bincount sums integer weights as floats: back to exact integers.
    messages, before, weekly = (np.rint(a).astype(np.int64) for a in (messages, before, weekly))
    names = dict(zip(int_column(channels, "channel_id").tolist(), channels["name"].tolist(), strict=True))
    parents = dict(zip(int_column(channels, "channel_id").tolist(), channels["parent"].tolist(), strict=True))
    active = dict(
        zip(
            int_column(channel_members, "channel_id").tolist(),
            int_column(channel_members, "active_members").tolist(),
            strict=True,
        )
    )
    out = []
    for i, channel in enumerate(present.tolist()):
        parent = parents.get(channel)
        out.append(
            ChannelActivity(
                channel_id=channel,
                name=str(names.get(channel) or channel),
                parent=None if parent is None or pd.isna(parent) else str(parent),
                messages=int(messages[i]),
                active_members=int(active.get(channel, 0)),
                previous_messages=int(before[i]),
                weekly_messages=tuple(int(v) for v in weekly[i]),
            )
        )
    return sorted(out, key=lambda c: (-c.messages, c.name, c.channel_id))


def previous_range(start: date, end: date) -> tuple[date, date]:
    """The range of the same number of days just before ``start .. end``."""
    length = (end - start).days + 1
    return start - timedelta(days=length), start - timedelta(days=1)


def channel_rows(channels: Sequence[ChannelActivity]) -> list[tuple[ChannelActivity, bool]]:
    """Channels in display order: each parent followed by its threads; ``True`` marks a thread.

    Args:
        channels: The report's channels, most messages first.

    Returns:
        ``(channel, is_thread)`` pairs; a thread whose parent had no messages in the range follows the others.
        The static report and the dashboard list channels in this order.
    """
    children: dict[str, list[ChannelActivity]] = {}
    for c in channels:
        if c.parent is not None:
            children.setdefault(c.parent, []).append(c)
    parents = {c.name for c in channels if c.parent is None}
    rows: list[tuple[ChannelActivity, bool]] = []
    for c in channels:
        if c.parent is None:
            rows.append((c, False))
            rows.extend((child, True) for child in children.get(c.name, []))
    rows.extend((c, True) for c in channels if c.parent is not None and c.parent not in parents)
    return rows
