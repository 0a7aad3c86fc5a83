"""A synthetic community for ``python -m bench analytics``: raw events as numpy arrays, and the rollups of them.

One community (time zone Europe/Berlin) observed for ``weeks`` ISO weeks from Monday 2025-01-06. Everything is
drawn with ``np.random.default_rng(seed)`` in a fixed order, vectorised, so the same parameters give the same
community on any machine:

- **Members.** Humans get Pareto activity weights (a few members do most of the talking), a join day (a founding
  cohort in the first week, then steady joins), and an active span that ends early for churners. Some never do
  anything; some only react (lurkers); founders brought in by a history import have no join event (their first
  activity stands in for the join); a few opted out of leaderboards. Three bot accounts post ~1 % of the
  messages (stored, never counted).
- **Membership events.** Joins; leaves some days after a churner's last activity; some leavers rejoin, and some of
  those leave again (each leave counts).
- **Events.** Each event is a member's message or reaction on a local day inside the member's span, at a uniform
  time of that day (so the local day is exact, DST included). Messages go to permanent channels (Zipf
  popularity) or to short-lived threads (their own channels); ~20 % are replies to a recent message's author
  (sometimes their own, sometimes a bot's, sometimes unknown). Reactions land on a recent message: its author
  receives them (unless unknown, the reactor, or a bot).
- **Commerce.** Three courses: one whose price was cut during the period and one A/B-tested at two prices (EUR,
  two price points each), and one sold for Telegram Stars; ~6 % of purchases are refunded (refunds after the last
  day are left out: they have not happened yet), ~1 % belong to members who asked to be forgotten.
- **Subscriptions.** A monthly course that ~2 % of the members subscribe to (30-, 31- and 28-day periods, and a
  weekly plan), renewed on time, a little late, or after a lapse; ~5 % end with a refunded period. Every paid
  period is also a purchase, as the bot records it. Drawn from a generator of their own, after everything else.

:func:`rollups` aggregates the events exactly as ``storage.rollups`` defines the rollup tables (humans only;
``replies`` are replies to someone else; reactions received count on the day they were given), and
:func:`write_database` bulk-loads them into a freshly migrated SQLite database with storage's encodings (``Date``
as ISO text, ``UTCDateTime`` as epoch milliseconds). The raw event tables stay empty: analytics never reads them.
:func:`ensure` caches the database and the event arrays (``.npz``) under a key of every parameter that shapes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise, repeat
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bench.measure import checkpoint, remove_sqlite
from storage.engine import make_engine
from storage.migrate import MIGRATIONS, head_revision, upgrade
from storage.types import to_millis

# Bump when the generated community changes, so cached databases are rebuilt.
SYNTHETIC_VERSION = 3  # 2: threads hang off a parent channel; hourly and channel-member rollups; 3: subscriptions

COMMUNITY = "bench-analytics"
TIMEZONE = "Europe/Berlin"
FIRST_DAY = date(2025, 1, 6)  # a Monday
EPOCH = date(1970, 1, 1)

BOTS = 3
CHANNELS = 30  # permanent channels; threads come and go on top of them
THREAD_DAYS = 3  # a thread lives this many days ...
THREADS_AT_ONCE = 4  # ... and this many are open at a time

# Course key, title, currency, price before/A, price after/B (minor units; whole stars for XTR), share of sales.
COURSES = (
    ("python-basics", "Python Basics", "EUR", 4900, 3900, 0.5),
    ("async-deep-dive", "Async Deep Dive", "EUR", 9900, 7900, 0.3),
    ("stars-club", "Stars Club", "XTR", 250, 250, 0.2),
)
# The monthly course: its subscriptions' paid periods are purchases too (course id len(COURSES) + 1).
SUBSCRIPTION_COURSE = ("monthly-club", "Monthly Club", "EUR")
# Period lengths in days (calendar months, and a weekly plan whose MRR is scaled), their shares and prices (cents).
PERIOD_DAYS = (30, 31, 28, 7)
PERIOD_SHARES = (0.5, 0.3, 0.1, 0.1)
PERIOD_PRICES = (1500, 1500, 1500, 400)
SUBSCRIBER_SHARE = 0.02
PRICE_CUT_SHARE = 0.55  # python-basics costs less from this share of the period on
REFUND_SHARE = 0.06
FORGOTTEN_SHARE = 0.01

MESSAGE = 0
REACTION = 1
JOIN = 0
LEAVE = 1
NONE = -1  # "no member" in the int32 id arrays

I8 = NDArray[np.int8]
I16 = NDArray[np.int16]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
Bools = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Params:
    """What shapes the community (the cache key is derived from these)."""

    members: int
    events: int
    weeks: int
    seed: int

    @property
    def days(self) -> int:
        return self.weeks * 7


@dataclass(frozen=True)
class Community:
    """The raw data: every array is parallel within its group; days are indexes from ``FIRST_DAY``.

    Member ids are 1-based (humans ``1..members``, then the bots), channel ids 1-based, ``NONE`` (-1) is no member.
    """

    midnight_ms: I64  # UTC instant of each local midnight, days + 1 values (day lengths follow DST)
    # members (index i is member id i + 1)
    is_bot: Bools
    platform: I8  # 0 discord, 1 telegram
    opt_out: Bools
    first_seen_ms: I64
    # membership events
    ms_member: I32
    ms_kind: I8  # JOIN / LEAVE
    ms_day: I16
    ms_ms: I64
    # activity events, in time order
    ev_member: I32
    ev_day: I16
    ev_offset: I32  # milliseconds after the local midnight
    ev_kind: I8  # MESSAGE / REACTION
    ev_channel: I16  # messages: channel id; reactions: NONE
    ev_reply: Bools  # messages: is a reply
    ev_other: I32  # messages: the replied-to author; reactions: the reacted message's author (NONE: unknown)
    n_channels: np.int64
    # purchases (course is an index into COURSES)
    pu_member: I32
    pu_course: I8
    pu_amount: I64
    pu_day: I16
    pu_ms: I64
    pu_refund_day: I16  # NONE: not refunded
    pu_refund_ms: I64
    # subscriptions (index s), and their paid periods in order; each period is also a purchase of the monthly course
    su_member: I32
    su_paid_until_ms: I64  # the subscription's ends_at: the last period's end, or its refund when refunded
    sp_sub: I32
    sp_start_ms: I64
    sp_end_ms: I64
    sp_amount: I64
    sp_refund_ms: I64  # NONE: not refunded

    @property
    def members(self) -> int:
        return len(self.is_bot)

    @property
    def days(self) -> int:
        return len(self.midnight_ms) - 1

    def save(self, path: Path) -> None:
        np.savez_compressed(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> Community:
        with np.load(path) as data:
            values: dict[str, Any] = {f.name: data[f.name] for f in fields(cls)}
        return cls(**values)


def first_day_number() -> int:
    return (FIRST_DAY - EPOCH).days


def local_midnights(days: int) -> I64:
    tz = ZoneInfo(TIMEZONE)
    return np.array(
        [
            to_millis(datetime.combine(FIRST_DAY + timedelta(days=i), datetime.min.time(), tzinfo=tz))
            for i in range(days + 1)
        ],
        dtype=np.int64,
    )


def _pick(rng: np.random.Generator, weights: F64, n: int) -> I64:
    """``n`` indexes drawn with probability proportional to ``weights``."""
    cum = np.cumsum(weights)
    return np.asarray(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), dtype=np.int64)


def _recent(rng: np.random.Generator, position: I64, mean_back: float) -> I64:
    """An earlier position: ``position - k`` with ``k >= 1`` geometric (mean ``mean_back``); -1 when before 0."""
    back = rng.geometric(1.0 / mean_back, len(position))
    earlier = position - back
    return np.where(earlier >= 0, earlier, -1)


def generate(params: Params) -> Community:
    """Draw the community (vectorised; 20 million events take a few seconds)."""
    if params.members < 10 or params.events < 100 or params.weeks < 2:
        raise ValueError("need at least 10 members, 100 events and 2 weeks")
    rng = np.random.default_rng(params.seed)
    m, d = params.members, params.days
    midnight = local_midnights(d)
    day_ms = np.diff(midnight)

    # --- members ---------------------------------------------------------------------------------------------
    platform = (rng.random(m) < 0.4).astype(np.int8)
    opt_out = rng.random(m) < 0.03
    founder = rng.random(m) < 0.15
    join_day = np.where(founder, rng.integers(0, 7, m), rng.integers(0, d, m))
    imported = founder & (rng.random(m) < 0.3)  # history import: no join event
    silent = (rng.random(m) < 0.08) & ~imported  # joined, never did anything
    churner = rng.random(m) < 0.45
    lifetime = 1 + rng.exponential(90.0, m)
    last_day = np.where(churner, np.minimum(join_day + lifetime.astype(np.int64), d - 1), d - 1)
    span = last_day - join_day + 1
    weight = np.minimum(rng.pareto(1.3, m) + 1.0, 400.0)
    weight[silent] = 0.0
    lurker = rng.random(m) < 0.12
    p_react = np.where(lurker, 1.0, rng.uniform(0.05, 0.4, m))
    join_offset = (rng.random(m) * day_ms[join_day]).astype(np.int64)
    join_ms = midnight[join_day] + join_offset

    # --- membership events -------------------------------------------------------------------------------------
    ids = np.arange(1, m + 1, dtype=np.int64)
    parts: list[tuple[I64, int, I64]] = [(ids[~imported], JOIN, join_day[~imported])]
    leaves = churner & (rng.random(m) < 0.6)
    leave_day = last_day + rng.integers(1, 22, m)
    leaves &= leave_day < d
    parts.append((ids[leaves], LEAVE, leave_day[leaves]))
    rejoins = leaves & (rng.random(m) < 0.1)
    rejoin_day = leave_day + rng.integers(1, 31, m)
    rejoins &= rejoin_day < d
    parts.append((ids[rejoins], JOIN, rejoin_day[rejoins]))
    again = rejoins & (rng.random(m) < 0.3)
    again_day = rejoin_day + rng.integers(1, 31, m)
    again &= again_day < d
    parts.append((ids[again], LEAVE, again_day[again]))
    ms_member = np.concatenate([p[0] for p in parts]).astype(np.int32)
    ms_kind = np.concatenate([np.full(len(p[0]), p[1], dtype=np.int8) for p in parts])
    ms_day = np.concatenate([p[2] for p in parts]).astype(np.int64)
    ms_ms = midnight[ms_day] + (rng.random(len(ms_day)) * day_ms[ms_day]).astype(np.int64)
    ms_ms[: len(parts[0][0])] = join_ms[~imported]  # the first join is the one drawn with the member

    # --- events --------------------------------------------------------------------------------------------------
    n_bot = params.events // 100
    n_human = params.events - n_bot
    # Events per member (proportional to weight x span). Activity comes in bursts: a member is active on some days
    # of their span (spread at random) with a few events each (median ~5: people reply back and forth), so that
    # DAU/MAU looks like a real community's (~0.2) rather than everybody posting a little every day.
    eff = weight * span
    per_member = rng.multinomial(n_human, eff / eff.sum())
    burst = 1.0 + rng.lognormal(np.log(4.0), 0.7, m)
    active_days = np.clip(np.rint(per_member / burst), 1, span).astype(np.uint64)
    who = np.repeat(np.arange(m), per_member)
    slot = (rng.random(n_human) * active_days[who]).astype(np.uint64)  # which of the member's active days
    mixed = who.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + (slot + np.uint64(1)) * np.uint64(
        0xBF58476D1CE4E5B9
    )
    mixed ^= mixed >> np.uint64(29)
    mixed *= np.uint64(0x94D049BB133111EB)
    mixed ^= mixed >> np.uint64(32)
    day = join_day[who] + (mixed % span[who].astype(np.uint64)).astype(np.int64)
    del slot, mixed
    kind = (rng.random(n_human) < p_react[who]).astype(np.int8)
    member = np.concatenate([who + 1, m + 1 + rng.integers(0, BOTS, n_bot)]).astype(np.int32)
    del who
    day = np.concatenate([day, rng.integers(0, d, n_bot)])
    kind = np.concatenate([kind, np.full(n_bot, MESSAGE, dtype=np.int8)])
    # Shuffle, then order by day (a radix sort: days fit in 16 bits), so each day's events come in random order;
    # their times are that day's sorted uniform order statistics (normalised sums of exponential spacings), so the
    # arrays end up in time order without sorting 64-bit times.
    order = rng.permutation(params.events)
    order = order[np.argsort(day[order].astype(np.uint16), kind="stable")]
    member, day, kind = member[order], day[order], kind[order]
    del order
    per_day = np.bincount(day, minlength=d)
    starts = np.r_[0, np.cumsum(per_day)[:-1]]
    gaps = rng.exponential(1.0, params.events + d)
    # Each day gets per_day[i] + 1 spacings: the events' and one closing the day.
    slot = np.arange(params.events) + day  # the position of each event's spacing among all spacings
    sums = np.cumsum(gaps)
    day_first = starts + np.arange(d)  # position of each day's first spacing
    before_day = np.where(day_first > 0, sums[np.maximum(day_first - 1, 0)], 0.0)
    day_total = sums[day_first + per_day] - before_day
    fraction = (sums[slot] - before_day[day]) / day_total[day]
    offset = np.minimum((fraction * day_ms[day]).astype(np.int64), day_ms[day] - 1)
    del gaps, sums, slot, fraction

    is_message = kind == MESSAGE
    message_at = np.flatnonzero(is_message)  # event positions of the messages, in time order
    n_messages = len(message_at)
    channel = np.full(params.events, NONE, dtype=np.int64)
    popularity = np.asarray(1.0 / np.arange(1, CHANNELS + 1) ** 0.9, dtype=np.float64)
    in_thread = rng.random(n_messages) < 0.15
    permanent = _pick(rng, popularity, n_messages) + 1
    thread = (
        CHANNELS + 1 + (day[message_at] // THREAD_DAYS) * THREADS_AT_ONCE + rng.integers(0, THREADS_AT_ONCE, n_messages)
    )
    channel[message_at] = np.where(in_thread, thread, permanent)
    n_channels = CHANNELS + ((d + THREAD_DAYS - 1) // THREAD_DAYS) * THREADS_AT_ONCE

    reply = np.zeros(params.events, dtype=np.bool_)
    other = np.full(params.events, NONE, dtype=np.int32)
    is_reply = rng.random(n_messages) < 0.2
    replied = _recent(rng, np.flatnonzero(is_reply), 30.0)  # index into the messages
    replied_author = np.where(replied >= 0, member[message_at[np.maximum(replied, 0)]], NONE)
    replied_author = np.where(rng.random(len(replied)) < 0.05, NONE, replied_author)  # author unknown
    reply[message_at[is_reply]] = True
    other[message_at[is_reply]] = replied_author
    reaction_at = np.flatnonzero(~is_message)
    before = np.searchsorted(message_at, reaction_at)  # messages strictly before each reaction
    target = _recent(rng, before, 50.0)
    target_author = np.where(target >= 0, member[message_at[np.maximum(target, 0)]], NONE)
    target_author = np.where(rng.random(len(reaction_at)) < 0.1, NONE, target_author)  # author not named
    other[reaction_at] = target_author

    # First seen: the earliest of the member's first join and first own event (the join day otherwise).
    first_seen = np.full(m + BOTS, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_seen, member - 1, midnight[day] + offset)
    first_seen[:m] = np.minimum(first_seen[:m], join_ms)
    first_seen[m:] = np.where(first_seen[m:] == np.iinfo(np.int64).max, midnight[0], first_seen[m:])

    # --- purchases -----------------------------------------------------------------------------------------------
    n_purchases = max(20, m * 6 // 100)
    buyer = _pick(rng, np.sqrt(weight) + 0.3, n_purchases)
    window = np.minimum(span[buyer] + 14, d - join_day[buyer])
    pu_day = join_day[buyer] + (rng.random(n_purchases) * window).astype(np.int64)
    pu_ms = midnight[pu_day] + (rng.random(n_purchases) * day_ms[pu_day]).astype(np.int64)
    course = _pick(rng, np.array([c[5] for c in COURSES]), n_purchases)
    price_a = np.array([c[3] for c in COURSES], dtype=np.int64)[course]
    price_b = np.array([c[4] for c in COURSES], dtype=np.int64)[course]
    later = np.where(course == 0, pu_day >= int(d * PRICE_CUT_SHARE), rng.random(n_purchases) < 0.4)
    amount = np.where(later, price_b, price_a)
    pu_member = np.where(rng.random(n_purchases) < FORGOTTEN_SHARE, NONE, buyer + 1)
    refunded = rng.random(n_purchases) < REFUND_SHARE
    refund_day = pu_day + rng.integers(0, 21, n_purchases)
    refunded &= refund_day < d
    refund_ms = np.where(
        refunded,
        midnight[np.minimum(refund_day, d - 1)] + (rng.random(n_purchases) * day_ms[np.minimum(refund_day, d - 1)]),
        NONE,
    ).astype(np.int64)
    # A same-day refund follows its purchase (and stays on its day).
    refund_end = midnight[np.minimum(refund_day, d - 1) + 1] - 1
    refund_ms = np.where(refunded, np.minimum(np.maximum(refund_ms, pu_ms + 1), refund_end), NONE)
    order = np.argsort(pu_ms, kind="stable")
    subs = _subscriptions(params.seed, m, d, join_day, midnight)

    return Community(
        midnight_ms=midnight,
        is_bot=np.r_[np.zeros(m, dtype=np.bool_), np.ones(BOTS, dtype=np.bool_)],
        platform=np.r_[platform, np.zeros(BOTS, dtype=np.int8)],
        opt_out=np.r_[opt_out, np.zeros(BOTS, dtype=np.bool_)],
        first_seen_ms=first_seen,
        ms_member=ms_member,
        ms_kind=ms_kind,
        ms_day=ms_day.astype(np.int16),
        ms_ms=ms_ms,
        ev_member=member,
        ev_day=day.astype(np.int16),
        ev_offset=offset.astype(np.int32),
        ev_kind=kind,
        ev_channel=channel.astype(np.int16),
        ev_reply=reply,
        ev_other=other,
        n_channels=np.int64(n_channels),
        pu_member=pu_member[order].astype(np.int32),
        pu_course=course[order].astype(np.int8),
        pu_amount=amount[order],
        pu_day=pu_day[order].astype(np.int16),
        pu_ms=pu_ms[order],
        pu_refund_day=np.where(refunded, refund_day, NONE)[order].astype(np.int16),
        pu_refund_ms=refund_ms[order],
        **subs,
    )


def _subscriptions(seed: int, m: int, d: int, join_day: I64, midnight: I64) -> dict[str, Any]:
    """Subscriptions to the monthly course, drawn from their own generator (the rest of the community is unchanged).

    Each starts on a day from the member's join on and renews period after period: on time (at the old end, or
    within hours), or after a lapse of days (a new period that is no renewal), until it stops or the data ends.
    Some have their last period refunded, which ends access at the refund.
    """
    rng = np.random.default_rng([seed, 16])
    n = max(10, m * int(SUBSCRIBER_SHARE * 100) // 100)
    member = rng.integers(0, m, n)
    kinds = _pick(rng, np.array(PERIOD_SHARES), n)
    data_end = int(midnight[d])
    day = 86_400_000
    su_member, paid_until, sp_sub, starts, ends, amounts, refunds = [], [], [], [], [], [], []
    for s in range(n):
        first = int(join_day[member[s]]) + int(rng.integers(0, max(1, d - int(join_day[member[s]]))))
        first = min(first, d - 1)
        at = int(midnight[first]) + int(rng.random() * (int(midnight[first + 1]) - int(midnight[first])))
        length = PERIOD_DAYS[int(kinds[s])] * day
        last_end = at
        while at < data_end:
            sp_sub.append(s)
            starts.append(at)
            ends.append(at + length)
            amounts.append(PERIOD_PRICES[int(kinds[s])])
            refunds.append(NONE)
            last_end = at + length
            draw = rng.random()
            if draw < 0.6:
                at = last_end  # renewed at the old end
            elif draw < 0.75:
                at = last_end + int(rng.integers(1, 3 * 3_600_000))  # renewed a little late, within the grace
            elif draw < 0.83:
                at = last_end + int(rng.integers(2, 15)) * day  # lapsed, then came back
            else:
                break
        until = last_end
        if rng.random() < 0.05:
            refund_at = starts[-1] + int(rng.integers(3_600_000, 3 * day))
            if refund_at < data_end:
                refunds[-1] = refund_at
                until = refund_at
        su_member.append(int(member[s]) + 1)
        paid_until.append(until)
    return {
        "su_member": np.array(su_member, dtype=np.int32),
        "su_paid_until_ms": np.array(paid_until, dtype=np.int64),
        "sp_sub": np.array(sp_sub, dtype=np.int32),
        "sp_start_ms": np.array(starts, dtype=np.int64),
        "sp_end_ms": np.array(ends, dtype=np.int64),
        "sp_amount": np.array(amounts, dtype=np.int64),
        "sp_refund_ms": np.array(refunds, dtype=np.int64),
    }


# --- rollups -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollups:
    """The rollup tables of the community, as storage maintains them (frames with day indexes)."""

    member_days: pd.DataFrame  # day, member_id, messages, replies, reactions_given, reactions_received
    member_activity: pd.DataFrame  # member_id, first/last_active_ms, messages, reactions_given, first/last_message_ms
    community_days: pd.DataFrame  # day, messages, reactions, joins, leaves
    channel_days: pd.DataFrame  # day, channel_id, messages
    memberships: pd.DataFrame  # member_id, first_joined_ms, last_joined_ms, last_left_ms (NONE: null)
    hourly: pd.DataFrame  # day, hour (local wall clock), messages, reactions
    channel_members: pd.DataFrame  # day, channel_id, member_id, messages


def channel_name(channel: int) -> str:
    """The name of channel ``channel`` (1-based): permanent channels, then threads."""
    return f"channel-{channel}" if channel <= CHANNELS else f"thread-{channel}"


def channel_parent(channel: int) -> int | None:
    """The parent channel of a thread (threads hang off the permanent channels in turn), None for a channel."""
    return None if channel <= CHANNELS else (channel - CHANNELS - 1) % CHANNELS + 1


def local_hours(c: Community) -> I64:
    """The local wall-clock hour (0-23, ``TIMEZONE``) of every activity event."""
    at = c.midnight_ms[c.ev_day.astype(np.int64)] + c.ev_offset
    local = pd.DatetimeIndex(at.astype("datetime64[ms]")).tz_localize("UTC").tz_convert(TIMEZONE)
    return np.asarray(local.hour, dtype=np.int64)


def rollups(c: Community) -> Rollups:
    """Aggregate the events exactly as ``storage.rollups.compute_rollups`` defines the rollups."""
    humans = c.members - BOTS
    human = c.ev_member <= humans
    message = c.ev_kind == MESSAGE
    reaction = ~message
    day = c.ev_day.astype(np.int64)
    member = c.ev_member.astype(np.int64)
    width = humans + 1

    # member_daily_activity: what each human did per local day, plus reactions received from other humans' reactions.
    # Counted with one bincount per block of days over (day, member, what) cells (the events are in day order).
    received = human & reaction & (c.ev_other != NONE) & (c.ev_other <= humans) & (c.ev_other != c.ev_member)
    counted_reply = message & c.ev_reply & (c.ev_other != c.ev_member)  # a reply to nobody known still counts
    what = np.where(message, np.where(counted_reply, 1, 0), 2).astype(np.int64)  # 0 message, 1 reply, 2 given
    blocks: list[pd.DataFrame] = []
    block_days = max(1, 20_000_000 // (4 * width))
    bounds = np.searchsorted(c.ev_day, np.arange(0, c.days + block_days, block_days))
    for block, (lo, hi) in enumerate(pairwise(bounds.tolist())):
        base = block * block_days
        part = slice(lo, hi)
        own, got = human[part], received[part]
        cells = np.concatenate(
            [
                ((day[part][own] - base) * width + member[part][own]) * 4 + what[part][own],
                ((day[part][got] - base) * width + c.ev_other[part][got]) * 4 + 3,
            ]
        )
        counts = np.bincount(cells, minlength=block_days * width * 4).reshape(-1, 4)
        key = np.flatnonzero(counts.any(axis=1))
        counts = counts[key]
        blocks.append(
            pd.DataFrame(
                {
                    "day": base + key // width,
                    "member_id": key % width,
                    "messages": counts[:, 0] + counts[:, 1],
                    "replies": counts[:, 1],
                    "reactions_given": counts[:, 2],
                    "reactions_received": counts[:, 3],
                }
            )
        )
    member_days = pd.concat(blocks, ignore_index=True)
    del blocks, what

    # member_activity: first/last activity (messages and reactions given) and message times, lifetime counts.
    at = c.midnight_ms[day] + c.ev_offset
    who, when, is_msg = member[human], at[human], message[human]
    big, none = np.iinfo(np.int64).max, np.int64(NONE)
    first_active, last_active = np.full(width, big), np.full(width, none)
    first_msg, last_msg = np.full(width, big), np.full(width, none)
    np.minimum.at(first_active, who, when)
    np.maximum.at(last_active, who, when)
    np.minimum.at(first_msg, who[is_msg], when[is_msg])
    np.maximum.at(last_msg, who[is_msg], when[is_msg])
    ids = np.flatnonzero(last_active != NONE)
    member_activity = pd.DataFrame(
        {
            "member_id": ids,
            "first_active_ms": first_active[ids],
            "last_active_ms": last_active[ids],
            "messages": np.bincount(who[is_msg], minlength=width)[ids],
            "reactions_given": np.bincount(who[~is_msg], minlength=width)[ids],
            "first_message_ms": np.where(first_msg[ids] == big, NONE, first_msg[ids]),
            "last_message_ms": last_msg[ids],
        }
    )
    del at, who, when, is_msg

    # community_daily_totals and channel_daily_activity (human messages; reactions by humans on anything).
    d = c.days
    joins = c.ms_day[c.ms_kind == JOIN].astype(np.int64)
    leaves = c.ms_day[c.ms_kind == LEAVE].astype(np.int64)
    totals = pd.DataFrame(
        {
            "day": np.arange(d),
            "messages": np.bincount(day[human & message], minlength=d),
            "reactions": np.bincount(day[human & reaction], minlength=d),
            "joins": np.bincount(joins, minlength=d),
            "leaves": np.bincount(leaves, minlength=d),
        }
    )
    community_days = totals.iloc[
        np.flatnonzero(totals[["messages", "reactions", "joins", "leaves"]].to_numpy().any(axis=1))
    ]
    posted = human & message
    n_ch = int(c.n_channels) + 1
    per_channel = np.bincount(day[posted] * n_ch + c.ev_channel[posted], minlength=d * n_ch)
    nonzero = np.flatnonzero(per_channel)
    channel_days = pd.DataFrame(
        {"day": nonzero // n_ch, "channel_id": nonzero % n_ch, "messages": per_channel[nonzero]}
    )

    # members: first join, last join, last leave.
    first_joined = np.full(width, np.iinfo(np.int64).max, dtype=np.int64)
    last_joined = np.full(width, NONE, dtype=np.int64)
    last_left = np.full(width, NONE, dtype=np.int64)
    is_join = c.ms_kind == JOIN
    np.minimum.at(first_joined, c.ms_member[is_join], c.ms_ms[is_join])
    np.maximum.at(last_joined, c.ms_member[is_join], c.ms_ms[is_join])
    np.maximum.at(last_left, c.ms_member[~is_join], c.ms_ms[~is_join])
    first_joined[first_joined == np.iinfo(np.int64).max] = NONE
    memberships = pd.DataFrame(
        {
            "member_id": np.arange(1, width),
            "first_joined_ms": first_joined[1:],
            "last_joined_ms": last_joined[1:],
            "last_left_ms": last_left[1:],
        }
    )
    # community_hourly_activity: community_daily_totals' messages and reactions split by local hour.
    hour = local_hours(c)
    cells = np.bincount(day[human & message] * 24 + hour[human & message], minlength=d * 24)
    given = np.bincount(day[human & reaction] * 24 + hour[human & reaction], minlength=d * 24)
    busy = np.flatnonzero(cells + given)
    hourly = pd.DataFrame({"day": busy // 24, "hour": busy % 24, "messages": cells[busy], "reactions": given[busy]})
    del hour, cells, given

    # channel_member_daily: human messages per local day, channel and author.
    keys, per_key = np.unique((day[posted] * n_ch + c.ev_channel[posted]) * width + member[posted], return_counts=True)
    channel_members = pd.DataFrame(
        {
            "day": keys // (n_ch * width),
            "channel_id": keys // width % n_ch,
            "member_id": keys % width,
            "messages": per_key,
        }
    )
    return Rollups(
        member_days,
        member_activity,
        community_days.reset_index(drop=True),
        channel_days,
        memberships,
        hourly,
        channel_members,
    )


# --- database ----------------------------------------------------------------------------------------------------


def _nullable(values: I64) -> list[int | None]:
    return [None if v == NONE else v for v in values.tolist()]


def _chunks(rows: Iterator[tuple[Any, ...]], size: int = 500_000) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_database(path: Path, c: Community, r: Rollups) -> None:
    """Create ``path`` with storage's migrations and bulk-load the community's rows and rollups into it."""
    remove_sqlite(path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    day_text = np.array([(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(c.days)], dtype=object)
    humans = c.members - BOTS
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        cid = 1
        created = to_millis(datetime.combine(FIRST_DAY, datetime.min.time(), tzinfo=UTC))
        conn.execute(
            "INSERT INTO communities (id, name, timezone, created_at) VALUES (?, ?, ?, ?)",
            (cid, COMMUNITY, TIMEZONE, created),
        )
        n_ch = int(c.n_channels)
        conn.executemany(
            "INSERT INTO channels (id, community_id, platform, platform_channel_id, name, parent_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    cid,
                    "discord",
                    str(900_000_000_000_000_000 + i),
                    channel_name(i),
                    channel_parent(i),
                )
                for i in range(1, n_ch + 1)
            ],
        )
        ms = r.memberships
        first_joined = _nullable(ms["first_joined_ms"].to_numpy())
        last_joined = _nullable(ms["last_joined_ms"].to_numpy())
        last_left = _nullable(ms["last_left_ms"].to_numpy())
        platforms = np.where(c.platform == 1, "telegram", "discord")
        rows = []
        for i in range(c.members):
            mid = i + 1
            bot = mid > humans
            rows.append(
                (
                    mid,
                    cid,
                    str(platforms[i]),
                    str(10**15 + mid) if bot else str(100_000_000 + mid),
                    f"helper-bot-{mid - humans}" if bot else f"member-{mid}",
                    int(bot),
                    int(c.first_seen_ms[i]),
                    None if bot else first_joined[i],
                    None if bot else last_joined[i],
                    None if bot else last_left[i],
                    0,
                    int(c.opt_out[i]),
                )
            )
        conn.executemany(
            "INSERT INTO members (id, community_id, platform, platform_user_id, display_name, is_bot, first_seen_at, "
            "first_joined_at, last_joined_at, last_left_at, nudges_opt_out, leaderboard_opt_out) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        del rows
        md = r.member_days
        for chunk in _chunks(
            zip(
                repeat(cid),
                day_text[md["day"].to_numpy()].tolist(),
                md["member_id"].tolist(),
                md["messages"].tolist(),
                md["replies"].tolist(),
                md["reactions_given"].tolist(),
                md["reactions_received"].tolist(),
                strict=False,
            )
        ):
            conn.executemany(
                "INSERT INTO member_daily_activity (community_id, day, member_id, messages, replies, reactions_given, "
                "reactions_received) VALUES (?, ?, ?, ?, ?, ?, ?)",
                chunk,
            )
        ma = r.member_activity
        conn.executemany(
            "INSERT INTO member_activity (member_id, community_id, first_active_at, last_active_at, first_message_at, "
            "last_message_at, messages, reactions_given) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            zip(
                ma["member_id"].tolist(),
                repeat(cid),
                ma["first_active_ms"].tolist(),
                ma["last_active_ms"].tolist(),
                _nullable(ma["first_message_ms"].to_numpy()),
                _nullable(ma["last_message_ms"].to_numpy()),
                ma["messages"].tolist(),
                ma["reactions_given"].tolist(),
                strict=False,
            ),
        )
        cd = r.community_days
        conn.executemany(
            "INSERT INTO community_daily_totals (community_id, day, messages, reactions, joins, leaves) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            zip(
                repeat(cid),
                day_text[cd["day"].to_numpy()].tolist(),
                cd["messages"].tolist(),
                cd["reactions"].tolist(),
                cd["joins"].tolist(),
                cd["leaves"].tolist(),
                strict=False,
            ),
        )
        hr = r.hourly
        conn.executemany(
            "INSERT INTO community_hourly_activity (community_id, day, hour, messages, reactions) "
            "VALUES (?, ?, ?, ?, ?)",
            zip(
                repeat(cid),
                day_text[hr["day"].to_numpy()].tolist(),
                hr["hour"].tolist(),
                hr["messages"].tolist(),
                hr["reactions"].tolist(),
                strict=False,
            ),
        )
        cm = r.channel_members
        for chunk in _chunks(
            zip(
                repeat(cid),
                day_text[cm["day"].to_numpy()].tolist(),
                cm["channel_id"].tolist(),
                cm["member_id"].tolist(),
                cm["messages"].tolist(),
                strict=False,
            )
        ):
            conn.executemany(
                "INSERT INTO channel_member_daily (community_id, day, channel_id, member_id, messages) "
                "VALUES (?, ?, ?, ?, ?)",
                chunk,
            )
        ch = r.channel_days
        conn.executemany(
            "INSERT INTO channel_daily_activity (community_id, day, channel_id, messages) VALUES (?, ?, ?, ?)",
            zip(
                repeat(cid),
                day_text[ch["day"].to_numpy()].tolist(),
                ch["channel_id"].tolist(),
                ch["messages"].tolist(),
                strict=False,
            ),
        )
        conn.executemany(
            "INSERT INTO courses (id, community_id, course_key, title, price_stars, price, currency, active) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
            [
                (i + 1, cid, key, title, b if cur == "XTR" else None, None if cur == "XTR" else b / 100, cur)
                for i, (key, title, cur, _a, b, _share) in enumerate(COURSES)
            ],
        )
        currencies = [COURSES[int(k)][2] for k in c.pu_course.tolist()]
        conn.executemany(
            "INSERT INTO purchases (id, community_id, member_id, course_id, platform, charge_id, provider_charge_id, "
            "source, amount, currency, purchased_at, granted_by_member_id) "
            "VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, NULL)",
            [
                (
                    i + 1,
                    cid,
                    None if member == NONE else member,
                    course + 1,
                    "telegram" if currency == "XTR" else "discord",
                    f"charge-{i + 1}",
                    "telegram_stars" if currency == "XTR" else "discord_entitlement",
                    amount,
                    currency,
                    at,
                )
                for i, (member, course, amount, currency, at) in enumerate(
                    zip(
                        c.pu_member.tolist(),
                        c.pu_course.tolist(),
                        c.pu_amount.tolist(),
                        currencies,
                        c.pu_ms.tolist(),
                        strict=True,
                    )
                )
            ],
        )
        refunded = np.flatnonzero(c.pu_refund_day != NONE)
        conn.executemany(
            "INSERT INTO refunds (id, purchase_id, refunded_at, reason, refunded_by_member_id) "
            "VALUES (?, ?, ?, NULL, NULL)",
            [(n + 1, int(i) + 1, int(c.pu_refund_ms[i])) for n, i in enumerate(refunded.tolist())],
        )
        _write_subscriptions(conn, cid, c, first_refund_id=len(refunded) + 1)
        conn.execute("COMMIT")
    finally:
        conn.close()
    checkpoint(path)


def _write_subscriptions(conn: sqlite3.Connection, cid: int, c: Community, *, first_refund_id: int) -> None:
    """The monthly course, its subscriptions and paid periods, and each period's purchase (and refund).

    Written as the bot writes a Discord subscription: the period and its purchase share the platform and charge id.
    """
    key, title, currency = SUBSCRIPTION_COURSE
    course_id = len(COURSES) + 1
    conn.execute(
        "INSERT INTO courses (id, community_id, course_key, title, price_stars, price, currency, active) "
        "VALUES (?, ?, ?, ?, NULL, ?, ?, 1)",
        (course_id, cid, key, title, PERIOD_PRICES[0] / 100, currency),
    )
    first_period = np.r_[0, np.flatnonzero(np.diff(c.sp_sub)) + 1] if len(c.sp_sub) else np.empty(0, np.int64)
    conn.executemany(
        "INSERT INTO subscriptions (id, community_id, member_id, course_id, platform, subscription_ref, started_at, "
        "ends_at) VALUES (?, ?, ?, ?, 'discord', ?, ?, ?)",
        [
            (s + 1, cid, int(c.su_member[s]), course_id, f"entitlement-{s + 1}", int(c.sp_start_ms[i]), until)
            for s, (i, until) in enumerate(zip(first_period.tolist(), c.su_paid_until_ms.tolist(), strict=True))
        ],
    )
    first_purchase = len(c.pu_member) + 1
    charges = [f"sub-charge-{j + 1}" for j in range(len(c.sp_sub))]
    conn.executemany(
        "INSERT INTO subscription_periods (id, subscription_id, member_id, platform, charge_id, starts_at, ends_at) "
        "VALUES (?, ?, ?, 'discord', ?, ?, ?)",
        [
            (j + 1, s + 1, int(c.su_member[s]), charges[j], start, end)
            for j, (s, start, end) in enumerate(
                zip(c.sp_sub.tolist(), c.sp_start_ms.tolist(), c.sp_end_ms.tolist(), strict=True)
            )
        ],
    )
    conn.executemany(
        "INSERT INTO purchases (id, community_id, member_id, course_id, platform, charge_id, provider_charge_id, "
        "source, amount, currency, purchased_at, granted_by_member_id) "
        "VALUES (?, ?, ?, ?, 'discord', ?, NULL, 'discord_entitlement', ?, ?, ?, NULL)",
        [
            (first_purchase + j, cid, int(c.su_member[s]), course_id, charges[j], amount, currency, start)
            for j, (s, amount, start) in enumerate(
                zip(c.sp_sub.tolist(), c.sp_amount.tolist(), c.sp_start_ms.tolist(), strict=True)
            )
        ],
    )
    refunded = np.flatnonzero(c.sp_refund_ms != NONE)
    conn.executemany(
        "INSERT INTO refunds (id, purchase_id, refunded_at, reason, refunded_by_member_id) "
        "VALUES (?, ?, ?, NULL, NULL)",
        [
            (first_refund_id + n, first_purchase + int(j), int(c.sp_refund_ms[j]))
            for n, j in enumerate(refunded.tolist())
        ],
    )


# --- cache -------------------------------------------------------------------------------------------------------


def _schema_fingerprint() -> str:
    # The migration scripts' text, not only the head revision: a migration edited in place must not reuse a
    # database built with the old schema.
    digest = hashlib.sha256(head_revision().encode())
    for script in sorted((MIGRATIONS / "versions").glob("*.py")):
        digest.update(script.read_bytes())
    return digest.hexdigest()


def cache_key(params: Params) -> str:
    shape = {
        "synthetic": SYNTHETIC_VERSION,
        "schema": _schema_fingerprint(),
        "members": params.members,
        "events": params.events,
        "weeks": params.weeks,
        "seed": params.seed,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Cached:
    """The cached community: its database, its event arrays, and what building them took."""

    db: Path
    npz: Path
    built_now: bool
    seconds: dict[str, float]  # generate, rollups, database, arrays, total
    counts: dict[str, int]


def ensure(params: Params, workdir: Path) -> Cached:
    """The cached database and arrays for ``params``, generated first when missing."""
    workdir.mkdir(parents=True, exist_ok=True)
    stem = workdir / f"analytics-{cache_key(params)}"
    db, npz, meta = stem.with_suffix(".db"), stem.with_suffix(".npz"), stem.with_suffix(".json")
    if db.exists() and npz.exists() and meta.exists():
        info = json.loads(meta.read_text())
        return Cached(db, npz, False, dict(info["seconds"]), dict(info["counts"]))
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    community = generate(params)
    seconds["generate"] = time.perf_counter() - started
    lap = time.perf_counter()
    tables = rollups(community)
    seconds["rollups"] = time.perf_counter() - lap
    # Written under temporary names and renamed when complete, so an interrupted build is never reused.
    partial_db = workdir / f"{stem.name}.{os.getpid()}.partial.db"
    partial_npz = workdir / f"{stem.name}.{os.getpid()}.partial.npz"
    try:
        lap = time.perf_counter()
        write_database(partial_db, community, tables)
        seconds["database"] = time.perf_counter() - lap
        lap = time.perf_counter()
        community.save(partial_npz)
        seconds["arrays"] = time.perf_counter() - lap
        remove_sqlite(db)
        os.replace(partial_db, db)
        os.replace(partial_npz, npz)
    finally:
        remove_sqlite(partial_db)
        partial_npz.unlink(missing_ok=True)
    seconds["total"] = time.perf_counter() - started
    counts = {
        "events": len(community.ev_member),
        "messages": int((community.ev_kind == MESSAGE).sum()),
        "reactions": int((community.ev_kind == REACTION).sum()),
        "bot_messages": int((community.ev_member > community.members - BOTS).sum()),
        "memberships": len(community.ms_member),
        "purchases": len(community.pu_member) + len(community.sp_sub),
        "refunds": int((community.pu_refund_day != NONE).sum()) + int((community.sp_refund_ms != NONE).sum()),
        "subscriptions": len(community.su_member),
        "periods": len(community.sp_sub),
        "channels": int(community.n_channels),
        "member_days": len(tables.member_days),
    }
    meta.write_text(json.dumps({"params": asdict(params), "seconds": seconds, "counts": counts}, indent=1))
    return Cached(db, npz, True, seconds, counts)
