"""Typed, validated configuration for cohortbot.

The config file is TOML. It is parsed once at startup into frozen dataclasses so the rest of the bot can rely
on the types and never has to re-validate or guard against a setting changing underneath it.

Validation collects *every* problem in one pass: the owner edits the file by hand, and fixing one error per
restart is miserable. Each message names the key path, what was expected and what was found, so the file can
be fixed from the message alone.

Secrets (bot tokens, the signing secret) never live in the file. Config files get committed, pasted into
support chats and backed up; secrets therefore come from the environment only (see :func:`load_secrets`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
import math
import os
import re
import string
import tomllib
import urllib.parse
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal, TypeGuard, TypeVar

__all__ = [
    "DEFAULT_NUDGE_TEMPLATE",
    "DEFAULT_WEBHOOK_SECRET_ENV",
    "DISCORD_TOKEN_ENV",
    "NUDGES_OFF_COMMAND",
    "NUDGE_PLACEHOLDERS",
    "SECRET_ENV",
    "TELEGRAM_TOKEN_ENV",
    "WEEKDAYS",
    "CommunitySettings",
    "ConfigError",
    "CourseSettings",
    "DigestSettings",
    "DiscordSettings",
    "NudgeSettings",
    "QuietHours",
    "Secrets",
    "Settings",
    "StorageSettings",
    "TelegramMode",
    "TelegramSettings",
    "Weekday",
    "default_settings",
    "load_secrets",
    "load_settings",
    "parse_settings",
    "validate_secrets",
]

TELEGRAM_TOKEN_ENV: Final = "COHORTBOT_TELEGRAM_TOKEN"
DISCORD_TOKEN_ENV: Final = "COHORTBOT_DISCORD_TOKEN"
SECRET_ENV: Final = "COHORTBOT_SECRET"
DEFAULT_WEBHOOK_SECRET_ENV: Final = "COHORTBOT_TELEGRAM_WEBHOOK_SECRET"

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
TelegramMode = Literal["polling", "webhook"]

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
_TELEGRAM_MODES: Final[tuple[TelegramMode, ...]] = ("polling", "webhook")

# A tuple rather than a set so error messages list the placeholders in a stable, readable order.
NUDGE_PLACEHOLDERS: Final = ("name", "community", "since", "highlights")
NUDGES_OFF_COMMAND: Final = "/nudges off"
DEFAULT_NUDGE_TEMPLATE: Final = (
    "Hi {name}! We haven't seen you in {community} since {since} and we miss you. {highlights} "
    "Drop by and say hello whenever you like. "
    "(Don't want these reminders? Send /nudges off.)"
)

_SECTIONS: Final = ("community", "storage", "telegram", "discord", "digest", "nudges", "schedule", "courses")

# Values quoted back in error messages are shortened so one bad key cannot flood the terminal.
_MAX_SHOWN_CHARS: Final = 60
_MAX_SHOWN_LIST_CHARS: Final = 80
# Course ids end up in Telegram deep links and callback data, which are limited to 64 bytes including
# the bot's own prefixes; 32 characters leaves comfortable room.
_MAX_COURSE_ID_LENGTH: Final = 32
# The most Telegram Stars one invoice may ask for: Telegram refuses Stars payments above 10,000 (its per-payment
# ceiling; python-telegram-bot 22.x has no constant for sendInvoice amounts, its nearest ones,
# telegram.constants.InvoiceLimit.MAX_STAR_COUNT for paid media and BusinessLimit.MAX_STAR_COUNT = 10000 for Star
# transfers, are documented in telegram/constants.py). A number here because config must not import telegram.
MAX_STARS_PER_INVOICE: Final = 10_000
# Platform ids (Telegram user and chat ids, Discord snowflakes) are stored as signed 64-bit BIGINTs; Bot API
# chat ids fit in 52 bits and Discord snowflakes stay below 2**63 for centuries, so anything bigger is a typo.
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
# Telegram's setWebhook only accepts these ports.
_TELEGRAM_WEBHOOK_PORTS: Final = frozenset({443, 80, 88, 8443})

_CLOCK_RE: Final = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
_QUIET_HOURS_RE: Final = re.compile(r"\s*([0-9]{1,2}:[0-9]{2})\s*-\s*([0-9]{1,2}:[0-9]{2})\s*")
_LISTEN_RE: Final = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")
_ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SLUG_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
_NUMERIC_TEXT_RE: Final = re.compile(r"\s*[-+]?[0-9]+(\.[0-9]+)?\s*")
# Shapes of real tokens and URL passwords. Anything matching is masked before a value is echoed in an error
# or a repr, because error output ends up in logs and bug reports.
_TELEGRAM_TOKEN_RE: Final = re.compile(r"[0-9]{5,}:[A-Za-z0-9_-]{30,}")
_DISCORD_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{20,}")
_URL_PASSWORD_RE: Final = re.compile(r"(://[^:/@\s]*:)[^@/\s]*@")

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------------------
# Errors


class ConfigError(Exception):
    """The configuration is invalid or could not be read.

    Attributes:
        errors: Every problem found, one self-contained message each (key path, expected, got).
        source: The file (or other source label) the configuration came from, if known.
    """

    errors: tuple[str, ...]
    source: str | None

    def __init__(self, errors: str | Iterable[str], *, source: str | None = None) -> None:
        """Create the error.

        Args:
            errors: One message or an iterable of messages.
            source: Where the configuration came from, e.g. the file path.
        """
        self.errors = (errors,) if isinstance(errors, str) else tuple(errors)
        self.source = source
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


class _Invalid(Exception):
    """Raised by a value checker; the table reader turns it into a full "expected ..., got ..." message."""

    def __init__(self, expected: str, hint: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.hint = hint


# --------------------------------------------------------------------------------------------------------
# Settings dataclasses


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


@dataclass(frozen=True, slots=True, repr=False)
class Secrets:
    """Secrets read from the environment. The repr masks values so they never reach logs."""

    telegram_token: str | None = None
    discord_token: str | None = None
    signing_secret: str | None = None

    def __repr__(self) -> str:
        return (
            f"Secrets(telegram_token={_mask(self.telegram_token)}, "
            f"discord_token={_mask(self.discord_token)}, "
            f"signing_secret={_mask(self.signing_secret)})"
        )


# --------------------------------------------------------------------------------------------------------
# Public functions


def default_settings() -> Settings:
    """Return the settings used when no config file is given.

    Returns:
        Settings with every option at its default (SQLite at ``sqlite:///cohortbot.db``, both chat platforms
        disabled, digest on, nudges off, no courses).
    """
    return Settings()


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and validate a TOML config file.

    Args:
        path: Path of the config file.

    Returns:
        The validated settings.

    Raises:
        ConfigError: The file cannot be read, is not valid TOML, or has invalid settings. All problems
            with the settings are reported together.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {name}: {exc.strerror or exc}", source=name) from exc
    try:
        # utf-8-sig: some editors (Notepad) save a byte-order mark, which tomllib would reject as garbage.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"{name}: invalid TOML: the file is not UTF-8 text (bad byte at offset {exc.start})"
        raise ConfigError(message, source=name) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: invalid TOML: {exc}", source=name) from exc
    return parse_settings(data, source=name)


def parse_settings(data: Mapping[str, Any], *, source: str = "<config>") -> Settings:
    """Validate an already-parsed TOML document.

    Args:
        data: The document as returned by ``tomllib``.
        source: Label for where the data came from; stored on the raised ``ConfigError``.

    Returns:
        The validated settings; absent sections and keys get their defaults.

    Raises:
        ConfigError: With one message per problem, in the order the keys appear in the document.
    """
    errors: dict[str, list[str]] = {}
    community = _read_section(data, "community", _parse_community, errors)
    storage = _read_section(data, "storage", _parse_storage, errors)
    telegram = _read_section(data, "telegram", _parse_telegram, errors)
    discord = _read_section(data, "discord", _parse_discord, errors)
    digest = _read_section(data, "digest", _parse_digest, errors)
    nudges = _read_section(data, "nudges", _parse_nudges, errors)
    schedule = _read_section(data, "schedule", _parse_schedule, errors)
    courses = _parse_courses(data, errors)
    for key, value in data.items():
        if key not in _SECTIONS:
            errors[key] = [_unknown_top_level(key, value)]

    # Report in document order so the messages read top to bottom like the file.
    ordered = [message for key in data if key in errors for message in errors[key]]
    ordered += [message for key, found in errors.items() if key not in data for message in found]
    if ordered:
        raise ConfigError(ordered, source=source)
    return Settings(
        community=community,
        storage=storage,
        telegram=telegram,
        discord=discord,
        digest=digest,
        nudges=nudges,
        schedule=schedule,
        courses=courses,
    )


def load_secrets(environ: Mapping[str, str]) -> Secrets:
    """Read secrets from environment variables.

    Reads ``COHORTBOT_TELEGRAM_TOKEN``, ``COHORTBOT_DISCORD_TOKEN`` and ``COHORTBOT_SECRET``. Empty values
    count as unset, and surrounding whitespace is dropped (``$(cat token.txt)`` keeps a trailing newline).

    Args:
        environ: Usually ``os.environ``.

    Returns:
        The secrets; missing ones are None.
    """

    def read(name: str) -> str | None:
        value = environ.get(name, "").strip()
        return value or None

    return Secrets(
        telegram_token=read(TELEGRAM_TOKEN_ENV),
        discord_token=read(DISCORD_TOKEN_ENV),
        signing_secret=read(SECRET_ENV),
    )


def validate_secrets(settings: Settings, secrets: Secrets) -> list[str]:
    """Check that every secret the configuration needs is present.

    Args:
        settings: Validated settings.
        secrets: Secrets from :func:`load_secrets`.

    Returns:
        One message per missing secret, naming the environment variable to set; empty when all is well.
    """
    problems: list[str] = []
    if settings.telegram.enabled and secrets.telegram_token is None:
        problems.append(
            f"[telegram] enabled = true, but the {TELEGRAM_TOKEN_ENV} environment variable is not set "
            "(set it to the bot token from @BotFather)"
        )
    if settings.discord.enabled and secrets.discord_token is None:
        problems.append(
            f"[discord] enabled = true, but the {DISCORD_TOKEN_ENV} environment variable is not set "
            "(set it to the bot token from the Discord Developer Portal)"
        )
    # Purchases through the Telegram bot carry signed payloads, so a missing secret would let anyone forge
    # a "paid" callback. Every course is offered in Telegram when the Telegram bot is on.
    if settings.telegram.enabled and settings.courses and secrets.signing_secret is None:
        ids = ", ".join(f'"{course.id}"' for course in settings.courses)
        problems.append(
            f"[[courses]] {ids} are sold in Telegram, but the {SECRET_ENV} environment variable is not set "
            '(set it to a long random string, e.g. from: python -c "import secrets; '
            'print(secrets.token_urlsafe(32))")'
        )
    return problems


# --------------------------------------------------------------------------------------------------------
# Table reader


class _Table:
    """Reads one TOML table and remembers which keys it knows, so leftovers can be reported as unknown."""

    def __init__(self, label: str, data: Mapping[str, Any], *, section: str) -> None:
        self.label = label
        self.section = section
        # The telegram section updates this so a pasted webhook secret points at the configured variable.
        self.webhook_secret_env = DEFAULT_WEBHOOK_SECRET_ENV
        self._data = data
        self._known: list[str] = []
        self._missing: list[str] = []
        self._key_errors: dict[str, str] = {}
        self._late_errors: list[str] = []

    def optional(self, key: str, check: Callable[[object], _T], default: _T) -> _T:
        """Return the checked value of ``key``; ``default`` if it is absent or invalid (error recorded)."""
        self._known.append(key)
        if key not in self._data:
            return default
        value = self._data[key]
        try:
            return check(value)
        except _Invalid as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            self._key_errors[key] = f"{self.label} {key}: expected {exc.expected}, got {_show(value)}{hint}"
            # Carry on with the default so every other key still gets checked in this pass.
            return default

    def required(self, key: str, check: Callable[[object], _T]) -> _T | None:
        """Like :meth:`optional`, but a missing key is an error; None means missing or invalid."""
        if key not in self._data:
            self._known.append(key)
            self._missing.append(f'{self.label}: missing required key "{key}"')
            return None
        return self.optional(key, check, None)

    def valid(self, *keys: str) -> bool:
        """True if none of ``keys`` had an error, so cross-key checks don't pile onto an existing message."""
        return not any(key in self._key_errors for key in keys)

    def present(self, key: str) -> bool:
        """True if ``key`` is set in the file."""
        return key in self._data

    def key_error(self, key: str, message: str) -> None:
        """Record a cross-key problem about ``key``."""
        self._late_errors.append(f"{self.label} {key}: {message}")

    def table_error(self, message: str) -> None:
        """Record a problem about the table as a whole."""
        self._late_errors.append(f"{self.label}: {message}")

    def finish(self) -> list[str]:
        """Return all problems: missing keys, then per-key problems in file order, then cross-key ones."""
        found = list(self._missing)
        for key in self._data:
            if key in self._key_errors:
                found.append(self._key_errors[key])
            elif key not in self._known:
                found.append(self._unknown_key(key))
        return found + self._late_errors

    def _unknown_key(self, key: str) -> str:
        env = _secret_env_for(self.section, key, self.webhook_secret_env)
        if env is not None:
            return (
                f"{self.label} {key}: secrets must not be stored in the config file; "
                f"remove this key and set the {env} environment variable instead"
            )
        close = difflib.get_close_matches(key, self._known, n=1)
        if close:
            return f'{self.label} {key}: unknown key (did you mean "{close[0]}"?)'
        return f"{self.label} {key}: unknown key (valid keys: {', '.join(self._known)})"


def _read_section(
    data: Mapping[str, Any], name: str, parse: Callable[[_Table], _T], errors: dict[str, list[str]]
) -> _T:
    raw = data.get(name, {})
    found: list[str] = []
    if not isinstance(raw, Mapping):
        found.append(f"[{name}]: expected a table, got {_show(raw)}")
        raw = {}
    table = _Table(f"[{name}]", raw, section=name)
    result = parse(table)
    errors[name] = found + table.finish()
    return result


def _unknown_top_level(key: str, value: object) -> str:
    env = _secret_env_for("", key, DEFAULT_WEBHOOK_SECRET_ENV)
    if env is not None:
        return (
            f"{key}: secrets must not be stored in the config file; "
            f"remove this key and set the {env} environment variable instead"
        )
    sections = ", ".join(_section_label(name) for name in _SECTIONS)
    if isinstance(value, Mapping) or _is_table_list(value):
        label = f"[[{key}]]" if _is_table_list(value) else f"[{key}]"
        close = difflib.get_close_matches(key, _SECTIONS, n=1)
        if close:
            return f"{label}: unknown section (did you mean {_section_label(close[0])}?)"
        return f"{label}: unknown section (known sections: {sections})"
    # A plain key at the top level usually means a forgotten section header above it.
    owners = " or ".join(_section_label(name) for name, keys in _section_keys().items() if key in keys)
    if owners:
        return f"{key}: unknown top-level key (did you mean to put it under {owners}?)"
    return f"{key}: unknown top-level key (options belong inside a section: {sections})"


def _section_label(name: str) -> str:
    return "[[courses]]" if name == "courses" else f"[{name}]"


def _section_keys() -> dict[str, tuple[str, ...]]:
    # Built on demand from the dataclasses so it can never drift from the real option names.
    classes: dict[str, type[Any]] = {
        "community": CommunitySettings,
        "storage": StorageSettings,
        "telegram": TelegramSettings,
        "discord": DiscordSettings,
        "digest": DigestSettings,
        "nudges": NudgeSettings,
        "schedule": ScheduleSettings,
        "courses": CourseSettings,
    }
    return {name: tuple(item.name for item in dataclasses.fields(cls)) for name, cls in classes.items()}


def _is_table_list(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)


def _secret_env_for(section: str, key: str, webhook_env: str) -> str | None:
    """Name the environment variable a secret-looking key belongs in, or None if the key is not a secret."""
    name = key.lower().replace("-", "_")
    if ("webhook" in name and ("secret" in name or "token" in name)) or name == "secret_token":
        return webhook_env
    if "token" in name:
        if "telegram" in name or (section == "telegram" and "discord" not in name):
            return TELEGRAM_TOKEN_ENV
        if "discord" in name or section == "discord":
            return DISCORD_TOKEN_ENV
        return f"{TELEGRAM_TOKEN_ENV} or {DISCORD_TOKEN_ENV}"
    if "secret" in name:
        return SECRET_ENV
    return None


# --------------------------------------------------------------------------------------------------------
# Sections


def _parse_community(table: _Table) -> CommunitySettings:
    default = CommunitySettings()
    return CommunitySettings(
        name=table.optional("name", _non_empty_text, default.name),
        timezone=table.optional("timezone", _timezone, default.timezone),
    )


def _parse_storage(table: _Table) -> StorageSettings:
    default = StorageSettings()
    return StorageSettings(
        url=table.optional("url", _storage_url, default.url),
        store_text=table.optional("store_text", _bool, default.store_text),
        busy_timeout_seconds=table.optional("busy_timeout_seconds", _busy_timeout, default.busy_timeout_seconds),
    )


def _parse_telegram(table: _Table) -> TelegramSettings:
    default = TelegramSettings()
    settings = TelegramSettings(
        enabled=table.optional("enabled", _bool, default.enabled),
        chat_ids=table.optional("chat_ids", _telegram_chat_ids, default.chat_ids),
        owner_ids=table.optional("owner_ids", _telegram_user_ids, default.owner_ids),
        api_base_url=table.optional("api_base_url", _telegram_api_base_url, default.api_base_url),
        mode=table.optional("mode", _telegram_mode, default.mode),
        webhook_listen=table.optional("webhook_listen", _listen_address, default.webhook_listen),
        webhook_url=table.optional("webhook_url", _webhook_url, default.webhook_url),
        webhook_secret_env=table.optional("webhook_secret_env", _env_name, default.webhook_secret_env),
    )
    table.webhook_secret_env = settings.webhook_secret_env
    if settings.enabled and not settings.chat_ids and table.valid("enabled", "chat_ids"):
        table.key_error("chat_ids", "expected at least one Telegram chat ID because enabled = true, got []")
    if settings.mode == "webhook" and not table.present("webhook_url"):
        table.table_error(
            'missing required key "webhook_url" (needed because mode = "webhook"; '
            "expected the public https:// URL Telegram should deliver updates to)"
        )
    return settings


def _parse_discord(table: _Table) -> DiscordSettings:
    default = DiscordSettings()
    settings = DiscordSettings(
        enabled=table.optional("enabled", _bool, default.enabled),
        guild_ids=table.optional("guild_ids", _discord_ids, default.guild_ids),
        admin_role_ids=table.optional("admin_role_ids", _discord_ids, default.admin_role_ids),
        api_base_url=table.optional("api_base_url", _http_url, default.api_base_url),
        gateway_url=table.optional("gateway_url", _websocket_url, default.gateway_url),
        shards=table.optional("shards", _shards, default.shards),
        grant_test_entitlements=table.optional("grant_test_entitlements", _bool, default.grant_test_entitlements),
        message_content=table.optional("message_content", _bool, default.message_content),
    )
    if settings.enabled and not settings.guild_ids and table.valid("enabled", "guild_ids"):
        table.key_error("guild_ids", "expected at least one Discord server ID because enabled = true, got []")
    return settings


def _parse_digest(table: _Table) -> DigestSettings:
    default = DigestSettings()
    return DigestSettings(
        enabled=table.optional("enabled", _bool, default.enabled),
        weekday=table.optional("weekday", _weekday, default.weekday),
        time=table.optional("time", _clock_time, default.time),
        telegram_chat_ids=table.optional("telegram_chat_ids", _telegram_chat_ids, default.telegram_chat_ids),
        discord_channel_ids=table.optional("discord_channel_ids", _discord_ids, default.discord_channel_ids),
        send_to_owners=table.optional("send_to_owners", _bool, default.send_to_owners),
        top_members=table.optional("top_members", _positive_int, default.top_members),
    )


def _parse_nudges(table: _Table) -> NudgeSettings:
    default = NudgeSettings()
    return NudgeSettings(
        enabled=table.optional("enabled", _bool, default.enabled),
        inactive_after_days=table.optional("inactive_after_days", _positive_int, default.inactive_after_days),
        cooldown_days=table.optional("cooldown_days", _positive_int, default.cooldown_days),
        max_per_run=table.optional("max_per_run", _positive_int, default.max_per_run),
        max_per_minute=table.optional("max_per_minute", _positive_int, default.max_per_minute),
        max_per_day=table.optional("max_per_day", _positive_int, default.max_per_day),
        holdout_share=table.optional("holdout_share", _holdout_share, default.holdout_share),
        run_time=table.optional("run_time", _clock_time, default.run_time),
        quiet_hours=table.optional("quiet_hours", _quiet_hours, default.quiet_hours),
        template=table.optional("template", _nudge_template, default.template),
    )


def _parse_schedule(table: _Table) -> ScheduleSettings:
    default = ScheduleSettings()
    return ScheduleSettings(
        refresh_minutes=table.optional("refresh_minutes", _positive_int, default.refresh_minutes),
        reconcile_time=table.optional("reconcile_time", _clock_time, default.reconcile_time),
    )


def _parse_courses(data: Mapping[str, Any], errors: dict[str, list[str]]) -> tuple[CourseSettings, ...]:
    raw = data.get("courses", [])
    if not isinstance(raw, list | tuple):
        shown = "a table ([courses]); use [[courses]] with two brackets" if isinstance(raw, Mapping) else _show(raw)
        errors["courses"] = [f"[[courses]]: expected a list of course tables, got {shown}"]
        return ()
    found: list[str] = []
    courses: list[CourseSettings] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(raw, start=1):
        if not isinstance(entry, Mapping):
            found.append(f"[[courses]] #{number}: expected a table, got {_show(entry)}")
            continue
        table = _Table(f"[[courses]] #{number}", entry, section="courses")
        course = _parse_course(table, number, seen)
        found += table.finish()
        if course is not None:
            courses.append(course)
    errors["courses"] = found
    return tuple(courses)


def _parse_course(table: _Table, number: int, seen: dict[str, int]) -> CourseSettings | None:
    course_id = table.required("id", _slug)
    if course_id is not None:
        if course_id in seen:
            table.key_error(
                "id",
                f'expected a unique course id, got "{course_id}" (already used by #{seen[course_id]})',
            )
        else:
            seen[course_id] = number
        # From here on messages carry the id: "#3" alone is hard to find in a long file.
        table.label = f'[[courses]] #{number} (id "{course_id}")'
    title = table.required("title", _non_empty_text)
    description = table.optional("description", _text, "")
    price_stars = table.optional("price_stars", _stars_price, None)
    price = table.optional("price", _price, None)
    currency = table.optional("currency", _currency, None)
    checkout_url = table.optional("checkout_url", _http_url, None)
    telegram_chat_id = table.optional("telegram_chat_id", _telegram_chat_id, None)
    discord_role_id = table.optional("discord_role_id", _discord_id, None)
    discord_sku_id = table.optional("discord_sku_id", _discord_id, None)

    if not table.present("price_stars") and not table.present("price"):
        table.table_error('missing required key "price_stars" or "price" (a course needs at least one price)')
    if table.present("price") and not table.present("currency"):
        table.table_error('missing required key "currency" (needed because price is set)')
    if table.present("currency") and not table.present("price"):
        table.key_error("currency", 'only used together with "price", but price is not set')

    if course_id is None or title is None:
        return None
    return CourseSettings(
        id=course_id,
        title=title,
        description=description,
        price_stars=price_stars,
        price=price,
        currency=currency,
        checkout_url=checkout_url,
        telegram_chat_id=telegram_chat_id,
        discord_role_id=discord_role_id,
        discord_sku_id=discord_sku_id,
    )


# --------------------------------------------------------------------------------------------------------
# Value checkers: each returns the typed value or raises _Invalid with what was expected.


def _is_int(value: object) -> TypeGuard[int]:
    # bool is a subclass of int in Python; TOML `true` must never pass as the number 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _unquote_hint(value: object) -> str | None:
    if isinstance(value, str) and _NUMERIC_TEXT_RE.fullmatch(value):
        return "write the number without quotes"
    return None


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    hint = "write it without quotes" if value in ("true", "false") else None
    raise _Invalid("true or false", hint)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    raise _Invalid("a string")


def _non_empty_text(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise _Invalid("a non-empty string")


def _positive_int(value: object) -> int:
    if _is_int(value) and value > 0:
        return value
    raise _Invalid("a positive integer", _unquote_hint(value))


def _non_negative_int(value: object) -> int:
    if _is_int(value) and value >= 0:
        return value
    raise _Invalid("a non-negative integer", _unquote_hint(value))


def _busy_timeout(value: object) -> float:
    if _is_number(value) and 0 < value <= 3600:
        return float(value)
    raise _Invalid("a number of seconds above 0 and at most 3600", _unquote_hint(value))


def _stars_price(value: object) -> int:
    if _is_int(value) and 1 <= value <= MAX_STARS_PER_INVOICE:
        return value
    raise _Invalid(
        f"a whole number of Telegram Stars from 1 to {MAX_STARS_PER_INVOICE:,} (Telegram's most per invoice)",
        _unquote_hint(value),
    )


def _holdout_share(value: object) -> float:
    if _is_number(value) and 0 <= value <= 0.9:
        return float(value)
    raise _Invalid("a number from 0 to 0.9", _unquote_hint(value))


def _price(value: object) -> Decimal:
    if _is_number(value) and value > 0:
        # Via str() so 49.9 becomes Decimal("49.9"), not the float's binary approximation.
        return Decimal(str(value))
    raise _Invalid("a positive number", _unquote_hint(value))


def _fits_64_bits(value: int) -> bool:
    return INT64_MIN <= value <= INT64_MAX


def _id_list(expected: str, accept: Callable[[int], bool]) -> Callable[[object], tuple[int, ...]]:
    def check(value: object) -> tuple[int, ...]:
        if isinstance(value, list | tuple) and all(_is_int(item) and accept(item) for item in value):
            if all(_fits_64_bits(item) for item in value):
                return tuple(value)
            bounds = f"{INT64_MIN} to {INT64_MAX}" if accept(-1) else f"at most {INT64_MAX}"
            raise _Invalid(f"{expected}, each fitting in 64 bits ({bounds})")
        quoted = isinstance(value, list | tuple) and any(_unquote_hint(item) for item in value)
        raise _Invalid(expected, "write IDs as numbers without quotes" if quoted else None)

    return check


_telegram_chat_ids = _id_list("a list of Telegram chat IDs (non-zero integers)", lambda n: n != 0)
_telegram_user_ids = _id_list("a list of Telegram user IDs (positive integers)", lambda n: n > 0)
_discord_ids = _id_list("a list of Discord IDs (positive integers)", lambda n: n > 0)


def _telegram_chat_id(value: object) -> int:
    if _is_int(value) and value != 0:
        if _fits_64_bits(value):
            return value
        raise _Invalid(f"a Telegram chat ID fitting in 64 bits ({INT64_MIN} to {INT64_MAX})")
    raise _Invalid("a Telegram chat ID (a non-zero integer)", _unquote_hint(value))


def _discord_id(value: object) -> int:
    if _is_int(value) and value > 0:
        if _fits_64_bits(value):
            return value
        raise _Invalid(f"a Discord ID fitting in 64 bits (1 to {INT64_MAX})")
    raise _Invalid("a Discord ID (a positive integer)", _unquote_hint(value))


def _shards(value: object) -> int | Literal["auto"]:
    if value == "auto":
        return "auto"
    if _is_int(value) and value > 0:
        return value
    raise _Invalid('"auto" or a positive integer', _unquote_hint(value))


def _weekday(value: object) -> Weekday:
    if isinstance(value, str):
        # Case-insensitive: "Monday" is an obvious way to write it and there is no ambiguity.
        for day in WEEKDAYS:
            if day == value.strip().lower():
                return day
    raise _Invalid('a day of the week, "monday" to "sunday"')


def _telegram_mode(value: object) -> TelegramMode:
    for mode in _TELEGRAM_MODES:
        if mode == value:
            return mode
    raise _Invalid('"polling" or "webhook"')


def _parse_clock(text: str) -> dt.time | None:
    match = _CLOCK_RE.fullmatch(text.strip())
    return dt.time(int(match[1]), int(match[2])) if match else None


def _clock_time(value: object) -> dt.time:
    if isinstance(value, str) and (parsed := _parse_clock(value)) is not None:
        return parsed
    raise _Invalid('a 24-hour time "HH:MM" such as "09:00"')


def _quiet_hours(value: object) -> QuietHours:
    if isinstance(value, str) and (match := _QUIET_HOURS_RE.fullmatch(value)):
        start, end = _parse_clock(match[1]), _parse_clock(match[2])
        if start is not None and end is not None:
            return QuietHours(start, end)
    raise _Invalid('a time range "HH:MM-HH:MM" such as "22:00-08:00"')


def _timezone(value: object) -> str:
    expected = 'an IANA time zone name such as "Europe/Berlin"'
    if not isinstance(value, str):
        raise _Invalid(expected)
    # "localtime" and "Factory" load from the system database but are not real zones: "localtime" would
    # silently follow whatever server the bot is moved to.
    if value not in ("localtime", "Factory"):
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
        else:
            return value
    # Only on failure: listing all zones scans the time zone database, which is slow-ish.
    available = sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})
    by_lower = {name.lower(): name for name in available}
    close = [by_lower[value.lower()]] if value.lower() in by_lower else difflib.get_close_matches(value, available, n=1)
    raise _Invalid(expected, f'did you mean "{close[0]}"?' if close else None)


def _url_parts(value: object, schemes: tuple[str, ...]) -> urllib.parse.SplitResult | None:
    if not isinstance(value, str) or any(char.isspace() for char in value):
        return None
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return None
    return parts if parts.scheme in schemes and parts.hostname else None


def _http_url(value: object) -> str:
    if _url_parts(value, ("http", "https")) is not None:
        assert isinstance(value, str)
        return value
    raise _Invalid("an http:// or https:// URL")


def _websocket_url(value: object) -> str:
    if _url_parts(value, ("ws", "wss")) is not None:
        assert isinstance(value, str)
        return value
    raise _Invalid("a wss:// or ws:// URL")


def _telegram_api_base_url(value: object) -> str:
    if isinstance(value, str) and _TELEGRAM_TOKEN_RE.search(value):
        # The token is a secret and is appended by the bot; _show() masks it in this message.
        raise _Invalid(f"an http(s) URL without the bot token (the bot appends {TELEGRAM_TOKEN_ENV} itself)")
    return _http_url(value)


def _webhook_url(value: object) -> str:
    parts = _url_parts(value, ("https",))
    if parts is None:
        raise _Invalid("an https:// URL (Telegram only delivers webhooks over HTTPS)")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and port not in _TELEGRAM_WEBHOOK_PORTS:
        raise _Invalid("an https:// URL on port 443, 80, 88 or 8443 (the only ports Telegram delivers to)")
    assert isinstance(value, str)
    return value


def _listen_address(value: object) -> str:
    if isinstance(value, str) and (match := _LISTEN_RE.fullmatch(value)) and 0 < int(match[2]) <= 65535:
        return value
    raise _Invalid('"host:port" such as "127.0.0.1:8443"')


def _env_name(value: object) -> str:
    if isinstance(value, str) and _ENV_NAME_RE.fullmatch(value):
        return value
    raise _Invalid(f'the name of an environment variable such as "{DEFAULT_WEBHOOK_SECRET_ENV}"')


def _storage_url(value: object) -> str:
    expected = (
        'a database URL starting with "sqlite:///", "postgresql://" or "postgresql+psycopg://", '
        'such as "sqlite:///cohortbot.db"'
    )
    if not isinstance(value, str) or value != value.strip():
        raise _Invalid(expected)
    scheme, separator, rest = value.partition("://")
    if separator and rest:
        if scheme == "sqlite" and rest.startswith("/") and rest != "/":
            return value
        if scheme in ("postgresql", "postgresql+psycopg"):
            return value
    hint = None
    if scheme == "sqlite" and separator and not rest.startswith("/"):
        hint = f'SQLite URLs need three slashes: "sqlite:///{rest}"'
    elif scheme == "postgres":
        hint = 'write "postgresql://", SQLAlchemy does not accept "postgres://"'
    raise _Invalid(expected, hint)


def _slug(value: object) -> str:
    if isinstance(value, str) and len(value) <= _MAX_COURSE_ID_LENGTH and _SLUG_RE.fullmatch(value):
        return value
    raise _Invalid(
        f'a course id of lowercase letters, digits and "-" (at most {_MAX_COURSE_ID_LENGTH} characters) '
        'such as "py-async"'
    )


def _currency(value: object) -> str:
    if isinstance(value, str) and _CURRENCY_RE.fullmatch(value):
        return value
    raise _Invalid('a 3-letter uppercase ISO 4217 currency code such as "EUR"')


def _nudge_template(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("a non-empty string")
    allowed = ", ".join(f"{{{name}}}" for name in NUDGE_PLACEHOLDERS)
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(value)]
    except ValueError as exc:
        raise _Invalid(f"a message whose placeholders are well-formed, like {{name}} ({exc})") from exc
    for name, spec, conversion in fields:
        if name is None:
            continue
        # Only bare names: "{name.__class__}" or "{0}" would let the template reach into Python objects.
        if name not in NUDGE_PLACEHOLDERS or spec or conversion:
            raw = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise _Invalid(f"a message using only the placeholders {allowed}", f"unknown placeholder {raw}")
    if NUDGES_OFF_COMMAND not in value:
        raise _Invalid(f'a message that tells members how to stop nudges (it must contain "{NUDGES_OFF_COMMAND}")')
    return value


# --------------------------------------------------------------------------------------------------------
# Display helpers


def _redact(text: str) -> str:
    text = _TELEGRAM_TOKEN_RE.sub(lambda m: m[0].split(":", 1)[0] + ":***", text)
    text = _DISCORD_TOKEN_RE.sub("***", text)
    return _URL_PASSWORD_RE.sub(r"\1***@", text)


def _mask(secret: str | None) -> str:
    return "None" if secret is None else "'***'"


def _show(value: object) -> str:
    """Render a value the way it would be written in TOML, shortened and with secrets masked."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = _redact(value)
        if len(text) > _MAX_SHOWN_CHARS:
            text = text[: _MAX_SHOWN_CHARS - 3] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        kind = "date-time" if isinstance(value, dt.datetime) else type(value).__name__
        # Unquoted 09:00:00 is a TOML time, not the string the option wants; saying so explains the error.
        return f"{value.isoformat()} (a TOML {kind} value, not a quoted string)"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        text = "[" + ", ".join(_show(item) for item in value) + "]"
        return text if len(text) <= _MAX_SHOWN_LIST_CHARS else text[: _MAX_SHOWN_LIST_CHARS - 4] + "...]"
    return repr(value)
