"""The simulated community: a deterministic model of a programmer community, with no I/O.

``cohortbot demo`` uses it so that someone can see what the bot does without a Discord or Telegram token. The
model (:class:`SimulatedCommunity`) plays members who join over time, post in a few channels with power-law
activity (a handful post every day, most rarely or never), reply and react, go quiet and leave, buy courses around
their launches (a few ask for a refund), and turn nudges off; a nudged member comes back more often than one the
scheduler held out. It only produces actions (events with their moments): :class:`~bot.demo.adapter.SimulatedAdapter`
hands them to the real core, and tells the model which nudges arrived. The same seed gives the same community, event
for event: all randomness comes from one seeded generator, and nothing reads the wall clock.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot.config import CourseSettings
from storage.events import (
    ActivityEvent,
    ChannelRef,
    MemberJoined,
    MemberLeft,
    MemberRef,
    MessageEvent,
    Platform,
    PurchaseEvent,
    PurchaseSource,
    ReactionEvent,
    RefundEvent,
)

log = logging.getLogger(__name__)

OWNER_ID = "owner"  # the scheduler sends the owner's digest to this target on a simulated or console adapter
OWNER_NAME = "Mara (owner)"

# (channel id, name, parent channel id, share of messages, chance of code, chance of a link, reactions per message)
CHANNELS: tuple[tuple[str, str, str | None, float, float, float, float], ...] = (
    ("c-general", "general", None, 0.32, 0.05, 0.08, 0.5),
    ("c-help", "help", None, 0.24, 0.45, 0.15, 0.35),
    ("c-help-asyncio", "asyncio-questions", "c-help", 0.06, 0.55, 0.12, 0.35),
    ("c-showcase", "showcase", None, 0.08, 0.2, 0.6, 1.6),
    ("c-showcase-challenge", "weekly-challenge", "c-showcase", 0.05, 0.7, 0.1, 1.0),
    ("c-off-topic", "off-topic", None, 0.2, 0.02, 0.2, 0.6),
    ("c-jobs", "jobs", None, 0.05, 0.0, 0.7, 0.3),
)
EMOJI = ("👍", "❤️", "🎉", "😂", "🔥", "👀", "🚀", "🙏")
# Relative activity by local hour: quiet nights, a lunch bump, busy evenings.
HOUR_WEIGHTS = (
    1,
    0.5,
    0.3,
    0.2,
    0.2,
    0.3,
    0.8,
    1.5,
    2.5,
    3,
    3.2,
    3.4,
    4,
    3.6,
    3.2,
    3.2,
    3.4,
    3.8,
    4.4,
    5,
    5.2,
    4.6,
    3.4,
    2,
)
HOUR_CUMULATIVE = tuple(sum(HOUR_WEIGHTS[: hour + 1]) for hour in range(24))
WEEKDAY_FACTORS = (1.0, 1.05, 1.05, 1.0, 0.9, 0.65, 0.7)
FIRST_NAMES = (
    "Ada", "Alan", "Amir", "Ana", "Ben", "Bjarne", "Carla", "Chen", "Dana", "Dev", "Elif", "Emil", "Eva", "Farah",
    "Finn", "Grace", "Guido", "Hana", "Ines", "Ivan", "Jana", "Jonas", "Kai", "Kemal", "Lea", "Leo", "Lina", "Luca",
    "Maya", "Mehmet", "Mia", "Nadia", "Nils", "Noor", "Omar", "Paula", "Priya", "Raj", "Rosa", "Sam", "Sara",
    "Sofia", "Tariq", "Tom", "Uma", "Vera", "Wei", "Yara", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adeyemi", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hoffmann", "Ito", "Jansen", "Kim",
    "Kowalski", "Lopez", "Meyer", "Nakamura", "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Silva",
    "Tanaka", "Umar", "Varga", "Weber", "Xu", "Yilmaz", "Zhang", "Moreau", "Andersson", "Bianchi", "Chowdhury",
    "Diallo", "Fernandes", "Gruber", "Haddad", "Iyer", "Jovanovic", "Lindqvist", "Mendes", "Nguyen", "Olsen",
    "Park", "Reyes", "Sato", "Takahashi", "Vogel", "Wagner", "Zielinski",
)  # fmt: skip

# Behaviour of the model, chosen so the numbers look like a real community of this size.
LURKER_SHARE = 0.35  # members who never post (they still react now and then)
SILENT_RETURN_PER_DAY = 0.006  # a quiet member comes back by themselves: about 4% within a week
NUDGE_COMEBACK = 0.25  # a nudged member comes back within a few days
NUDGE_OPT_OUT = 0.06  # a nudged member who does not come back presses "Stop these reminders"
SPONTANEOUS_OPT_OUT = 0.02  # members who turn nudges off without ever being nudged
LEAVE_SHARE = 0.35  # members who go quiet and then leave the community
REFUND_SHARE = 0.06
# The first course launches at an early-bird price (this share of its price, in whole currency units) for its first
# two weeks, then sells at full price: one price change, so the report's price points and elasticity have two
# prices to compare.
EARLY_BIRD_SHARE = Decimal("0.8")
EARLY_BIRD_DAYS = 14


@dataclass(frozen=True, slots=True)
class CourseLaunch:
    """A course the simulated community sells, and when it launches.

    Attributes:
        course: The configured course (its ``price`` and ``currency`` are charged).
        launch_week: The simulated week (0-based) of the launch; sales spike then and trail off.
        appeal: Daily chance, on launch day, that an engaged member buys (it decays over the following weeks).
    """

    course: CourseSettings
    launch_week: int
    appeal: float = 0.016


@dataclass(frozen=True, slots=True)
class SimulationPlan:
    """What to simulate: size, length, seed, and where in time.

    Attributes:
        community: The community name (as in ``[community] name``).
        timezone: The community's time zone (activity follows local days and hours).
        start: The first simulated day (a Monday, so weeks line up with ISO weeks).
        members: How many members join over the simulated period (the owner comes on top).
        weeks: Length of the simulation; one extra day is generated so the last week's digest can go out.
        seed: Same seed, same community.
        launches: The course launches.
    """

    community: str
    timezone: ZoneInfo
    start: date
    members: int = 2000
    weeks: int = 26
    seed: int = 1
    launches: tuple[CourseLaunch, ...] = ()

    @property
    def days(self) -> int:
        """Simulated days, the extra one included."""
        return self.weeks * 7 + 1


# --- what the simulator schedules ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Activity:
    """A message, reaction, join or leave for the event writer."""

    at: datetime
    event: ActivityEvent


@dataclass(frozen=True, slots=True)
class Sale:
    """A course purchase, recorded through ``bot.core.sales.record_sale``."""

    at: datetime
    event: PurchaseEvent


@dataclass(frozen=True, slots=True)
class Refund:
    """A refund of an earlier purchase, recorded through ``bot.core.sales.record_refund``."""

    at: datetime
    event: RefundEvent
    member: MemberRef


@dataclass(frozen=True, slots=True)
class Command:
    """A member runs a command (``/nudges off``) through the dispatcher."""

    at: datetime
    member: MemberRef
    name: str
    args: tuple[str, ...] = ()


Action = Activity | Sale | Refund | Command


@dataclass(frozen=True, slots=True)
class SimulationCounts:
    """Running totals of what the simulated community did (all deterministic for a seed)."""

    joined: int
    left: int
    messages: int
    reactions: int
    purchases: int
    refunds: int
    opt_outs: int
    nudges_received: int
    nudge_comebacks: int


@dataclass(slots=True)
class _Member:
    """One simulated member's state (internal and mutable: it changes as the days pass)."""

    ref: MemberRef
    join_day: int
    rate: float  # messages per engaged day
    resume_day: int  # engaged from this day ...
    engaged_until: int  # ... until this day (exclusive)
    channel_weights: tuple[float, ...]  # cumulative, over CHANNELS
    leave_day: int | None = None
    left: bool = False
    opt_out_day: int | None = None
    opted_out: bool = False
    owned: set[str] = field(default_factory=set)
    messages: int = 0
    recent_days: deque[int] = field(default_factory=deque)  # local day of each delivered message, last 7 days
    nudged: int = 0


@dataclass(slots=True)
class _Recent:
    """Recent messages of a channel, so replies and reactions point at real earlier messages."""

    items: deque[tuple[str, str, datetime]] = field(default_factory=lambda: deque(maxlen=40))


class SimulatedCommunity:
    """A deterministic model of a programmer community that hands out its actions in time order."""

    def __init__(self, plan: SimulationPlan) -> None:
        """Create the community; members join and act as :meth:`pop` walks through the days.

        Args:
            plan: Size, length, seed, zone and the course launches.
        """
        self.plan = plan
        self.tz = plan.timezone
        self.rng = random.Random(plan.seed)
        self._heap: list[tuple[datetime, int, Action]] = []
        self._seq = 0
        self._next_day = 0
        self._last_day = 0  # local day of the newest delivered message
        self._message_seq = 0
        self._charge_seq = 0
        self._recent = {channel[0]: _Recent() for channel in CHANNELS}
        self._channels = {
            cid: ChannelRef(cid, name, parent_id=parent) for cid, name, parent, *_ in CHANNELS
        }  # a thread is a channel of its own that hangs off its parent (as on Discord)
        self._by_id: dict[str, _Member] = {}
        self.owner = _Member(
            MemberRef(OWNER_ID, OWNER_NAME),
            join_day=0,
            rate=2.5,
            resume_day=0,
            engaged_until=plan.days + 1,
            channel_weights=tuple(_cumulative((0.6, 0.25, 0.05, 0.05, 0.0, 0.05, 0.0))),
        )
        self._members = [self.owner, *self._make_members()]
        self._by_id = {m.ref.user_id: m for m in self._members}
        self.joined = self.left = self.messages = self.reactions = 0
        self.purchases = self.refunds = self.opt_outs = self.nudges_received = self.nudge_comebacks = 0

    # --- the population -------------------------------------------------------------------------------------

    def _make_members(self) -> list[_Member]:
        rng, plan = self.rng, self.plan
        names = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
        rng.shuffle(names)
        launch_days = {launch.launch_week * 7 + d for launch in plan.launches for d in range(7)}
        span = plan.weeks * 7
        # Growth: a founding wave in the first week, a slowly rising stream after, bumps around course launches.
        weights = [(6.0 if d < 7 else 1.0 + d / span) * (2.5 if d in launch_days else 1.0) for d in range(span)]
        join_days = sorted(rng.choices(range(span), weights=weights, k=plan.members))
        used_ids: set[str] = set()
        members: list[_Member] = []
        for index, join_day in enumerate(join_days):
            name = names[index % len(names)]
            if index >= len(names):
                name = f"{name} {index // len(names) + 1}"
            user_id = str(rng.randrange(10**8, 10**9))
            while user_id in used_ids:
                user_id = str(rng.randrange(10**8, 10**9))
            used_ids.add(user_id)
            lurker = rng.random() < LURKER_SHARE
            # Power law: most members post a little, a few post every day (capped so nobody floods a channel).
            rate = 0.0 if lurker else min(30.0, 0.2 * rng.paretovariate(0.95))
            lifetime = int(rng.expovariate(1 / (18 + 90 * min(1.0, rate / 2.5)))) + 1
            favourite = rng.randrange(len(CHANNELS))
            shares = [c[3] * (3.0 if i == favourite else 1.0) for i, c in enumerate(CHANNELS)]
            member = _Member(
                MemberRef(user_id, name),
                join_day=join_day,
                rate=rate,
                resume_day=join_day,
                engaged_until=join_day + lifetime,
                channel_weights=tuple(_cumulative(shares)),
            )
            if rng.random() < LEAVE_SHARE:
                member.leave_day = member.engaged_until + rng.randrange(3, 45)
            if rng.random() < SPONTANEOUS_OPT_OUT:
                member.opt_out_day = join_day + rng.randrange(0, 60)
            members.append(member)
        return members

    # --- handing out actions in time order ------------------------------------------------------------------

    def day_start(self, day: int) -> datetime:
        """Local midnight of a simulated day (aware, in the community's zone)."""
        return datetime.combine(self.plan.start + timedelta(days=day), time(0), tzinfo=self.tz)

    def peek(self) -> datetime | None:
        """When the next action happens (generating the next day when it is due); None when the model is done."""
        while self._next_day < self.plan.days and (
            not self._heap or self._heap[0][0] >= self.day_start(self._next_day)
        ):
            self._generate(self._next_day)
            self._next_day += 1
        return self._heap[0][0] if self._heap else None

    def pop(self) -> Action:
        """The next action (call :meth:`peek` first)."""
        return heapq.heappop(self._heap)[2]

    def _push(self, action: Action) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (action.at, self._seq, action))

    def member(self, user_id: str) -> _Member | None:
        """The simulated member with this user id."""
        return self._by_id.get(user_id)

    def counts(self) -> SimulationCounts:
        """What happened so far (actions handed out, not the ones still scheduled)."""
        return SimulationCounts(
            joined=self.joined,
            left=self.left,
            messages=self.messages,
            reactions=self.reactions,
            purchases=self.purchases,
            refunds=self.refunds,
            opt_outs=self.opt_outs,
            nudges_received=self.nudges_received,
            nudge_comebacks=self.nudge_comebacks,
        )

    def note_delivered(self, action: Action) -> None:
        """Count a delivered action (the progress line and the demo's summary read these)."""
        if isinstance(action, Activity):
            event = action.event
            if isinstance(event, MessageEvent):
                self.messages += 1
                author = self._by_id.get(event.author.user_id)
                if author is not None:
                    author.messages += 1
                    day = (action.at.astimezone(self.tz).date() - self.plan.start).days
                    author.recent_days.append(day)
                    while author.recent_days[0] <= day - 7:
                        author.recent_days.popleft()
                    self._last_day = day
            elif isinstance(event, ReactionEvent):
                self.reactions += 1
            elif isinstance(event, MemberJoined):
                self.joined += 1
            else:
                self.left += 1
        elif isinstance(action, Sale):
            self.purchases += 1
        elif isinstance(action, Refund):
            self.refunds += 1
        elif action.name == "nudges":
            self.opt_outs += 1

    def most_active(self) -> MemberRef:
        """The member (not the owner) who posted most in the last 7 days delivered (the demo's ``/stats`` example)."""

        def last_week(member: _Member) -> int:
            return sum(1 for day in member.recent_days if day > self._last_day - 7)

        pool = [m for m in self._members[1:] if not m.left] or [self.owner]
        return max(pool, key=lambda m: (last_week(m), m.messages, m.ref.user_id)).ref

    # --- the reaction to a nudge ----------------------------------------------------------------------------

    def on_nudge(self, user_id: str, at: datetime) -> bool:
        """A member received a nudge: they may come back in a few days, or turn reminders off.

        Returns:
            False when the member is not (or no longer) in the community, so the message could not arrive.
        """
        member = self._by_id.get(user_id)
        if member is None or member.left:
            return False
        self.nudges_received += 1
        member.nudged += 1
        rng = self.rng
        if rng.random() < NUDGE_COMEBACK:
            self.nudge_comebacks += 1
            back = at + timedelta(hours=rng.uniform(1, 96))
            self._comeback(member, back)
        elif rng.random() < NUDGE_OPT_OUT and not member.opted_out:
            member.opted_out = True
            self._push(Command(at + timedelta(minutes=rng.uniform(2, 600)), member.ref, "nudges", ("off",)))
        return True

    def _comeback(self, member: _Member, at: datetime) -> None:
        rng = self.rng
        day = (at.astimezone(self.tz).date() - self.plan.start).days
        member.resume_day = day + 1
        member.engaged_until = day + 1 + int(rng.expovariate(1 / 14)) + 1
        member.leave_day = None
        channel = 1 if rng.random() < 0.5 else 0  # back with a question, or a hello in general
        self._push(Activity(at, self._message(member, at, channel, reply=None)))

    # --- one simulated day ----------------------------------------------------------------------------------

    def _generate(self, day: int) -> None:
        rng, plan = self.rng, self.plan
        midnight = self.day_start(day)
        weekday = (plan.start + timedelta(days=day)).weekday()
        factor = WEEKDAY_FACTORS[weekday]
        slots: list[tuple[datetime, _Member, int]] = []
        reactors: list[_Member] = []
        reactor_weights: list[float] = []
        for member in self._members:
            if member.join_day > day or member.left:
                continue
            if member.join_day == day and member is not self.owner:
                joined_at = midnight + self._time_of_day()
                self._push(Activity(joined_at, MemberJoined(Platform.SIMULATED, plan.community, member.ref, joined_at)))
            else:
                joined_at = midnight
            if member.leave_day is not None and member.leave_day <= day:
                left_at = midnight + self._time_of_day()
                self._push(Activity(left_at, MemberLeft(Platform.SIMULATED, plan.community, member.ref, left_at)))
                member.left = True
                continue
            if member.opt_out_day == day and not member.opted_out:
                member.opted_out = True
                self._push(Command(max(joined_at, midnight + self._time_of_day()), member.ref, "nudges", ("off",)))
            engaged = member.resume_day <= day < member.engaged_until
            if not engaged and member.rate > 0 and day >= member.engaged_until and rng.random() < SILENT_RETURN_PER_DAY:
                member.resume_day, member.engaged_until = day, day + int(rng.expovariate(1 / 12)) + 1
                member.leave_day = None
                engaged = True
            if not engaged:
                continue
            reactors.append(member)
            reactor_weights.append(0.3 + math.sqrt(member.rate))
            count = _poisson(rng, member.rate * factor * (1.6 if day == member.join_day else 1.0))
            for _ in range(count):
                at = midnight + self._time_of_day()
                if at < joined_at:
                    at = joined_at + timedelta(minutes=rng.uniform(1, 30))
                channel = rng.choices(range(len(CHANNELS)), cum_weights=member.channel_weights)[0]
                slots.append((at, member, channel))
            self._sales(member, day, midnight, joined_at)
        slots.sort(key=lambda s: (s[0], s[1].ref.user_id))
        cumulative = _cumulative(reactor_weights)
        for at, member, channel in slots:
            cid = CHANNELS[channel][0]
            recent = self._recent[cid].items
            reply = None
            if recent and rng.random() < 0.4:
                target = recent[-1 - min(len(recent) - 1, int(rng.expovariate(0.4)))]
                reply = target if target[1] != member.ref.user_id else None
            event = self._message(member, at, channel, reply=reply)
            self._push(Activity(at, event))
            recent.append((event.message_id, member.ref.user_id, at))
            self._reactions(event, channel, reactors, cumulative)

    def _time_of_day(self) -> timedelta:
        hour = self.rng.choices(range(24), cum_weights=HOUR_CUMULATIVE)[0]
        return timedelta(hours=hour, seconds=self.rng.randrange(3600))

    def _message(
        self, member: _Member, at: datetime, channel: int, *, reply: tuple[str, str, datetime] | None
    ) -> MessageEvent:
        rng = self.rng
        cid, _, _, _, code_chance, link_chance, _ = CHANNELS[channel]
        self._message_seq += 1
        has_code = rng.random() < code_chance
        length = int(rng.lognormvariate(4.2, 0.9)) + 1 + (rng.randrange(80, 900) if has_code else 0)
        return MessageEvent(
            platform=Platform.SIMULATED,
            community=self.plan.community,
            message_id=str(self._message_seq),
            channel=self._channels[cid],
            author=member.ref,
            occurred_at=at,
            length=length,
            has_code=has_code,
            has_link=rng.random() < link_chance,
            reply_to_message_id=reply[0] if reply else None,
            reply_to_user_id=reply[1] if reply else None,
            attachments=1 if channel == 3 and rng.random() < 0.5 else 0,
        )

    def _reactions(
        self, message: MessageEvent, channel: int, reactors: Sequence[_Member], cumulative: Sequence[float]
    ) -> None:
        if not reactors:
            return
        rng = self.rng
        count = _poisson(rng, CHANNELS[channel][6])
        if not count:
            return
        seen: set[str] = {message.author.user_id}
        for reactor in rng.choices(reactors, cum_weights=cumulative, k=count):
            if reactor.ref.user_id in seen:
                continue
            seen.add(reactor.ref.user_id)
            at = message.occurred_at + timedelta(minutes=rng.expovariate(1 / 90))
            event = ReactionEvent(
                platform=Platform.SIMULATED,
                community=self.plan.community,
                channel=message.channel,
                message_id=message.message_id,
                member=reactor.ref,
                emoji=rng.choice(EMOJI),
                occurred_at=at,
                message_author_id=message.author.user_id,
            )
            self._push(Activity(at, event))

    def _sales(self, member: _Member, day: int, midnight: datetime, joined_at: datetime) -> None:
        rng = self.rng
        for launch in self.plan.launches:
            since = day - (launch.launch_week * 7 + 1)  # courses launch on the Tuesday of their week
            course = launch.course
            if since < 0 or course.id in member.owned or member is self.owner:
                continue
            keen = 0.35 + min(member.rate, 3.0) / 3.0
            chance = launch.appeal * keen * (math.exp(-since / 6) + 0.12)
            if rng.random() >= chance:
                continue
            member.owned.add(course.id)
            at = max(joined_at + timedelta(minutes=5), midnight + self._time_of_day())
            self._charge_seq += 1
            charge_id = f"sim-{self.plan.seed}-{self._charge_seq}"
            price = course.price or 0
            if launch is self.plan.launches[0] and since < EARLY_BIRD_DAYS:
                price = round(price * EARLY_BIRD_SHARE)
            amount = int(price * 100)
            event = PurchaseEvent(
                platform=Platform.SIMULATED,
                community=self.plan.community,
                charge_id=charge_id,
                member=member.ref,
                course_id=course.id,
                amount=amount,
                currency=course.currency or "EUR",
                occurred_at=at,
                source=PurchaseSource.SIMULATED,
            )
            self._push(Sale(at, event))
            if rng.random() < REFUND_SHARE:
                back = at + timedelta(days=rng.uniform(1, 12))
                refund = RefundEvent(
                    Platform.SIMULATED, self.plan.community, charge_id, back, reason="changed my mind (simulated)"
                )
                self._push(Refund(back, refund, member.ref))


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth; means here are small) from the shared generator, so runs stay reproducible."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out
