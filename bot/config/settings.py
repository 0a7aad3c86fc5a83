"""The settings: frozen dataclasses, one per config section, with every option's default.

Parsed once at startup, so the rest of the bot relies on the types and never re-validates a setting.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal

from bot.config.errors import _mask, _redact

TELEGRAM_TOKEN_ENV: Final = "COHORTBOT_TELEGRAM_TOKEN"


DISCORD_TOKEN_ENV: Final = "COHORTBOT_DISCORD_TOKEN"


SECRET_ENV: Final = "COHORTBOT_SECRET"


DEFAULT_WEBHOOK_SECRET_ENV: Final = "COHORTBOT_TELEGRAM_WEBHOOK_SECRET"


STRIPE_API_KEY_ENV: Final = "COHORTBOT_STRIPE_API_KEY"


STRIPE_WEBHOOK_SECRET_ENV: Final = "COHORTBOT_STRIPE_WEBHOOK_SECRET"


METRICS_TOKEN_ENV: Final = "COHORTBOT_METRICS_TOKEN"


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


TelegramMode = Literal["polling", "webhook"]


Billing = Literal["once", "monthly"]


# Telegram Stars subscriptions renew every 30 days (Telegram's only period); monthly courses use it on every platform.
BILLING_PERIOD_DAYS: Final = 30


# Index in this tuple == datetime.date.weekday(), so schedulers can compare directly.
WEEKDAYS: Final[tuple[Weekday, ...]] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


# A tuple rather than a set so error messages list the placeholders in a stable, readable order.
NUDGE_PLACEHOLDERS: Final = ("name", "community", "since", "highlights")


NUDGES_OFF_COMMAND: Final = "/nudges off"


DEFAULT_NUDGE_TEMPLATE: Final = (
    "Hi {name}! We haven't seen you in {community} since {since} and we miss you. {highlights} "
    "Drop by and say hello whenever you like. "
    "(Don't want these reminders? Send /nudges off.)"
)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in which no nudges are sent; it may wrap past midnight (e.g. 22:00-08:00).

    A window whose start equals its end is empty, which is how quiet hours are switched off.
    """

    start: dt.time
    end: dt.time

    def contains(self, moment: dt.time) -> bool:
        """Tell whether a wall-clock time falls inside the window (start inclusive, end exclusive).

        Args:
            moment: Local time in the community's time zone. Any tzinfo is ignored because the window is
                defined in wall-clock terms; convert to the community time zone before calling.

        Returns:
            True if nudges must not be sent at ``moment``.
        """
        clock = moment.replace(tzinfo=None)
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= clock < self.end
        # Wrapping window: quiet from start until midnight, and from midnight until end.
        return clock >= self.start or clock < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class CommunitySettings:
    """``[community]``: who the bot works for."""

    name: str = "My community"
    timezone: str = "UTC"

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        """The community time zone; digests, nudge run times and quiet hours use it."""
        return zoneinfo.ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True, repr=False)
class StorageSettings:
    """``[storage]``: where data is kept, and whether message text is kept at all."""

    url: str = "sqlite:///cohortbot.db"
    # Privacy by default: only message metadata (who, where, when, length) is stored unless the owner opts in.
    store_text: bool = False
    # SQLite: how long a write waits for another process (an import, a backup) to release the write lock.
    busy_timeout_seconds: float = 10.0

    def __repr__(self) -> str:
        # A PostgreSQL URL may carry a password; settings get logged at startup, passwords must not.
        return (
            f"StorageSettings(url={_redact(self.url)!r}, store_text={self.store_text!r}, "
            f"busy_timeout_seconds={self.busy_timeout_seconds!r})"
        )


@dataclass(frozen=True, slots=True)
class TelegramSettings:
    """``[telegram]``: the Telegram bot. The token comes from ``COHORTBOT_TELEGRAM_TOKEN``."""

    enabled: bool = False
    chat_ids: tuple[int, ...] = ()
    owner_ids: tuple[int, ...] = ()
    api_base_url: str = "https://api.telegram.org/bot"
    mode: TelegramMode = "polling"
    webhook_listen: str = "127.0.0.1:8443"
    webhook_url: str | None = None
    webhook_secret_env: str = DEFAULT_WEBHOOK_SECRET_ENV

    @property
    def webhook_host(self) -> str:
        """Host part of ``webhook_listen``, without the brackets of an IPv6 address."""
        host = self.webhook_listen.rpartition(":")[0]
        return host[1:-1] if host.startswith("[") else host

    @property
    def webhook_port(self) -> int:
        """Port part of ``webhook_listen``."""
        return int(self.webhook_listen.rpartition(":")[2])


@dataclass(frozen=True, slots=True)
class DiscordSettings:
    """``[discord]``: the Discord bot. The token comes from ``COHORTBOT_DISCORD_TOKEN``."""

    enabled: bool = False
    guild_ids: tuple[int, ...] = ()
    admin_role_ids: tuple[int, ...] = ()
    api_base_url: str = "https://discord.com/api/v10"
    gateway_url: str | None = None
    shards: int | Literal["auto"] = 1
    # Several processes splitting one bot's shards: this process connects shard_ids of shard_count in all.
    # shard_count alone connects every shard here (like shards = N); shard_ids needs shard_count.
    shard_ids: tuple[int, ...] | None = None
    shard_count: int | None = None
    # Test-mode entitlements (Discord's "test purchases", no money) are recorded as test purchases, never revenue;
    # they give the course role only when this is on (to try the purchase flow on a test server).
    grant_test_entitlements: bool = False
    # Ask for the privileged Message Content intent (the owner must switch it on in the Developer Portal too):
    # without it Discord blanks text, attachments and embeds, so length, code, link and attachment facts read 0.
    # [storage] store_text = true asks for it as well.
    message_content: bool = False


@dataclass(frozen=True, slots=True)
class DigestSettings:
    """``[digest]``: the weekly activity digest."""

    enabled: bool = True
    weekday: Weekday = "monday"
    time: dt.time = dt.time(9, 0)
    telegram_chat_ids: tuple[int, ...] = ()
    discord_channel_ids: tuple[int, ...] = ()
    send_to_owners: bool = True
    top_members: int = 10

    @property
    def weekday_index(self) -> int:
        """``weekday`` as a number that matches ``datetime.date.weekday()`` (Monday is 0)."""
        return WEEKDAYS.index(self.weekday)


@dataclass(frozen=True, slots=True)
class NudgeSettings:
    """``[nudges]``: friendly direct messages to members who have gone quiet. Off unless the owner opts in."""

    enabled: bool = False
    inactive_after_days: int = 14
    cooldown_days: int = 30
    max_per_run: int = 20
    max_per_minute: int = 5
    max_per_day: int = 50
    holdout_share: float = 0.1
    run_time: dt.time = dt.time(18, 0)
    quiet_hours: QuietHours = QuietHours(dt.time(22, 0), dt.time(8, 0))
    template: str = DEFAULT_NUDGE_TEMPLATE


@dataclass(frozen=True, slots=True)
class SurveySettings:
    """``[surveys]``: satisfaction questions.

    ``after_purchase_days`` (0: off) sends one NPS question privately to each buyer that many days after the
    purchase, within the nudges' DM budget, opt-outs and quiet hours.
    """

    after_purchase_days: int = 0


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """``[schedule]``: the background jobs besides the digest and the nudge run (their times are in their sections)."""

    refresh_minutes: int = 15
    reconcile_time: dt.time = dt.time(4, 30)


@dataclass(frozen=True, slots=True)
class CourseSettings:
    """One ``[[courses]]`` entry: something the community sells."""

    id: str
    title: str
    description: str = ""
    price_stars: int | None = None
    price: Decimal | None = None
    currency: str | None = None
    checkout_url: str | None = None
    telegram_chat_id: int | None = None
    discord_role_id: int | None = None
    discord_sku_id: int | None = None
    # "monthly": access lasts one 30-day period per payment and ends unless renewed; "once": forever.
    billing: Billing = "once"
    # The Stripe Price (``price_...``) a card checkout charges; /buy offers it when [stripe] enabled = true.
    stripe_price_id: str | None = None


@dataclass(frozen=True, slots=True)
class SalesSettings:
    """``[sales]``: renewal reminders for monthly courses and the owners' sale alerts."""

    # Members whose paid period ends within this many days (and who did not cancel) get one reminder; 0 turns it off.
    renewal_reminder_days: int = 3
    # Where each sale, renewal, refund, cancellation and failed access grant is announced; never a members' chat.
    alert_chat: int | None = None
    alert_channel: int | None = None


@dataclass(frozen=True, slots=True)
class StripeSettings:
    """``[stripe]``: card payments through Stripe Checkout.

    The keys come from ``COHORTBOT_STRIPE_API_KEY`` and ``COHORTBOT_STRIPE_WEBHOOK_SECRET``; the webhook is
    ``POST /webhooks/stripe`` on the one web server.
    """

    enabled: bool = False
    # Where Stripe sends the buyer after paying or giving up; empty: the bot's own pages under [web] public_url.
    success_url: str = ""
    cancel_url: str = ""
    # Stripe's API; tests point it at a fake on 127.0.0.1.
    api_base_url: str = "https://api.stripe.com"


@dataclass(frozen=True, slots=True)
class CheckoutSettings:
    """``[checkout]``: the generic signed webhook (``POST /webhooks/checkout``) for other checkouts."""

    enabled: bool = False


@dataclass(frozen=True, slots=True)
class WebSettings:
    """``[web]``: the one web server (dashboard, Telegram webhook, payment webhooks, ``/healthz``, ``/metrics``)."""

    # Start the server under ``cohortbot run`` even without the dashboard or payments (for /healthz and /metrics).
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8787
    # The address people reach it at (behind a TLS reverse proxy); login links use it. Empty: http://host:port.
    public_url: str = ""


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    """``[dashboard]``: the owners' and admins' web dashboard."""

    enabled: bool = False
    # Standalone (``cohortbot dashboard serve``) pages re-read their figures at this interval; in-process they are
    # pushed on every commit.
    refresh_seconds: int = 30


@dataclass(frozen=True, slots=True)
class HelpSettings:
    """``[help]``: where members ask questions, and how an answer is recognised (docs/metrics.md).

    Channels are platform ids as storage keeps them: a Discord channel or forum id, a Telegram chat id, or
    ``"<chat_id>#<topic_id>"`` for a Telegram forum topic. Discord forums count as help channels unless excluded.
    """

    channels: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # A message after this much silence in a flat channel starts a new conversation (and may be a question).
    quiet_minutes: int = 30
    # How long after a flat-channel question another member's message in the same conversation still answers it.
    answer_window_hours: int = 24
    # A question without an answer this long is unanswered: /unanswered lists it, and the optional ping goes out.
    unanswered_after_hours: int = 24
    # Optional pings for unanswered questions: a Discord role mentioned in the question's channel, and/or a
    # Telegram chat (the helpers' or admins') told about it. One ping per question.
    ping_role: int | None = None
    ping_chat: int | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration file."""

    community: CommunitySettings = field(default_factory=CommunitySettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    nudges: NudgeSettings = field(default_factory=NudgeSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    courses: tuple[CourseSettings, ...] = ()
    web: WebSettings = field(default_factory=WebSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    sales: SalesSettings = field(default_factory=SalesSettings)
    stripe: StripeSettings = field(default_factory=StripeSettings)
    checkout: CheckoutSettings = field(default_factory=CheckoutSettings)
    help: HelpSettings = field(default_factory=HelpSettings)
    surveys: SurveySettings = field(default_factory=SurveySettings)

    @property
    def serves_web(self) -> bool:
        """Whether ``cohortbot run`` starts the web server: ``[web] enabled``, the dashboard, or a payment webhook."""
        return self.web.enabled or self.dashboard.enabled or self.stripe.enabled or self.checkout.enabled


@dataclass(frozen=True, slots=True, repr=False)
class Secrets:
    """Secrets read from the environment. The repr masks values so they never reach logs."""

    telegram_token: str | None = None
    discord_token: str | None = None
    signing_secret: str | None = None
    stripe_api_key: str | None = None
    stripe_webhook_secret: str | None = None
    metrics_token: str | None = None

    def __repr__(self) -> str:
        return (
            f"Secrets(telegram_token={_mask(self.telegram_token)}, "
            f"discord_token={_mask(self.discord_token)}, "
            f"signing_secret={_mask(self.signing_secret)}, "
            f"stripe_api_key={_mask(self.stripe_api_key)}, "
            f"stripe_webhook_secret={_mask(self.stripe_webhook_secret)}, "
            f"metrics_token={_mask(self.metrics_token)})"
        )


def default_settings() -> Settings:
    """Return the settings used when no config file is given.

    Returns:
        Settings with every option at its default (SQLite at ``sqlite:///cohortbot.db``, both chat platforms
        disabled, digest on, nudges off, no courses).
    """
    return Settings()
