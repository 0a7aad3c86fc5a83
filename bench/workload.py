"""Deterministic synthetic community traffic for the benchmarks.

One community with Discord channels (a few of them threads) and Telegram chats (one of them a forum with
topics). Member activity is heavy-tailed (Pareto weights: a few members write most messages, most write a
little), timestamps advance with exponential gaps modulated by a daily rhythm, ~20% of messages are replies,
reactions land on recent messages (Discord reactions name the message author, Telegram ones do not, as the
real platforms behave), and a share of events are exact re-deliveries of recent events.

Everything is derived from ``random.Random`` seeded with strings, which is stable across processes and Python
versions (string seeds do not depend on ``PYTHONHASHSEED``), so a cached prefill database and a later run with
the same parameters agree on every member and channel id.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Generic, TypeVar

from storage.events import ActivityEvent, ChannelRef, MemberJoined, MemberRef, MessageEvent, Platform, ReactionEvent

# Bump when the generated traffic changes, so cached prefill databases are rebuilt.
WORKLOAD_VERSION = 2

COMMUNITY = "bench"
TIMEZONE = "Europe/Berlin"
START_MS = 1_736_121_600_000  # 2025-01-06 00:00 UTC, a Monday
EVENTS_PER_DAY = 25_000  # a busy community: 3 million events span about four months
DISCORD_EPOCH_MS = 1_420_070_400_000

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EMOJI = ("👍", "❤️", "😂", "🎉", "🔥", "👀", "✅", "🙏", "🚀", "💯", "🤔", "😭")
_EMOJI_CUM = list(accumulate(1.0 / (i + 1) for i in range(len(_EMOJI))))
_ADJECTIVES = ("quiet", "rapid", "lazy", "brave", "clever", "sunny", "odd", "tiny", "grand", "keen")
_NOUNS = ("otter", "lambda", "pixel", "kernel", "falcon", "monad", "parser", "comet", "socket", "tensor")


@dataclass(frozen=True, slots=True)
class Mix:
    """Shares of the generated traffic."""

    messages: float = 0.90
    reactions: float = 0.09  # the remaining 1% are joins
    duplicates: float = 0.05  # re-deliveries of an earlier event, on top of the mix above
    replies: float = 0.20  # of messages
    removals: float = 0.03  # of reactions: an earlier reaction taken back
    bot_messages: float = 0.01  # of Discord messages, posted by bot accounts (stored, never counted)


@dataclass(frozen=True, slots=True)
class Slot:
    """Somewhere messages are posted: a channel, thread or forum topic."""

    platform: Platform
    ref: ChannelRef
    chat_id: str  # the scope that numbers Telegram messages (a forum's topics share their chat's numbering)


@dataclass(slots=True)
class _Pool:
    """Accounts of one platform with cumulative activity weights for weighted sampling."""

    members: list[MemberRef] = field(default_factory=list)
    cum: list[float] = field(default_factory=list)

    def pick(self, rng: random.Random) -> MemberRef:
        return self.members[bisect(self.cum, rng.random() * self.cum[-1])]


class Population:
    """The community's accounts and channels, identical for every run with the same parameters."""

    def __init__(self, members: int, channels: int, seed: int) -> None:
        if members < 10 or channels < 2:
            raise ValueError("need at least 10 members and 2 channels")
        rng = random.Random(f"cohortbot-bench:{seed}:population")
        self.discord = _Pool()
        self.telegram = _Pool()
        seen: set[str] = set()
        n_discord = round(members * 0.75)
        for k in range(members):
            platform_pool = self.discord if k < n_discord else self.telegram
            while True:
                if k < n_discord:
                    user_id = str(rng.randrange(80_000_000_000_000_000, 1_300_000_000_000_000_000))
                else:
                    user_id = str(rng.randrange(100_000_000, 8_000_000_000))
                if user_id not in seen:
                    seen.add(user_id)
                    break
            name = f"{rng.choice(_ADJECTIVES)}_{rng.choice(_NOUNS)}{k % 997}"
            platform_pool.members.append(MemberRef(user_id, name))
            # Pareto with alpha 1.16 is the "80/20" tail; the cap keeps any one account to a few percent of the
            # traffic (at the default size the busiest writes 2% of the messages, the top 20% write 72%).
            platform_pool.cum.append(min(rng.paretovariate(1.16), members * 0.2))
        for pool in (self.discord, self.telegram):
            pool.cum = list(accumulate(pool.cum))
        self.bots = [MemberRef(str(10**15 + i), f"helper-bot-{i}", is_bot=True) for i in range(3)]

        self.slots: list[Slot] = []
        n_discord_slots = max(1, round(channels * 0.75))
        n_telegram_slots = max(1, channels - n_discord_slots)
        last_channel = ""
        for i in range(n_discord_slots):
            channel_id = str(rng.randrange(900_000_000_000_000_000, 1_300_000_000_000_000_000))
            if i % 6 == 5:
                # Every sixth Discord slot is a thread hanging off the channel before it.
                ref = ChannelRef(channel_id, f"thread-{i}", parent_id=last_channel)
            else:
                ref = ChannelRef(channel_id, f"channel-{i}")
                last_channel = channel_id
            self.slots.append(Slot(Platform.DISCORD, ref, channel_id))
        forum_id = str(-1_000_000_000_000 - rng.randrange(1_000_000_000, 9_999_999_999))
        n_topics = n_telegram_slots // 3
        for j in range(n_telegram_slots):
            if j < n_topics:
                ref = ChannelRef(forum_id, "forum", thread_id=str(j + 1))
                self.slots.append(Slot(Platform.TELEGRAM, ref, forum_id))
            else:
                chat_id = str(-1_000_000_000_000 - rng.randrange(1_000_000_000, 9_999_999_999))
                self.slots.append(Slot(Platform.TELEGRAM, ChannelRef(chat_id, f"chat-{j}"), chat_id))
        self.telegram_chats = sorted({s.chat_id for s in self.slots if s.platform is Platform.TELEGRAM})
        self._chat_refs = {c: ChannelRef(c) for c in self.telegram_chats}
        # Zipf-like channel popularity, shuffled so that both platforms get busy and quiet places.
        weights = [1.0 / (i + 1) ** 0.8 for i in range(len(self.slots))]
        rng.shuffle(weights)
        self.slot_cum = list(accumulate(weights))

    def pool(self, platform: Platform) -> _Pool:
        return self.discord if platform is Platform.DISCORD else self.telegram

    def chat_ref(self, chat_id: str) -> ChannelRef:
        return self._chat_refs[chat_id]


@dataclass(slots=True)
class GeneratorState:
    """Where a generator stopped, so that a later phase continues the same timeline without id clashes."""

    t_ms: int
    telegram_next: dict[str, int]


class _Ring(Generic[T]):
    """A fixed-size window of recent items with O(1) random access (a deque indexes in O(n))."""

    __slots__ = ("items", "next", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: list[T] = []
        self.next = 0

    def add(self, item: T) -> None:
        if len(self.items) < self.size:
            self.items.append(item)
        else:
            self.items[self.next] = item
            self.next = (self.next + 1) % self.size

    def recent(self, back: int) -> T:
        """The item ``back`` positions before the newest (clamped to the window)."""
        n = len(self.items)
        back = min(back, n - 1)
        if n < self.size:
            return self.items[n - 1 - back]
        return self.items[(self.next - 1 - back) % self.size]


_Msg = tuple[Slot, str, MemberRef]  # where, platform message id, author


class TrafficGenerator:
    """Produces activity events for one phase (0 = prefill, 1 = measured run) of the benchmark timeline."""

    def __init__(
        self, population: Population, *, seed: int, phase: int, state: GeneratorState, mix: Mix = Mix()
    ) -> None:
        self.pop = population
        self.mix = mix
        self.phase = phase
        self.rng = random.Random(f"cohortbot-bench:{seed}:traffic:{phase}")
        self.t_ms = state.t_ms
        self.telegram_next = dict(state.telegram_next)
        for chat in population.telegram_chats:
            self.telegram_next.setdefault(chat, 1)
        self._seq = 0
        self._messages: _Ring[_Msg] = _Ring(5_000)
        self._by_slot: dict[int, _Ring[_Msg]] = {i: _Ring(200) for i in range(len(population.slots))}
        self._reactions: _Ring[ReactionEvent] = _Ring(2_000)
        # Reactions taken back. They are neither removed again nor given again: the writer would move the
        # tombstone or revive the row, which the plain-INSERT baseline does not model, and the two databases
        # are compared row by row.
        self._removed: set[tuple[str, str, str, str]] = set()
        self._events: _Ring[ActivityEvent] = _Ring(10_000)
        self.counts = {"messages": 0, "reactions": 0, "removals": 0, "joins": 0, "duplicates": 0}

    def state(self) -> GeneratorState:
        return GeneratorState(self.t_ms, dict(self.telegram_next))

    def _tick(self) -> datetime:
        # Exponential gaps; the rate follows a daily rhythm peaking around 19:00 UTC (evening in Europe).
        hour = (self.t_ms // 3_600_000) % 24
        rate = 1.0 + 0.8 * math.cos(2 * math.pi * (hour - 19) / 24)
        self.t_ms += int(self.rng.expovariate(1.0) * (86_400_000 / EVENTS_PER_DAY) / rate)
        return _EPOCH + timedelta(milliseconds=self.t_ms)

    def _message_id(self, slot: Slot) -> str:
        if slot.platform is Platform.DISCORD:
            # A snowflake: milliseconds since the Discord epoch, then worker (the phase) and a sequence.
            self._seq += 1
            return str(((self.t_ms - DISCORD_EPOCH_MS) << 22) | (self.phase << 17) | (self._seq & 0xFFF))
        n = self.telegram_next[slot.chat_id]
        self.telegram_next[slot.chat_id] = n + 1
        return str(n)

    def _message(self) -> MessageEvent:
        rng = self.rng
        pop = self.pop
        slot_index = bisect(pop.slot_cum, rng.random() * pop.slot_cum[-1])
        slot = pop.slots[slot_index]
        at = self._tick()
        if slot.platform is Platform.DISCORD and rng.random() < self.mix.bot_messages:
            author = pop.bots[rng.randrange(len(pop.bots))]
        else:
            author = pop.pool(slot.platform).pick(rng)
        message_id = self._message_id(slot)
        in_slot = self._by_slot[slot_index]
        reply_to_message: str | None = None
        reply_to_user: str | None = None
        if in_slot.items and rng.random() < self.mix.replies:
            _, reply_to_message, replied = in_slot.recent(int(rng.expovariate(1 / 15)))
            reply_to_user = replied.user_id
        length = min(int(rng.lognormvariate(4.0, 1.0)), 4000)
        event = MessageEvent(
            slot.platform,
            COMMUNITY,
            message_id,
            slot.ref,
            author,
            at,
            length,
            has_code=rng.random() < 0.08,
            has_link=rng.random() < 0.06,
            reply_to_message_id=reply_to_message,
            reply_to_user_id=reply_to_user,
            attachments=1 if rng.random() < 0.04 else 0,
        )
        record: _Msg = (slot, message_id, author)
        self._messages.add(record)
        in_slot.add(record)
        self.counts["messages"] += 1
        return event

    def _reaction(self) -> MessageEvent | ReactionEvent:
        rng = self.rng
        if self._reactions.items and rng.random() < self.mix.removals:
            given = self._reactions.recent(rng.randrange(len(self._reactions.items)))
            key = (given.channel.channel_id, given.message_id, given.member.user_id, given.emoji)
            if key in self._removed:
                return self._message()
            self._removed.add(key)
            self.counts["removals"] += 1
            return ReactionEvent(
                given.platform,
                COMMUNITY,
                given.channel,
                given.message_id,
                given.member,
                given.emoji,
                self._tick(),
                added=False,
                message_author_id=given.message_author_id,
            )
        # Most reactions come within minutes of a message: look back a few hundred messages at most.
        slot, message_id, author = self._messages.recent(int(rng.expovariate(1 / 150)))
        reactor = self.pop.pool(slot.platform).pick(rng)
        emoji = _EMOJI[bisect(_EMOJI_CUM, rng.random() * _EMOJI_CUM[-1])]
        if (slot.ref.channel_id, message_id, reactor.user_id, emoji) in self._removed:
            return self._message()
        event = ReactionEvent(
            slot.platform,
            COMMUNITY,
            slot.ref,
            message_id,
            reactor,
            emoji,
            self._tick(),
            message_author_id=author.user_id if slot.platform is Platform.DISCORD else None,
        )
        self._reactions.add(event)
        self.counts["reactions"] += 1
        return event

    def _join(self) -> MemberJoined:
        rng = self.rng
        pop = self.pop
        at = self._tick()
        self.counts["joins"] += 1
        # Joins are not activity-weighted: anyone can (re)join. Telegram joins happen in a chat.
        if rng.random() < len(pop.discord.members) / (len(pop.discord.members) + len(pop.telegram.members)):
            member = pop.discord.members[rng.randrange(len(pop.discord.members))]
            return MemberJoined(Platform.DISCORD, COMMUNITY, member, at)
        member = pop.telegram.members[rng.randrange(len(pop.telegram.members))]
        chat = pop.telegram_chats[rng.randrange(len(pop.telegram_chats))]
        return MemberJoined(Platform.TELEGRAM, COMMUNITY, member, at, channel=pop.chat_ref(chat))

    def events(self, n: int, *, duplicates: bool = True) -> Iterator[ActivityEvent]:
        """Yield ``n`` events; with ``duplicates``, ``mix.duplicates`` of them re-deliver recent ones."""
        rng = self.rng
        mix = self.mix
        recent = self._events
        for _ in range(n):
            if duplicates and recent.items and rng.random() < mix.duplicates:
                # Re-deliveries (reconnects, gateway replays, importer re-runs) repeat the exact event.
                self.counts["duplicates"] += 1
                yield recent.items[rng.randrange(len(recent.items))]
                continue
            r = rng.random()
            event: ActivityEvent
            if r < mix.messages or not self._messages.items:
                event = self._message()
            elif r < mix.messages + mix.reactions:
                event = self._reaction()
            else:
                event = self._join()
            recent.add(event)
            yield event
